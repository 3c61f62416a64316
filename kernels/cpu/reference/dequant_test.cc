#include "kernels/cpu/reference/dequant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>
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

TEST(DequantizeRowTest, KnownIQ4_NLBlockLooksUpTheTable) {
  BlockIQ4_NL b;
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[kQK];
  DequantizeRowIQ4_NL(&b, out, kQK);
  EXPECT_EQ(out[0], -63.5f);   // 0.5 * -127
  EXPECT_EQ(out[16], 56.5f);   // 0.5 * 113
  EXPECT_EQ(out[8], 0.5f);     // 0.5 * 1
  EXPECT_EQ(out[31], -63.5f);  // nibble 0 again
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.5f * kIQ4_NLValues[j]) << j;
    EXPECT_EQ(out[j + 16], 0.5f * kIQ4_NLValues[15 - j]) << j;
  }
}

// Builders of K-quant blocks from per-element quants and per-sub-block
// scales, written from the layout (bit positions in, rather than out), so
// the dequantizers are checked against an independent reading of it.

// Element 128 * h + 32 * k + l's two low bits at bits 2k of qs[32 * h + l].
void PackLow2(const int* q2, uint8_t* qs) {
  std::memset(qs, 0, kQKK / 4);
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        qs[32 * h + l] |= static_cast<uint8_t>((q2[128 * h + 32 * k + l] & 3) << (2 * k));
      }
    }
  }
}

BlockQ2_K MakeQ2_K(float d, float dmin, const int* sc, const int* m, const int* q) {
  BlockQ2_K b;
  b.d = F32ToF16(d);
  b.dmin = F32ToF16(dmin);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<uint8_t>(sc[s] | (m[s] << 4));
  PackLow2(q, b.qs);
  return b;
}

// sc6[s] in 0..63 (the scale is sc6 - 32), q[e] in -4..3.
BlockQ3_K MakeQ3_K(float d, const int* sc6, const int* q) {
  BlockQ3_K b;
  b.d = F32ToF16(d);
  std::memset(b.scales, 0, sizeof b.scales);
  for (int s = 0; s < 16; ++s) {
    b.scales[s % 8] |= static_cast<uint8_t>((sc6[s] & 0xf) << (s < 8 ? 0 : 4));
    b.scales[8 + s % 4] |= static_cast<uint8_t>((sc6[s] >> 4) << (2 * (s / 4)));
  }
  int low[kQKK];
  std::memset(b.hmask, 0, sizeof b.hmask);
  for (int e = 0; e < kQKK; ++e) {
    low[e] = q[e] & 3;  // q + 4 for negative q
    // The high bit is set for q >= 0 (it cancels the -4).
    if (q[e] >= 0) b.hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
  }
  PackLow2(low, b.qs);
  return b;
}

// sc[j], m[j] in 0..63 for sub-blocks j = 0..7, in get_scale_min_k4's packing.
void PackScaleMin(const int* sc, const int* m, uint8_t* q) {
  std::memset(q, 0, 12);
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
  }
}

// q[e] in 0..15 (Q4_K) or 0..31 (Q5_K).
BlockQ4_K MakeQ4_K(float d, float dmin, const int* sc, const int* m, const int* q) {
  BlockQ4_K b;
  b.d = F32ToF16(d);
  b.dmin = F32ToF16(dmin);
  PackScaleMin(sc, m, b.scales);
  for (int p = 0; p < 4; ++p) {
    for (int l = 0; l < 32; ++l) {
      b.qs[32 * p + l] = static_cast<uint8_t>(q[64 * p + l] | (q[64 * p + 32 + l] << 4));
    }
  }
  return b;
}

BlockQ5_K MakeQ5_K(float d, float dmin, const int* sc, const int* m, const int* q) {
  int low[kQKK];
  for (int e = 0; e < kQKK; ++e) low[e] = q[e] & 0xf;
  const BlockQ4_K b4 = MakeQ4_K(d, dmin, sc, m, low);
  BlockQ5_K b;
  b.d = b4.d;
  b.dmin = b4.dmin;
  std::memcpy(b.scales, b4.scales, sizeof b.scales);
  std::memcpy(b.qs, b4.qs, sizeof b.qs);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int e = 0; e < kQKK; ++e) b.qh[e % 32] |= static_cast<uint8_t>((q[e] >> 4) << (e / 32));
  return b;
}

