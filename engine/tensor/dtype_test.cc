#include "engine/tensor/dtype.h"

#include <gtest/gtest.h>

namespace relayout {
namespace {

TEST(DTypeTest, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(DType::kIQ4_NL); ++i) {
    const DType d = static_cast<DType>(i);
    EXPECT_EQ(DTypeFromName(DTypeName(d)), d) << DTypeName(d);
  }
  EXPECT_FALSE(DTypeFromName("F8"));
}

TEST(DTypeTest, ElementwiseSizes) {
  const int64_t shape[] = {512, 64};
  EXPECT_EQ(*ByteSizeOf(DType::kF32, shape), 512u * 64 * 4);
  EXPECT_EQ(*ByteSizeOf(DType::kBF16, shape), 512u * 64 * 2);
  EXPECT_EQ(*ByteSizeOf(DType::kBool, shape), 512u * 64);
  EXPECT_EQ(*ByteSizeOf(DType::kF32, std::span<const int64_t>()), 4u);  // a scalar
}

TEST(DTypeTest, QuantizedSizesCountBlocks) {
  const int64_t shape[] = {576, 1536};
  EXPECT_EQ(*ByteSizeOf(DType::kQ4_1, shape), 576u * 1536 / 32 * 20);
  EXPECT_EQ(*ByteSizeOf(DType::kQ8_0, shape), 576u * 1536 / 32 * 34);
  EXPECT_EQ(*ByteSizeOf(DType::kQ4_0, shape), 576u * 1536 / 32 * 18);
  const int64_t k_shape[] = {2, 512};
  EXPECT_EQ(*ByteSizeOf(DType::kQ6_K, k_shape), 2u * 2 * 210);
}

TEST(DTypeTest, QuantizedInnerDimMustDivideByBlock) {
  const int64_t shape[] = {4, 33};
  Result<uint64_t> r = ByteSizeOf(DType::kQ4_0, shape);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "innermost dimension 33 of Q4_0 tensor is not a multiple of its block size 32");
}

TEST(DTypeTest, OverflowAndNegativeDimsAreErrors) {
  const int64_t huge[] = {INT64_MAX, INT64_MAX};
  EXPECT_FALSE(ByteSizeOf(DType::kF32, huge).ok());
  const int64_t big[] = {int64_t{1} << 62};
  EXPECT_FALSE(ByteSizeOf(DType::kF32, big).ok());  // 2^62 elements * 4 bytes
  const int64_t negative[] = {4, -1};
  EXPECT_NE(ByteSizeOf(DType::kF32, negative).status().message().find("negative"),
            std::string::npos);
  EXPECT_EQ(ShapeToString(negative), "[4, -1]");
}

}  // namespace
}  // namespace relayout
