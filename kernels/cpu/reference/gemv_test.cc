#include "kernels/cpu/reference/gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/reference/block_dequant.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels::reference {
namespace {

std::vector<float> RandomFloats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

// Random weights in the element encoding, as bytes.
std::vector<uint8_t> RandomWeights(FloatElem elem, size_t n, std::mt19937& rng) {
  const std::vector<float> f = RandomFloats(n, rng);
  std::vector<uint8_t> out(n * (elem == FloatElem::kF32 ? 4 : 2));
  for (size_t i = 0; i < n; ++i) {
    if (elem == FloatElem::kF32) {
      std::memcpy(&out[i * 4], &f[i], 4);
    } else {
      const uint16_t h = elem == FloatElem::kF16 ? F32ToF16(f[i]) : F32ToBF16(f[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

// Exact equality, bit for bit (the accumulation order is the same by design).
void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST(GemvTest, RowMajorF32MatchesDoubleAccumulation) {
  std::mt19937 rng(1);
  const size_t n = 13, k = 77;
  const std::vector<uint8_t> w = RandomWeights(FloatElem::kF32, n * k, rng);
  const std::vector<float> x = RandomFloats(k, rng);
  std::vector<float> y(n);
  GemvRowMajor(FloatElem::kF32, w.data(), n, k, x.data(), y.data());
  for (size_t r = 0; r < n; ++r) {
    double want = 0, mag = 0;
    for (size_t c = 0; c < k; ++c) {
      float wf;
      std::memcpy(&wf, &w[(r * k + c) * 4], 4);
      want += static_cast<double>(wf) * x[c];
      mag += std::fabs(static_cast<double>(wf) * x[c]);
    }
    EXPECT_NEAR(y[r], want, 1e-5 * mag) << "row " << r;
  }
}

TEST(GemvTest, RowGroupLayoutsMatchRowMajorBitForBit) {
  std::mt19937 rng(2);
  const size_t gks[][2] = {{8, 8}, {16, 16}, {4, 3}, {16, 2}};
  for (FloatElem elem : {FloatElem::kF32, FloatElem::kF16, FloatElem::kBF16}) {
    for (const auto& gk : gks) {
      for (size_t n : {1, 7, 8, 17, 37}) {
        for (size_t k : {1, 5, 16, 33}) {
          SCOPED_TRACE(testing::Message() << "elem=" << static_cast<int>(elem) << " N=" << n
                                          << " K=" << k << " G=" << gk[0] << " KB=" << gk[1]);
          const RowGroupParams p{.rows = n,
                                 .cols = k,
                                 .elem_bytes = size_t{elem == FloatElem::kF32 ? 4u : 2u},
                                 .group_rows = gk[0],
                                 .k_block = gk[1]};
          const std::vector<uint8_t> w = RandomWeights(elem, n * k, rng);
          const std::vector<float> x = RandomFloats(k, rng);
          std::vector<uint8_t> wp(w.size());
          ASSERT_TRUE(RowGroupInterleaveForward(w.data(), wp.data(), p, 0, RowGroupCount(p)));
          std::vector<float> y_common(n), y_pref(n);
          GemvRowMajor(elem, w.data(), n, k, x.data(), y_common.data());
          GemvRowGroup(elem, p, wp.data(), x.data(), y_pref.data());
          ExpectSameBits(y_common, y_pref);
        }
      }
    }
  }
}

TEST(GemvTest, Bf16KPairMatchesRowMajorBitForBit) {
  std::mt19937 rng(3);
  for (size_t n : {3, 16, 35}) {
    for (size_t k : {1, 2, 7, 64}) {
      const Bf16KPairParams p{.rows = n, .cols = k, .group_rows = kBf16KPairGroupRows};
      const std::vector<uint8_t> w = RandomWeights(FloatElem::kBF16, n * k, rng);
      const std::vector<float> x = RandomFloats(k, rng);
      std::vector<uint8_t> wp(w.size());
      ASSERT_TRUE(Bf16KPairForward(w.data(), wp.data(), p, 0, Bf16KPairGroupCount(p)));
      std::vector<float> y_common(n), y_pref(n);
      GemvRowMajor(FloatElem::kBF16, w.data(), n, k, x.data(), y_common.data());
      GemvBf16KPair(p, wp.data(), x.data(), y_pref.data());
      ExpectSameBits(y_common, y_pref);
    }
  }
}

// Random blocks with sane f16 scales (random bits could be NaN/Inf).
std::vector<uint8_t> RandomBlocks(QuantKind kind, size_t blocks, std::mt19937& rng) {
  const QuantBlockFormat fmt = QuantBlockFormatOf(kind);
  std::uniform_real_distribution<float> scale(-0.1f, 0.1f);
  std::vector<uint8_t> out(blocks * fmt.block_bytes);
  for (size_t b = 0; b < blocks; ++b) {
    uint8_t* block = &out[b * fmt.block_bytes];
    for (uint32_t f = 0; f < fmt.scale_fields; ++f) {
      const uint16_t h = F32ToF16(scale(rng));
      std::memcpy(block + 2 * f, &h, 2);
    }
    for (uint32_t i = 2 * fmt.scale_fields; i < fmt.block_bytes; ++i) {
      block[i] = static_cast<uint8_t>(rng());
    }
  }
  return out;
}

TEST(GemvTest, QuantRowGroupMatchesGgufBlocksBitForBit) {
  std::mt19937 rng(4);
  for (QuantKind kind : {QuantKind::kQ8_0, QuantKind::kQ4_0, QuantKind::kQ4_1}) {
    for (size_t g : {4, 8, 16}) {
      for (size_t n : {1, 8, 9, 23, 37}) {
        for (size_t blocks : {1, 3}) {
          SCOPED_TRACE(testing::Message() << "kind=" << static_cast<int>(kind) << " N=" << n
                                          << " blocks=" << blocks << " G=" << g);
          const QuantRowGroupParams p{.rows = n,
                                      .blocks_per_row = blocks,
                                      .format = QuantBlockFormatOf(kind),
                                      .group_rows = g};
          const std::vector<uint8_t> w = RandomBlocks(kind, n * blocks, rng);
          const std::vector<float> x = RandomFloats(blocks * 32, rng);
          std::vector<uint8_t> wp(w.size());
          ASSERT_TRUE(QuantRowGroupForward(w.data(), wp.data(), p, 0, QuantRowGroupCount(p)));
          std::vector<float> y_common(n), y_pref(n);
          GemvGgufBlocks(kind, w.data(), n, blocks, x.data(), y_common.data());
          GemvQuantRowGroup(kind, p, wp.data(), x.data(), y_pref.data());
          ExpectSameBits(y_common, y_pref);
        }
      }
    }
  }
}

TEST(BlockDequantTest, Q4NibblesPairElementJWithJPlus16) {
  uint8_t qs[16];
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((15 - j) << 4 | j);
  float out[32];
  DequantizeQ4_0Fields(F32ToF16(1.0f), qs, out);
  EXPECT_EQ(out[0], -8.0f);
  EXPECT_EQ(out[15], 7.0f);
  EXPECT_EQ(out[16], 7.0f);
  EXPECT_EQ(out[31], -8.0f);
  DequantizeQ4_1Fields(F32ToF16(0.5f), F32ToF16(-1.0f), qs, out);
  EXPECT_EQ(out[3], 0.5f);   // 0.5 * 3 - 1
  EXPECT_EQ(out[16], 6.5f);  // 0.5 * 15 - 1
  uint8_t q8[32];
  for (int j = 0; j < 32; ++j) q8[j] = static_cast<uint8_t>(j - 16);
  DequantizeQ8_0Fields(F32ToF16(2.0f), q8, out);
  EXPECT_EQ(out[0], -32.0f);
  EXPECT_EQ(out[31], 30.0f);
}

}  // namespace
}  // namespace relayout::kernels::reference