// Small scales and quants under power-of-two super-scales: every product and
// difference below is exact, so the expectations are exact too.
TEST(DequantizeRowTest, KnownQ2_KBlockFollowsItsLayout) {
  int sc[16], m[16], q[kQKK];
  for (int s = 0; s < 16; ++s) {
    sc[s] = s;
    m[s] = 15 - s;
  }
  for (int e = 0; e < kQKK; ++e) q[e] = (e * 7 + e / 32) % 4;
  const BlockQ2_K b = MakeQ2_K(0.5f, 0.25f, sc, m, q);
  float out[kQKK];
  DequantizeRowQ2_K(&b, out, kQKK);
  EXPECT_EQ(out[0], -3.75f);  // 0.5 * 0 * 0 - 0.25 * 15
  EXPECT_EQ(out[17], -2.0f);  // q 3, sub-block 1: 0.5 * 1 * 3 - 0.25 * 14
  EXPECT_EQ(out[250], 7.5f);  // q 1, sub-block 15: 0.5 * 15 * 1 - 0
  for (int e = 0; e < kQKK; ++e) {
    const int s = e / 16;
    EXPECT_EQ(out[e], 0.5f * sc[s] * q[e] - 0.25f * m[s]) << e;
  }
}

TEST(DequantizeRowTest, KnownQ3_KBlockFollowsItsLayout) {
  int sc6[16], q[kQKK];
  for (int s = 0; s < 16; ++s) sc6[s] = (s * 13 + 5) % 64;  // spans both signs and all 6 bits
  for (int e = 0; e < kQKK; ++e) q[e] = (e * 5 + e / 64) % 8 - 4;
  const BlockQ3_K b = MakeQ3_K(0.25f, sc6, q);
  float out[kQKK];
  DequantizeRowQ3_K(&b, out, kQKK);
  EXPECT_EQ(out[0], 27.0f);     // 0.25 * (5 - 32) * -4
  EXPECT_EQ(out[49], 3.0f);     // sub-block 3: 0.25 * (44 - 32) * 1
  EXPECT_EQ(out[255], -12.0f);  // sub-block 15: 0.25 * (8 - 32) * 2
  for (int e = 0; e < kQKK; ++e) {
    EXPECT_EQ(out[e], 0.25f * (sc6[e / 16] - 32) * q[e]) << e;
  }
}

TEST(DequantizeRowTest, KnownQ4_KAndQ5_KBlocksFollowTheirLayout) {
  int sc[8], m[8], q4[kQKK], q5[kQKK];
  for (int j = 0; j < 8; ++j) {
    sc[j] = (j * 23 + 7) % 64;  // the high bits of sub-blocks 4..7 matter
    m[j] = (j * 41 + 60) % 64;
  }
  for (int e = 0; e < kQKK; ++e) {
    q5[e] = (e * 11 + e / 32) % 32;
    q4[e] = q5[e] % 16;
  }
  const BlockQ4_K b4 = MakeQ4_K(0.5f, 0.125f, sc, m, q4);
  const BlockQ5_K b5 = MakeQ5_K(0.5f, 0.125f, sc, m, q5);
  float out4[kQKK], out5[kQKK];
  DequantizeRowQ4_K(&b4, out4, kQKK);
  DequantizeRowQ5_K(&b5, out5, kQKK);
  EXPECT_EQ(out4[0], -7.5f);       // 0.5 * 7 * 0 - 0.125 * 60
  EXPECT_EQ(out4[255], 236.625f);  // sub-block 7: 0.5 * 40 * 12 - 0.125 * 27
  EXPECT_EQ(out5[255], 556.625f);  // 0.5 * 40 * 28 - 0.125 * 27
  for (int e = 0; e < kQKK; ++e) {
    const int j = e / 32;
    EXPECT_EQ(out4[e], 0.5f * sc[j] * q4[e] - 0.125f * m[j]) << e;
    EXPECT_EQ(out5[e], 0.5f * sc[j] * q5[e] - 0.125f * m[j]) << e;
  }
}

// The block types added with the K-quants, for the edge cases below: block
// size, the byte offsets of the f16 fields (d first, then dmin or m).
struct BlockType {
  const char* name;
  DequantizeRowFn dequantize;
  int elems;
  size_t bytes;
  std::vector<size_t> halves;
};

std::vector<BlockType> NewBlockTypes() {
  return {
      {"IQ4_NL", DequantizeRowIQ4_NL, kQK, sizeof(BlockIQ4_NL), {offsetof(BlockIQ4_NL, d)}},
      {"Q2_K",
       DequantizeRowQ2_K,
       kQKK,
       sizeof(BlockQ2_K),
       {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}},
      {"Q3_K", DequantizeRowQ3_K, kQKK, sizeof(BlockQ3_K), {offsetof(BlockQ3_K, d)}},
      {"Q4_K",
       DequantizeRowQ4_K,
       kQKK,
       sizeof(BlockQ4_K),
       {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}},
      {"Q5_K",
       DequantizeRowQ5_K,
       kQKK,
       sizeof(BlockQ5_K),
       {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)}},
      {"Q6_K", DequantizeRowQ6_K, kQKK, sizeof(BlockQ6_K), {offsetof(BlockQ6_K, d)}},
  };
}

