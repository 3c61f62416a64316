#include "kernels/cpu/layout/row_group_interleave.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/layout/bf16_kpair.h"

namespace relayout::kernels {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// The layout written out element by element from its definition, independent
// of the kernel's loop structure.
std::vector<uint8_t> ExpectedInterleave(const std::vector<uint8_t>& src, const RowGroupParams& p) {
  std::vector<uint8_t> out(src.size());
  const size_t g = p.group_rows, kb = p.k_block, eb = p.elem_bytes;
  const size_t full = p.rows / g;
  for (size_t n = 0; n < p.rows; ++n) {
    for (size_t k = 0; k < p.cols; ++k) {
      size_t idx = n * p.cols + k;
      if (n / g < full) {
        const size_t k0 = k / kb * kb;
        const size_t width = std::min(kb, p.cols - k0);
        idx = n / g * g * p.cols + g * k0 + (n % g) * width + (k - k0);
      }
      std::memcpy(&out[idx * eb], &src[(n * p.cols + k) * eb], eb);
    }
  }
  return out;
}

TEST(RowGroupInterleaveTest, SmallMatrixHasDocumentedOrder) {
  // N=3, K=5, G=2, KB=2: group 0 = cols [0,1] of rows 0,1; cols [2,3]; col [4];
  // then row 2 unchanged.
  const RowGroupParams p{.rows = 3, .cols = 5, .elem_bytes = 4, .group_rows = 2, .k_block = 2};
  std::vector<float> src(15);
  for (size_t n = 0; n < 3; ++n)
    for (size_t k = 0; k < 5; ++k) src[n * 5 + k] = static_cast<float>(n * 100 + k);
  std::vector<float> dst(15);
  ASSERT_TRUE(RowGroupInterleaveForward(src.data(), dst.data(), p, 0, RowGroupCount(p)));
  const std::vector<float> want = {0, 1, 100, 101, 2, 3, 102, 103, 4, 104, 200, 201, 202, 203, 204};
  EXPECT_EQ(dst, want);
}

TEST(RowGroupInterleaveTest, GroupCountAndScratchCoverTail) {
  const RowGroupParams p{.rows = 37, .cols = 10, .elem_bytes = 2, .group_rows = 8, .k_block = 8};
  EXPECT_EQ(RowGroupCount(p), 5u);
  EXPECT_EQ(RowGroupScratchBytes(p), 8u * 10 * 2);
  EXPECT_EQ(RowGroupTensorBytes(p), 37u * 10 * 2);
  const RowGroupParams all_tail{
      .rows = 5, .cols = 10, .elem_bytes = 4, .group_rows = 8, .k_block = 8};
  EXPECT_EQ(RowGroupCount(all_tail), 1u);
  EXPECT_EQ(RowGroupScratchBytes(all_tail), 0u);
}

// Every shape class: N in 1..37 (tails of every size), K below, at and above
// KB with partial last blocks, each element size and the ISA parameters.
TEST(RowGroupInterleaveTest, RoundTripAndInPlaceMatchOnAllShapes) {
  const size_t ks[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 64, 100};
  const size_t gks[][2] = {{8, 8}, {16, 16}, {4, 8}, {16, 2}, {3, 5}};
  uint32_t seed = 1;
  for (size_t eb : {size_t{2}, size_t{4}}) {
    for (const auto& gk : gks) {
      for (size_t n = 1; n <= 37; ++n) {
        for (size_t k : ks) {
          const RowGroupParams p{
              .rows = n, .cols = k, .elem_bytes = eb, .group_rows = gk[0], .k_block = gk[1]};
          SCOPED_TRACE(testing::Message() << "N=" << n << " K=" << k << " eb=" << eb
                                          << " G=" << gk[0] << " KB=" << gk[1]);
          const std::vector<uint8_t> src = RandomBytes(RowGroupTensorBytes(p), seed++);
          const size_t groups = RowGroupCount(p);
          std::vector<uint8_t> fwd(src.size());
          ASSERT_TRUE(RowGroupInterleaveForward(src.data(), fwd.data(), p, 0, groups));
          ASSERT_EQ(fwd, ExpectedInterleave(src, p));

          // Exactly the declared scratch: an overrun is a sanitizer error.
          std::vector<uint8_t> scratch(RowGroupScratchBytes(p));
          std::vector<uint8_t> in_place = src;
          ASSERT_TRUE(RowGroupInterleaveForwardInPlace(in_place.data(), p, 0, groups,
                                                       scratch.data(), scratch.size()));
          ASSERT_EQ(in_place, fwd);

          std::vector<uint8_t> back(src.size());
          ASSERT_TRUE(RowGroupInterleaveInverse(fwd.data(), back.data(), p, 0, groups));
          ASSERT_EQ(back, src);
          ASSERT_TRUE(RowGroupInterleaveInverseInPlace(in_place.data(), p, 0, groups,
                                                       scratch.data(), scratch.size()));
          ASSERT_EQ(in_place, src);
        }
      }
    }
  }
}

TEST(RowGroupInterleaveTest, DisjointRangesComposeToWholeTensor) {
  const RowGroupParams p{.rows = 29, .cols = 21, .elem_bytes = 4, .group_rows = 8, .k_block = 8};
  const std::vector<uint8_t> src = RandomBytes(RowGroupTensorBytes(p), 7);
  std::vector<uint8_t> whole(src.size()), split(src.size());
  ASSERT_TRUE(RowGroupInterleaveForward(src.data(), whole.data(), p, 0, RowGroupCount(p)));
  ASSERT_TRUE(RowGroupInterleaveForward(src.data(), split.data(), p, 2, 2));  // incl. tail
  ASSERT_TRUE(RowGroupInterleaveForward(src.data(), split.data(), p, 0, 2));
  EXPECT_EQ(split, whole);
}

TEST(RowGroupInterleaveTest, ScratchOneByteShortIsRefusedWithoutWriting) {
  const RowGroupParams p{.rows = 16, .cols = 9, .elem_bytes = 2, .group_rows = 8, .k_block = 8};
  std::vector<uint8_t> data = RandomBytes(RowGroupTensorBytes(p), 3);
  const std::vector<uint8_t> before = data;
  std::vector<uint8_t> scratch(RowGroupScratchBytes(p) - 1);
  EXPECT_FALSE(
      RowGroupInterleaveForwardInPlace(data.data(), p, 0, 2, scratch.data(), scratch.size()));
  EXPECT_EQ(data, before);
}

TEST(RowGroupInterleaveTest, InvalidParamsAndRangesAreRefused) {
  const RowGroupParams zero_g{.rows = 4, .cols = 4, .elem_bytes = 4, .group_rows = 0, .k_block = 4};
  std::vector<uint8_t> a(64), b(64);
  EXPECT_FALSE(RowGroupInterleaveForward(a.data(), b.data(), zero_g, 0, 1));
  const RowGroupParams p{.rows = 4, .cols = 4, .elem_bytes = 4, .group_rows = 4, .k_block = 4};
  EXPECT_FALSE(RowGroupInterleaveForward(a.data(), b.data(), p, 0, 2));
  EXPECT_FALSE(RowGroupInterleaveForward(a.data(), b.data(), p, 2, 0));
  const RowGroupParams huge{
      .rows = SIZE_MAX / 2, .cols = 4, .elem_bytes = 4, .group_rows = 4, .k_block = 4};
  EXPECT_FALSE(RowGroupParamsValid(huge));
}

TEST(Bf16KPairTest, OddKKeepsLastColumnAsTrailingColumnOfRows) {
  // G=2 for readability; K=5: pairs (0,1), (2,3), then column 4 as [G][1].
  const Bf16KPairParams p{.rows = 2, .cols = 5, .group_rows = 2};
  std::vector<uint16_t> src(10);
  for (size_t n = 0; n < 2; ++n)
    for (size_t k = 0; k < 5; ++k) src[n * 5 + k] = static_cast<uint16_t>(n * 100 + k);
  std::vector<uint16_t> dst(10);
  ASSERT_TRUE(Bf16KPairForward(src.data(), dst.data(), p, 0, Bf16KPairGroupCount(p)));
  const std::vector<uint16_t> want = {0, 1, 100, 101, 2, 3, 102, 103, 4, 104};
  EXPECT_EQ(dst, want);
}

TEST(Bf16KPairTest, RoundTripInPlaceWithExactScratch) {
  for (size_t n : {1, 15, 16, 17, 33}) {
    for (size_t k : {1, 2, 3, 64, 129}) {
      const Bf16KPairParams p{.rows = n, .cols = k, .group_rows = kBf16KPairGroupRows};
      const std::vector<uint8_t> src = RandomBytes(n * k * 2, static_cast<uint32_t>(n * k));
      std::vector<uint8_t> fwd(src.size()), data = src;
      std::vector<uint8_t> scratch(Bf16KPairScratchBytes(p));
      const size_t groups = Bf16KPairGroupCount(p);
      ASSERT_TRUE(Bf16KPairForward(src.data(), fwd.data(), p, 0, groups));
      ASSERT_TRUE(
          Bf16KPairForwardInPlace(data.data(), p, 0, groups, scratch.data(), scratch.size()));
      ASSERT_EQ(data, fwd);
      ASSERT_TRUE(
          Bf16KPairInverseInPlace(data.data(), p, 0, groups, scratch.data(), scratch.size()));
      ASSERT_EQ(data, src);
    }
  }
}

}  // namespace
}  // namespace relayout::kernels
