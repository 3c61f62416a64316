#include "kernels/cpu/layout/widen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace relayout::kernels {
namespace {

TEST(WidenTest, EveryHalfValueRoundTripsExactly) {
  std::vector<uint16_t> all(65536), back(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> wide(all.size());
  for (const bool bf16 : {false, true}) {
    if (bf16) {
      WidenBF16ToF32(all.data(), wide.data(), all.size());
      NarrowF32ToBF16(wide.data(), back.data(), all.size());
    } else {
      WidenF16ToF32(all.data(), wide.data(), all.size());
      NarrowF32ToF16(wide.data(), back.data(), all.size());
    }
    for (size_t i = 0; i < all.size(); ++i) {
      if (std::isnan(wide[i])) {
        EXPECT_TRUE(std::isnan(wide[i]));
        continue;
      }
      ASSERT_EQ(back[i], all[i]) << (bf16 ? "bf16 " : "f16 ") << i;
    }
  }
}

TEST(WidenTest, KnownValues) {
  const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7c00};  // 1, -2, 2^-24, inf
  float out[4];
  WidenF16ToF32(f16, out, 4);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(out[3]));
  const uint16_t bf16[] = {0x3f80, 0x4049};  // 1, 3.140625
  WidenBF16ToF32(bf16, out, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.140625f);
}

}  // namespace
}  // namespace relayout::kernels