void SetHalf(std::vector<uint8_t>& block, size_t offset, float v) {
  const uint16_t h = F32ToF16(v);
  std::memcpy(block.data() + offset, &h, 2);
}

TEST(DequantizeRowTest, ZeroSuperScalesGiveZeros) {
  for (const BlockType& t : NewBlockTypes()) {
    std::vector<uint8_t> block(t.bytes);
    for (size_t i = 0; i < t.bytes; ++i) block[i] = static_cast<uint8_t>(i * 151 + 29);
    for (size_t offset : t.halves) SetHalf(block, offset, 0.0f);
    std::vector<float> out(t.elems, 1.0f);
    t.dequantize(block.data(), out.data(), t.elems);
    for (int e = 0; e < t.elems; ++e) ASSERT_EQ(out[e], 0.0f) << t.name << " " << e;
  }
}

// All quant, scale and min bits set: the largest code of every field.
TEST(DequantizeRowTest, AllBitsSetGiveTheTopCodes) {
  struct Want {
    const char* name;
    float value;
  };
  // d = 1, dmin = 0.5.
  const Want want[] = {
      {"IQ4_NL", 113.0f},             // table entry 15
      {"Q2_K", 15 * 3 - 0.5f * 15},   // scale 15, q 3, min 15
      {"Q3_K", (63 - 32) * 3.0f},     // scale 63 - 32, q 3 with the high bit set
      {"Q4_K", 63 * 15 - 0.5f * 63},  // scale 63, q 15, min 63
      {"Q5_K", 63 * 31 - 0.5f * 63},  // q 31
      {"Q6_K", -1.0f * (63 - 32)},    // int8 scale -1, q 63 - 32
  };
  const std::vector<BlockType> types = NewBlockTypes();
  ASSERT_EQ(types.size(), std::size(want));
  for (size_t k = 0; k < types.size(); ++k) {
    const BlockType& t = types[k];
    ASSERT_STREQ(t.name, want[k].name);
    std::vector<uint8_t> block(t.bytes, 0xff);
    SetHalf(block, t.halves[0], 1.0f);
    if (t.halves.size() > 1) SetHalf(block, t.halves[1], 0.5f);
    std::vector<float> out(t.elems);
    t.dequantize(block.data(), out.data(), t.elems);
    for (int e = 0; e < t.elems; ++e) ASSERT_EQ(out[e], want[k].value) << t.name << " " << e;
  }
}

TEST(DequantizeRowTest, EmptyRowsWriteNothing) {
  for (const BlockType& t : NewBlockTypes()) {
    const uint8_t block[1] = {0};
    float out[1] = {42.0f};
    t.dequantize(block, out, 0);
    EXPECT_EQ(out[0], 42.0f) << t.name;
  }
}

// Three blocks back to back at an odd address, the second and third a copy
// of the first with every f16 field doubled and quadrupled: their outputs
// are the first's times 2 and 4 exactly, so each block is read from its own
// bytes and written to its own place.
TEST(DequantizeRowTest, BlocksBackToBackAtAnyAlignment) {
  for (const BlockType& t : NewBlockTypes()) {
    std::vector<uint8_t> first(t.bytes);
    for (size_t i = 0; i < t.bytes; ++i) first[i] = static_cast<uint8_t>(i * 97 + 3);
    const float base[2] = {0.375f, 0.0625f};
    std::vector<uint8_t> buf(1 + 3 * t.bytes);
    for (int k = 0; k < 3; ++k) {
      std::vector<uint8_t> block = first;
      for (size_t h = 0; h < t.halves.size(); ++h) {
        SetHalf(block, t.halves[h], base[h] * static_cast<float>(1 << k));
      }
      std::memcpy(buf.data() + 1 + k * t.bytes, block.data(), t.bytes);
    }
    std::vector<float> out(3 * t.elems);
    t.dequantize(buf.data() + 1, out.data(), 3 * t.elems);
    for (int k = 1; k < 3; ++k) {
      for (int e = 0; e < t.elems; ++e) {
        ASSERT_EQ(out[k * t.elems + e], out[e] * static_cast<float>(1 << k))
            << t.name << " block " << k << " element " << e;
      }
    }
    EXPECT_NE(out[0], 0.0f) << t.name;
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
