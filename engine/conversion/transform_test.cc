#include "engine/conversion/transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cpu/layout/transpose.h"

namespace relayout {
namespace {

using ::testing::HasSubstr;

std::vector<std::byte> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

TransformSpec MustDescribe(DType dtype, std::vector<int64_t> shape, Layout from, Layout to) {
  Result<TransformSpec> spec = DescribeTransform(dtype, shape, from, to);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : TransformSpec{};
}

TEST(TransformTest, RowGroupDeclaresBlockedAndOutOfPlaceScratchExactly) {
  const TransformSpec s =
      MustDescribe(DType::kF32, {37, 20}, Layout::RowMajor(), Layout::RowGroupInterleave(8, 8));
  EXPECT_TRUE(s.is_permutation);
  EXPECT_EQ(s.from_bytes, 37u * 20 * 4);
  EXPECT_EQ(s.to_bytes, s.from_bytes);
  EXPECT_EQ(s.row_group_bytes, 8u * 20 * 4);
  EXPECT_EQ(s.row_groups, 4u);
  ASSERT_EQ(s.strategies.size(), 2u);
  EXPECT_EQ(s.strategies[0].strategy, Strategy::kBlockedInPlace);
  EXPECT_EQ(s.strategies[0].scratch_bytes, 8u * 20 * 4);
  EXPECT_EQ(s.strategies[1].strategy, Strategy::kOutOfPlace);
  EXPECT_EQ(s.strategies[1].scratch_bytes, 37u * 20 * 4);
  EXPECT_LT(s.strategies[0].cost, s.strategies[1].cost);
  EXPECT_EQ(s.Describe(), "F32 [37, 20] row-major -> rowgroup-g8k8");
}

TEST(TransformTest, QuantRowGroupScratchIsOneGroupOfBlockRows) {
  const TransformSpec s = MustDescribe(DType::kQ4_1, {576, 1536}, Layout::GgufBlocks(),
                                       Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(s.row_group_bytes, 8u * (1536 / 32) * 20);
  EXPECT_EQ(s.Find(Strategy::kBlockedInPlace)->scratch_bytes, 8u * 48 * 20);
  EXPECT_EQ(s.Find(Strategy::kOutOfPlace)->scratch_bytes, 576u * 48 * 20);
  EXPECT_EQ(s.Find(Strategy::kCycleFollowing), nullptr);
}

TEST(TransformTest, IdentityAndAllTailTensorsNeedNoScratch) {
  const TransformSpec id =
      MustDescribe(DType::kF16, {64, 64}, Layout::RowMajor(), Layout::RowMajor());
  ASSERT_EQ(id.strategies.size(), 1u);
  EXPECT_EQ(id.strategies[0].strategy, Strategy::kNone);
  const TransformSpec tail =
      MustDescribe(DType::kF32, {5, 64}, Layout::RowMajor(), Layout::RowGroupInterleave(8, 8));
  ASSERT_EQ(tail.strategies.size(), 1u);
  EXPECT_EQ(tail.strategies[0].strategy, Strategy::kNone);
  EXPECT_EQ(tail.row_group_bytes, 0u);
  for (const Layout& l : {Layout::RowGroupInterleave(8, 64), Layout::RowGroupInterleave(1, 8)}) {
    const TransformSpec one_block = MustDescribe(DType::kF32, {64, 64}, Layout::RowMajor(), l);
    ASSERT_EQ(one_block.strategies.size(), 1u) << l.Name();
    EXPECT_EQ(one_block.strategies[0].strategy, Strategy::kNone);
  }
  std::vector<std::byte> data = RandomBytes(tail.from_bytes, 1);
  const std::vector<std::byte> before = data;
  EXPECT_TRUE(ApplyTransform(tail, Strategy::kNone, data, {}, Direction::kForward).ok());
  EXPECT_EQ(data, before);
}

struct Pair {
  DType dtype;
  Layout layout;
  std::vector<int64_t> ks;
};

// Every supported (dtype, preferred layout), shapes with and without tails,
// K below and above the block: both strategies with exactly the declared
// scratch give the same bytes, and the inverse restores the original.
TEST(TransformTest, EveryPairRoundTripsWithBothStrategiesAndExactScratch) {
  const std::vector<int64_t> float_ks = {1, 3, 8, 17, 40};
  const std::vector<int64_t> quant_ks = {32, 64, 96};
  const Pair pairs[] = {
      {DType::kF32, Layout::RowGroupInterleave(8, 8), float_ks},
      {DType::kF32, Layout::RowGroupInterleave(16, 16), float_ks},
      {DType::kF16, Layout::RowGroupInterleave(8, 8), float_ks},
      {DType::kF16, Layout::RowGroupInterleave(16, 16), float_ks},
      {DType::kBF16, Layout::RowGroupInterleave(8, 8), float_ks},
      {DType::kBF16, Layout::Bf16KPair(16), float_ks},
      {DType::kQ8_0, Layout::QuantRowGroupInterleave(8), quant_ks},
      {DType::kQ4_0, Layout::QuantRowGroupInterleave(8), quant_ks},
      {DType::kQ4_1, Layout::QuantRowGroupInterleave(8), quant_ks},
      {DType::kQ4_1, Layout::QuantRowGroupInterleave(4), quant_ks},
  };
  uint32_t seed = 5;
  for (const Pair& pair : pairs) {
    for (int64_t n : {1, 5, 8, 9, 16, 17, 37}) {
      for (int64_t k : pair.ks) {
        const TransformSpec fwd =
            MustDescribe(pair.dtype, {n, k}, CommonLayoutFor(pair.dtype), pair.layout);
        SCOPED_TRACE(fwd.Describe());
        const std::vector<std::byte> original = RandomBytes(fwd.from_bytes, seed++);
        std::vector<std::vector<std::byte>> results;
        for (const StrategyOption& o : fwd.strategies) {
          std::vector<std::byte> data = original;
          std::vector<std::byte> scratch(o.scratch_bytes);
          ASSERT_TRUE(ApplyTransform(fwd, o.strategy, data, scratch, Direction::kForward).ok());
          results.push_back(data);
          ASSERT_TRUE(ApplyTransform(fwd, o.strategy, data, scratch, Direction::kInverse).ok());
          ASSERT_EQ(data, original) << StrategyName(o.strategy);
        }
        for (const auto& r : results) ASSERT_EQ(r, results[0]);
        if (fwd.Find(Strategy::kNone) == nullptr) {
          ASSERT_NE(results[0], original);
        }

        // The reversed spec's forward is the inverse.
        const TransformSpec back =
            MustDescribe(pair.dtype, {n, k}, pair.layout, CommonLayoutFor(pair.dtype));
        std::vector<std::byte> data = results[0];
        std::vector<std::byte> scratch(back.strategies[0].scratch_bytes);
        ASSERT_TRUE(
            ApplyTransform(back, back.strategies[0].strategy, data, scratch, Direction::kForward)
                .ok());
        ASSERT_EQ(data, original);
      }
    }
  }
}

TEST(TransformTest, UnsupportedPairsAreInvalidArgumentNamingDtypeAndLayouts) {
  const std::vector<int64_t> mat = {64, 64};
  Result<TransformSpec> r =
      DescribeTransform(DType::kQ4_1, mat, Layout::GgufBlocks(), Layout::RowGroupInterleave(8, 8));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_THAT(r.status().message(),
              HasSubstr("transform Q4_1 [64, 64] gguf-blocks -> rowgroup-g8k8"));
  EXPECT_THAT(r.status().message(), HasSubstr("needs F32, F16 or BF16"));

  r = DescribeTransform(DType::kF32, mat, Layout::RowMajor(), Layout::QuantRowGroupInterleave(8));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("F32 [64, 64] row-major -> q-rowgroup-g8"));

  r = DescribeTransform(DType::kF32, mat, Layout::RowGroupInterleave(8, 8),
                        Layout::RowGroupInterleave(16, 16));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("convert through row-major"));

