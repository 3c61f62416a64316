#include "kernels/cpu/reference/dequant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/quant_format.h"

namespace relayout::kernels::reference {
namespace {

float Bits(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

TEST(F16Test, SpecialValuesConvertExactly) {
  EXPECT_EQ(Bits(F16ToF32(0x0000)), 0x00000000u);
  EXPECT_EQ(Bits(F16ToF32(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(F16ToF32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(F32ToF16(std::nanf("")) & 0x7c00, 0x7c00);
  EXPECT_NE(F32ToF16(std::nanf("")) & 0x03ff, 0);
}

TEST(F16Test, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f)))) << h;
    } else {
      EXPECT_EQ(F32ToF16(f), h) << h;
    }
  }
}

TEST(F16Test, RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);          // at 1.0
  EXPECT_EQ(F32ToF16(1.0f + ulp / 2), 0x3c00);      // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + 3 * ulp / 2), 0x3c02);  // tie -> even
  EXPECT_EQ(F32ToF16(std::nextafter(1.0f + ulp / 2, 2.0f)), 0x3c01);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // tie between 65504 and 2^16 -> inf
  const float sub = std::ldexp(1.0f, -24);
  EXPECT_EQ(F32ToF16(sub / 2), 0x0000);      // tie -> even (zero)
  EXPECT_EQ(F32ToF16(3 * sub / 2), 0x0002);  // tie -> even
  EXPECT_EQ(F32ToF16(std::nextafter(sub / 2, 1.0f)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(F32ToF16(-std::ldexp(1023.5f, -24)), 0x8400);  // rounds up into the normals
}

TEST(BF16Test, ConvertsExactlyAndRoundsToNearestEven) {
  EXPECT_EQ(BF16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(Bits(BF16ToF32(0x8000)), 0x80000000u);
  EXPECT_EQ(BF16ToF32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(Bits(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(F32ToBF16(Bits(0x3f818000u)), 0x3f82);  // tie -> even
  EXPECT_EQ(F32ToBF16(Bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(F32ToBF16(Bits(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(Bits(0x7f800001u)))));  // payload in low bits only
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = BF16ToF32(static_cast<uint16_t>(b));
    if (!std::isnan(f)) {
      EXPECT_EQ(F32ToBF16(f), b);
    }
  }
}

TEST(DequantizeRowTest, FloatRowsConvertEachElement) {
  const float f32[3] = {1.5f, -0.0f, 3e38f};
  float out[3];
  DequantizeRowF32(f32, out, 3);
  EXPECT_EQ(std::memcmp(out, f32, sizeof out), 0);
  const uint16_t f16[3] = {0x3c00, 0xc000, 0x7bff};
  DequantizeRowF16(f16, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 65504.0f);
  const uint16_t bf16[2] = {0x3f80, 0xc040};
  DequantizeRowBF16(bf16, out, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
}

TEST(DequantizeRowTest, KnownQ8_0BlockGivesScaledIntegers) {
  BlockQ8_0 b;
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < kQK; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  float out[kQK];
  DequantizeRowQ8_0(&b, out, kQK);
  for (int j = 0; j < kQK; ++j) EXPECT_EQ(out[j], (j * 8 - 128) * 0.5f) << j;
}

TEST(DequantizeRowTest, KnownQ4BlocksPutLowNibblesFirst) {
  BlockQ4_0 b0;
  b0.d = F32ToF16(2.0f);
  BlockQ4_1 b1;
  b1.d = F32ToF16(0.5f);
  b1.m = F32ToF16(-1.0f);
  for (int j = 0; j < 16; ++j) {
    b0.qs[j] = b1.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  }
  float out0[kQK], out1[kQK];
  DequantizeRowQ4_0(&b0, out0, kQK);
  DequantizeRowQ4_1(&b1, out1, kQK);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out0[j], (j - 8) * 2.0f);
    EXPECT_EQ(out0[j + 16], (15 - j - 8) * 2.0f);
    EXPECT_EQ(out1[j], j * 0.5f - 1.0f);
    EXPECT_EQ(out1[j + 16], (15 - j) * 0.5f - 1.0f);
  }
}

TEST(DequantizeRowTest, KnownQ5BlocksTakeFifthBitFromQh) {
  BlockQ5_0 b0;
  BlockQ5_1 b1;
  b0.d = b1.d = F32ToF16(1.0f);
  b1.m = F32ToF16(100.0f);
  const uint32_t qh = 0xa5c3f00fu;
  std::memcpy(b0.qh, &qh, 4);  // little-endian host, as the format
  std::memcpy(b1.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b0.qs[j] = b1.qs[j] = static_cast<uint8_t>((j * 5) & 0xff);
  float out0[kQK], out1[kQK];
  DequantizeRowQ5_0(&b0, out0, kQK);
  DequantizeRowQ5_1(&b1, out1, kQK);
  for (int k = 0; k < kQK; ++k) {
    const int nib = k < 16 ? (b0.qs[k] & 0xf) : (b0.qs[k - 16] >> 4);
    const int q = nib | (((qh >> k) & 1) << 4);
    EXPECT_EQ(out0[k], q - 16) << k;
    EXPECT_EQ(out1[k], q + 100) << k;
  }
}

TEST(DequantizeRowTest, KnownQ6_KBlockFollowsItsLayout) {
  uint8_t block[kBlockQ6_KBytes];
  for (size_t i = 0; i < 208; ++i) block[i] = static_cast<uint8_t>(i * 37 + 11);
  const uint16_t d = F32ToF16(0.25f);
  std::memcpy(block + 208, &d, 2);
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
  float out[kQKK];
  DequantizeRowQ6_K(block, out, kQKK);
  for (int idx = 0; idx < kQKK; ++idx) {
    const int half = idx / 128, k = (idx % 128) / 32, l = idx % 32;
    const uint8_t lo = ql[half * 64 + l + (k & 1) * 32];
    const int nib = k < 2 ? (lo & 0xf) : (lo >> 4);
    const int hi = (qh[half * 32 + l] >> (2 * k)) & 3;
    const int q = (nib | (hi << 4)) - 32;
    const float want = 0.25f * sc[half * 8 + l / 16 + 2 * k] * q;
    EXPECT_EQ(out[idx], want) << idx;
  }
}

std::vector<float> RandomRow(int64_t n, float scale, float shift, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng) * scale + shift;
  return x;
}

// Per block, the largest error round-to-nearest allows, plus the f16
// rounding of the scale (relative 2^-11) and of the minimum.
TEST(QuantizeRowTest, RoundTripErrorsStayWithinOneStep) {
  constexpr int64_t n = 32 * 64;
  for (float scale : {1e-3f, 1.0f, 300.0f}) {
    for (float shift : {0.0f, 0.7f}) {
      const std::vector<float> x = RandomRow(n, scale, shift * scale, 7);
      std::vector<BlockQ8_0> q8(n / kQK);
      std::vector<BlockQ4_0> q40(n / kQK);
      std::vector<BlockQ4_1> q41(n / kQK);
      QuantizeRowQ8_0(x.data(), q8.data(), n);
      QuantizeRowQ4_0(x.data(), q40.data(), n);
      QuantizeRowQ4_1(x.data(), q41.data(), n);
      std::vector<float> y8(n), y40(n), y41(n);
      DequantizeRowQ8_0(q8.data(), y8.data(), n);
      DequantizeRowQ4_0(q40.data(), y40.data(), n);
      DequantizeRowQ4_1(q41.data(), y41.data(), n);
      for (int64_t b = 0; b < n / kQK; ++b) {
        float amax = 0, mn = x[b * kQK], mx = x[b * kQK];
        for (int j = 0; j < kQK; ++j) {
          amax = std::max(amax, std::fabs(x[b * kQK + j]));
          mn = std::min(mn, x[b * kQK + j]);
          mx = std::max(mx, x[b * kQK + j]);
        }
        // Round-to-nearest costs half a step (a full step at Q4_0's clamped
        // end); the f16 rounding of each scale costs |q| times its error,
        // which is large where the scale is an f16 subnormal.
        const float slack = amax * 1e-6f;
        const float d8 = amax / 127;
        const float tol8 = d8 / 2 + 127 * std::fabs(F16ToF32(q8[b].d) - d8) + slack;
        const float d40 = amax / 8;
        const float tol40 = d40 + 8 * std::fabs(std::fabs(F16ToF32(q40[b].d)) - d40) + slack;
        const float d41 = (mx - mn) / 15;
        const float tol41 = d41 / 2 + 15 * std::fabs(F16ToF32(q41[b].d) - d41) +
                            std::fabs(F16ToF32(q41[b].m) - mn) + slack;
        for (int j = 0; j < kQK; ++j) {
          const int64_t i = b * kQK + j;
          ASSERT_LE(std::fabs(y8[i] - x[i]), tol8) << i << " scale " << scale;
          ASSERT_LE(std::fabs(y40[i] - x[i]), tol40) << i << " scale " << scale;
          ASSERT_LE(std::fabs(y41[i] - x[i]), tol41) << i << " scale " << scale;
        }
      }
    }
  }
}

TEST(QuantizeRowTest, MatchesGgmlOnAKnownRow) {
  float x[kQK];
  for (int j = 0; j < kQK; ++j) x[j] = static_cast<float>(j - 16);  // -16 .. 15
  BlockQ8_0 q8;
  QuantizeRowQ8_0(x, &q8, kQK);
  EXPECT_EQ(q8.d, F32ToF16(16.0f / 127));
  EXPECT_EQ(q8.qs[0], -127);
  EXPECT_EQ(q8.qs[16], 0);
  EXPECT_EQ(q8.qs[31], static_cast<int8_t>(std::round(15 * (127 / 16.0f))));
  BlockQ4_0 q40;
  QuantizeRowQ4_0(x, &q40, kQK);
  EXPECT_EQ(q40.d, F32ToF16(2.0f));  // -16 / -8
  EXPECT_EQ(q40.qs[0] & 0xf, 0);     // -16 / 2 + 8.5 -> 0
  EXPECT_EQ(q40.qs[0] >> 4, 8);      // element 16 is 0 -> 8
  EXPECT_EQ(q40.qs[15] >> 4, 15);    // element 31 is 15: 7.5 + 8.5 = 16 -> 15
  BlockQ4_1 q41;
  QuantizeRowQ4_1(x, &q41, kQK);
  EXPECT_EQ(q41.d, F32ToF16(31.0f / 15));
  EXPECT_EQ(q41.m, F32ToF16(-16.0f));
  EXPECT_EQ(q41.qs[0] & 0xf, 0);
  EXPECT_EQ(q41.qs[15] >> 4, 15);
}

TEST(QuantizeRowTest, ZeroRowQuantizesToZeroScale) {
  const float x[kQK] = {};
  BlockQ8_0 q8;
  BlockQ4_0 q40;
  BlockQ4_1 q41;
  QuantizeRowQ8_0(x, &q8, kQK);
  QuantizeRowQ4_0(x, &q40, kQK);
  QuantizeRowQ4_1(x, &q41, kQK);
  EXPECT_EQ(q8.d, 0);
  EXPECT_EQ(F16ToF32(q40.d), 0.0f);  // -0: ggml divides 0 by -8 too
  EXPECT_EQ(q40.qs[0], 0x88);
  EXPECT_EQ(q41.d, 0);
  EXPECT_EQ(q41.qs[0], 0);
  float y[kQK];
  DequantizeRowQ4_0(&q40, y, kQK);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace relayout::kernels::reference
