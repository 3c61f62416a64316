#include "kernels/cpu/layout/quant_row_group.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant_format.h"

namespace relayout::kernels {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// The layout from its definition: field-by-field, byte offsets computed here.
std::vector<uint8_t> ExpectedInterleave(const std::vector<uint8_t>& src,
                                        const QuantRowGroupParams& p) {
  std::vector<uint8_t> out = src;  // tail rows stay
  const size_t bb = p.format.block_bytes, nf = p.format.scale_fields, g = p.group_rows;
  const size_t payload = bb - 2 * nf;
  const size_t row_bytes = p.blocks_per_row * bb;
  for (size_t grp = 0; grp < p.rows / g; ++grp) {
    for (size_t r = 0; r < g; ++r) {
      for (size_t b = 0; b < p.blocks_per_row; ++b) {
        const uint8_t* block = &src[(grp * g + r) * row_bytes + b * bb];
        uint8_t* gb = &out[grp * g * row_bytes + b * g * bb];
        for (size_t f = 0; f < nf; ++f) std::memcpy(gb + f * 2 * g + 2 * r, block + 2 * f, 2);
        std::memcpy(gb + 2 * nf * g + r * payload, block + 2 * nf, payload);
      }
    }
  }
  return out;
}

struct Case {
  const char* name;
  QuantBlockFormat format;
};

TEST(QuantRowGroupTest, FormatsMatchGgufBlockStructs) {
  EXPECT_EQ(kQ8_0BlockFormat.block_bytes, sizeof(BlockQ8_0));
  EXPECT_EQ(kQ4_0BlockFormat.block_bytes, sizeof(BlockQ4_0));
  EXPECT_EQ(kQ4_1BlockFormat.block_bytes, sizeof(BlockQ4_1));
  EXPECT_EQ(offsetof(BlockQ4_1, qs), 2u * kQ4_1BlockFormat.scale_fields);
  EXPECT_EQ(offsetof(BlockQ8_0, qs), 2u * kQ8_0BlockFormat.scale_fields);
}

TEST(QuantRowGroupTest, Q4_0GroupBlockStoresScalesThenPayloads) {
  const QuantRowGroupParams p{
      .rows = 2, .blocks_per_row = 1, .format = kQ4_0BlockFormat, .group_rows = 2};
  std::vector<uint8_t> src(36);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i);
  std::vector<uint8_t> dst(36);
  ASSERT_TRUE(QuantRowGroupForward(src.data(), dst.data(), p, 0, 1));
  // d of row 0 (bytes 0,1), d of row 1 (18,19), qs of row 0 (2..17), qs of row 1 (20..35).
  std::vector<uint8_t> want = {0, 1, 18, 19};
  for (uint8_t i = 2; i < 18; ++i) want.push_back(i);
  for (uint8_t i = 20; i < 36; ++i) want.push_back(i);
  EXPECT_EQ(dst, want);
}

TEST(QuantRowGroupTest, RoundTripAndInPlaceMatchOnAllShapes) {
  const Case cases[] = {{"Q8_0", kQ8_0BlockFormat},
                        {"Q4_0", kQ4_0BlockFormat},
                        {"Q4_1", kQ4_1BlockFormat},
                        {"generic", QuantBlockFormat{24, 3}}};
  uint32_t seed = 11;
  for (const Case& c : cases) {
    for (size_t g : {4, 8, 16}) {
      for (size_t n = 1; n <= 37; ++n) {
        for (size_t blocks : {1, 2, 3, 5}) {
          const QuantRowGroupParams p{
              .rows = n, .blocks_per_row = blocks, .format = c.format, .group_rows = g};
          SCOPED_TRACE(testing::Message()
                       << c.name << " N=" << n << " blocks=" << blocks << " G=" << g);
          const std::vector<uint8_t> src = RandomBytes(QuantRowGroupTensorBytes(p), seed++);
          const size_t groups = QuantRowGroupCount(p);
          std::vector<uint8_t> fwd(src.size());
          ASSERT_TRUE(QuantRowGroupForward(src.data(), fwd.data(), p, 0, groups));
          ASSERT_EQ(fwd, ExpectedInterleave(src, p));

          std::vector<uint8_t> scratch(QuantRowGroupScratchBytes(p));
          std::vector<uint8_t> data = src;
          ASSERT_TRUE(QuantRowGroupForwardInPlace(data.data(), p, 0, groups, scratch.data(),
                                                  scratch.size()));
          ASSERT_EQ(data, fwd);
          std::vector<uint8_t> back(src.size());
          ASSERT_TRUE(QuantRowGroupInverse(fwd.data(), back.data(), p, 0, groups));
          ASSERT_EQ(back, src);
          ASSERT_TRUE(QuantRowGroupInverseInPlace(data.data(), p, 0, groups, scratch.data(),
                                                  scratch.size()));
          ASSERT_EQ(data, src);
        }
      }
    }
  }
}

TEST(QuantRowGroupTest, ScratchOneByteShortIsRefused) {
  const QuantRowGroupParams p{
      .rows = 8, .blocks_per_row = 2, .format = kQ4_1BlockFormat, .group_rows = 8};
  std::vector<uint8_t> data(QuantRowGroupTensorBytes(p));
  std::vector<uint8_t> scratch(QuantRowGroupScratchBytes(p) - 1);
  EXPECT_FALSE(QuantRowGroupForwardInPlace(data.data(), p, 0, 1, scratch.data(), scratch.size()));
}

TEST(QuantRowGroupTest, FormatWithoutPayloadIsInvalid) {
  const QuantRowGroupParams p{
      .rows = 8, .blocks_per_row = 2, .format = QuantBlockFormat{4, 2}, .group_rows = 8};
  EXPECT_FALSE(QuantRowGroupParamsValid(p));
}

}  // namespace
}  // namespace relayout::kernels