  const std::vector<int64_t> vec = {64};
  r = DescribeTransform(DType::kF32, vec, Layout::RowMajor(), Layout::RowGroupInterleave(8, 8));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("2-D"));

  const std::vector<int64_t> ragged = {8, 40};  // K not a multiple of 32
  r = DescribeTransform(DType::kQ8_0, ragged, Layout::GgufBlocks(),
                        Layout::QuantRowGroupInterleave(8));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_THAT(r.status().message(), HasSubstr("block size"));
}

TEST(TransformTest, ApplyRefusesUnofferedStrategyShortScratchAndWrongSize) {
  const TransformSpec s =
      MustDescribe(DType::kF32, {16, 10}, Layout::RowMajor(), Layout::RowGroupInterleave(8, 8));
  std::vector<std::byte> data = RandomBytes(s.from_bytes, 2);
  const std::vector<std::byte> before = data;
  std::vector<std::byte> scratch(s.from_bytes);

  Status st = ApplyTransform(s, Strategy::kCycleFollowing, data, scratch, Direction::kForward);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_THAT(st.message(), HasSubstr("cycle_following not offered (offered: blocked_in_place, "
                                      "out_of_place)"));

  std::vector<std::byte> short_scratch(s.row_group_bytes - 1);
  st = ApplyTransform(s, Strategy::kBlockedInPlace, data, short_scratch, Direction::kForward);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_THAT(st.message(), HasSubstr("scratch is 319 bytes, blocked_in_place needs 320"));

  st = ApplyTransform(s, Strategy::kBlockedInPlace, std::span(data).first(10), scratch,
                      Direction::kForward);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_THAT(st.message(), HasSubstr("data is 10 bytes, tensor is 640"));
  EXPECT_EQ(data, before);
}

