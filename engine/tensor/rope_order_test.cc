#include "engine/tensor/rope_order.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace relayout {
namespace {

TEST(RopeOrderTest, RotateHalfToInterleavedMatchesTheConverterPermutation) {
  // Two heads of head_dim 4, one int32 per row holding its row index.
  std::vector<int32_t> rows(8);
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<std::byte> scratch(RopeReorderScratchBytes(4, 4));
  ASSERT_TRUE(ReorderRopeRows(std::as_writable_bytes(std::span(rows)), 2, 4, 4,
                              RopeOrder::kRotateHalf, RopeOrder::kInterleaved, scratch)
                  .ok());
  // interleaved row 2i+j comes from rotate-half row j*2+i.
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  ASSERT_TRUE(ReorderRopeRows(std::as_writable_bytes(std::span(rows)), 2, 4, 4,
                              RopeOrder::kInterleaved, RopeOrder::kRotateHalf, scratch)
                  .ok());
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(RopeOrderTest, RejectsMismatchedSizes) {
  std::vector<std::byte> data(40), scratch(16);
  Status s =
      ReorderRopeRows(data, 2, 4, 4, RopeOrder::kRotateHalf, RopeOrder::kInterleaved, scratch);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  std::vector<std::byte> small(8);
  std::vector<std::byte> ok_data(32);
  EXPECT_FALSE(
      ReorderRopeRows(ok_data, 2, 4, 4, RopeOrder::kRotateHalf, RopeOrder::kInterleaved, small)
          .ok());
}

}  // namespace
}  // namespace relayout