TEST(TransformTest, TransposeDeclaresKernelScratchAndRoundTripsWithEveryStrategy) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{64, 48}, {37, 5}, {576, 1536}, {1, 9}}) {
    const TransformSpec s =
        MustDescribe(DType::kF16, shape, Layout::RowMajor(), Layout::Transposed());
    const int64_t rows = shape[0], cols = shape[1];
    if (rows == 1) {
      ASSERT_EQ(s.strategies.size(), 1u);
      EXPECT_EQ(s.strategies[0].strategy, Strategy::kNone);
      continue;
    }
    ASSERT_NE(s.Find(Strategy::kCycleFollowing), nullptr);
    EXPECT_EQ(s.Find(Strategy::kCycleFollowing)->scratch_bytes,
              kernels::CycleFollowingScratchBytes(rows, cols));
    EXPECT_EQ(s.Find(Strategy::kOutOfPlace)->scratch_bytes, s.from_bytes);
    for (size_t i = 1; i < s.strategies.size(); ++i) {
      EXPECT_LE(s.strategies[i - 1].scratch_bytes, s.strategies[i].scratch_bytes);
    }
    std::vector<uint16_t> original(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < original.size(); ++i) original[i] = static_cast<uint16_t>(i * 7919u);
    for (const StrategyOption& o : s.strategies) {
      std::vector<uint16_t> data = original;
      std::vector<std::byte> scratch(o.scratch_bytes);
      auto bytes = std::as_writable_bytes(std::span(data));
      ASSERT_TRUE(ApplyTransform(s, o.strategy, bytes, scratch, Direction::kForward).ok());
      EXPECT_EQ(data[1], original[static_cast<size_t>(cols)])
          << StrategyName(o.strategy);  // [0][1] <- [1][0]
      ASSERT_TRUE(ApplyTransform(s, o.strategy, bytes, scratch, Direction::kInverse).ok());
      EXPECT_EQ(data, original) << StrategyName(o.strategy) << " " << rows << "x" << cols;
    }
  }
}

TEST(TransformTest, WideningChangesSizeAndCountsBothBuffers) {
  for (const DType dtype : {DType::kF16, DType::kBF16}) {
    const TransformSpec s = MustDescribe(dtype, {37, 5}, Layout::RowMajor(), Layout::WidenedF32());
    EXPECT_FALSE(s.is_permutation);
    EXPECT_EQ(s.from_bytes, 37u * 5 * 2);
    EXPECT_EQ(s.to_bytes, 37u * 5 * 4);
    ASSERT_EQ(s.strategies.size(), 1u);
    EXPECT_EQ(s.strategies[0].strategy, Strategy::kAllocateThenFree);
    EXPECT_EQ(s.strategies[0].scratch_bytes, s.from_bytes);  // the source coexists with the result
    std::vector<uint16_t> half(37 * 5);
    for (size_t i = 0; i < half.size(); ++i) half[i] = static_cast<uint16_t>(0x3c00 + i);
    std::vector<float> wide(half.size());
    std::vector<uint16_t> back(half.size());
    ASSERT_TRUE(ApplySizeChangingTransform(s, std::as_bytes(std::span(half)),
                                           std::as_writable_bytes(std::span(wide)),
                                           Direction::kForward)
                    .ok());
    ASSERT_TRUE(ApplySizeChangingTransform(s, std::as_bytes(std::span(wide)),
                                           std::as_writable_bytes(std::span(back)),
                                           Direction::kInverse)
                    .ok());
    EXPECT_EQ(back, half);
    std::vector<std::byte> scratch(s.from_bytes);
    EXPECT_TRUE(ApplyTransform(s, Strategy::kAllocateThenFree,
                               std::as_writable_bytes(std::span(half)), scratch,
                               Direction::kForward)
                    .IsInvalidArgument());
    EXPECT_TRUE(ApplySizeChangingTransform(s, std::as_bytes(std::span(half)),
                                           std::as_writable_bytes(std::span(half)),
                                           Direction::kForward)
                    .IsInvalidArgument());
  }
  EXPECT_FALSE(DescribeTransform(DType::kF32, std::vector<int64_t>{4, 4}, Layout::RowMajor(),
                                 Layout::WidenedF32())
                   .ok());
}

TEST(TransformTest, StrategyNamesAreStable) {
  EXPECT_EQ(StrategyName(Strategy::kBlockedInPlace), "blocked_in_place");
  EXPECT_EQ(StrategyName(Strategy::kOutOfPlace), "out_of_place");
  EXPECT_EQ(StrategyName(Strategy::kAllocateThenFree), "allocate_then_free");
  EXPECT_EQ(StrategyName(Strategy::kNone), "none");
}

}  // namespace
}  // namespace relayout
