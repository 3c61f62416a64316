// layer_ops.cuh run by the SIMT harness against kernels/cpu/ops: RmsNorm,
// Rope, Add, AddRowBias, SiluGate, Embedding and Argmax on random inputs
// and edge values, odd sizes (dim 1, 3, 33, 4096 + 7; rows 1 and 5),
// operands only 4-byte aligned, outputs poisoned with NaN and guarded.
#include "kernels/cuda/kernels/layer_ops.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/ops/add.h"
#include "kernels/cpu/ops/argmax.h"
#include "kernels/cpu/ops/embedding.h"
#include "kernels/cpu/ops/rmsnorm.h"
#include "kernels/cpu/ops/rope.h"
#include "kernels/cpu/ops/silu_gate.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/kernels/quant_testing.h"
#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/cuda/simt/simt_testing.h"

namespace relayout::cuda {
namespace {

using simt::HostLauncher;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

using simt::GuardedBytes;

// Floats in guarded device-like memory, `offset` bytes past 16-byte
// alignment.
class Floats : public GuardedBytes {
 public:
  Floats(const std::vector<float>& v, size_t offset)
      : GuardedBytes(v.size() * sizeof(float), offset), n_(v.size()) {
    CopyFrom(v.data());
  }
  float* ptr() { return as<float>(); }
  std::vector<float> values() { return std::vector<float>(ptr(), ptr() + n_); }

 private:
  size_t n_;
};

std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

bool SameBits(float a, float b) { return FloatToBits(a) == FloatToBits(b); }

using simt::Erased;
using simt::RecordingLauncher;

// ============================================================================
// Launch shapes
// ============================================================================

TEST(LayerOpsTest, LaunchShapes) {
  EXPECT_EQ(RmsNormThreads(513), 96);
  EXPECT_EQ(RmsNormThreads(4096), 512);
  EXPECT_EQ(RmsNormThreads(4096 + 7), 544);
  EXPECT_EQ(RmsNormThreads(1 << 20), 1024);
  EXPECT_EQ(RopeThreads(1, 2), 32);
  EXPECT_EQ(RopeThreads(8, 128), 256);
  EXPECT_EQ(RopeThreads(3, 64), 96);
  EXPECT_EQ(RopeSharedBytes(128), 512u);
  EXPECT_EQ(ArgmaxThreads(1), 32);
  EXPECT_EQ(ArgmaxThreads(4096 + 7), 288);
  EXPECT_EQ(ArgmaxThreads(128256), 1024);
  EXPECT_EQ(ElementwiseBlocks(1), 1u);
  EXPECT_EQ(ElementwiseBlocks(257), 2u);
  EXPECT_EQ(ElementwiseBlocks(int64_t{1} << 40), 4096u);

  alignas(16) float buf[16];
  Float4Split s = SplitForFloat4(buf, buf + 4, buf + 8, 10);
  EXPECT_EQ(s.head, 0);
  EXPECT_EQ(s.groups, 2);
  s = SplitForFloat4(buf + 1, buf + 5, buf + 9, 10);  // same residue: 3 scalars first
  EXPECT_EQ(s.head, 3);
  EXPECT_EQ(s.groups, 1);
  s = SplitForFloat4(buf + 3, buf + 3, buf + 3, 2);  // one scalar to the boundary, no group
  EXPECT_EQ(s.head, 1);
  EXPECT_EQ(s.groups, 0);
  s = SplitForFloat4(buf + 2, buf + 2, buf + 2, 1);  // shorter than the head
  EXPECT_EQ(s.head, 1);
  EXPECT_EQ(s.groups, 0);
  s = SplitForFloat4(buf, buf + 1, buf, 10);  // residues differ: all scalar
  EXPECT_EQ(s.head, 10);
  EXPECT_EQ(s.groups, 0);
  EXPECT_EQ(Float4Head(buf, 9), 0);
  EXPECT_EQ(Float4Head(buf + 1, 9), 3);
  EXPECT_EQ(Float4Head(buf + 2, 9), 2);
  EXPECT_EQ(Float4Head(buf + 3, 9), 1);
  EXPECT_EQ(Float4Head(buf + 1, 2), 2);

  EXPECT_TRUE(EmbeddingSupported(RL_DTYPE_F32, 3));
  EXPECT_TRUE(EmbeddingSupported(RL_DTYPE_Q4_1, 64));
  EXPECT_FALSE(EmbeddingSupported(RL_DTYPE_Q8_0, 48));
  EXPECT_FALSE(EmbeddingSupported(RL_DTYPE_BF16, 0));
  EXPECT_TRUE(EmbeddingSupported(RL_DTYPE_Q5_0, 32));
  EXPECT_TRUE(EmbeddingSupported(RL_DTYPE_IQ4_NL, 64));
  EXPECT_FALSE(EmbeddingSupported(RL_DTYPE_Q4_K, 32));
  EXPECT_TRUE(EmbeddingSupported(RL_DTYPE_Q4_K, 512));
  EXPECT_FALSE(EmbeddingSupported(RL_DTYPE_Q6_K, 0));
  EXPECT_FALSE(EmbeddingSupported(14, 256));
}

TEST(LayerOpsTest, DispatchesVectorKernelsOnlyForAlignedOperands) {
  std::vector<void (*)()> k;
  const RecordingLauncher rec{&k};
  alignas(16) float buf[64] = {};
  int32_t ids[4] = {};
  RmsNorm(rec, buf, buf, 2, 8, 1e-5f, buf);
  RmsNorm(rec, buf, buf + 1, 2, 8, 1e-5f, buf);
  RmsNorm(rec, buf, buf, 2, 6, 1e-5f, buf);
  RmsNorm(rec, buf, buf, 2, 1024, 1e-5f, buf);
  RmsNorm(rec, buf, buf, 2, 1024, 1e-5f, buf + 3);
  Rope(rec, buf, 1, 2, 8, 8, ids, buf, RL_ROPE_INTERLEAVED);
  Rope(rec, buf + 1, 1, 2, 8, 8, ids, buf, RL_ROPE_INTERLEAVED);
  Rope(rec, buf, 1, 2, 7, 6, ids, buf, RL_ROPE_INTERLEAVED);
  Rope(rec, buf, 1, 2, 8, 8, ids, buf, RL_ROPE_HALVES);
  Rope(rec, buf, 1, 2, 8, 8, ids, buf, 7);  // no such pairing: nothing
  AddRowBias(rec, buf, 2, 8, buf);
  AddRowBias(rec, buf, 2, 7, buf);
  AddRowBias(rec, buf + 2, 2, 8, buf);
  EXPECT_TRUE(Embedding(rec, buf, RL_DTYPE_F32, 2, 8, ids, 1, buf));
  EXPECT_TRUE(Embedding(rec, buf + 1, RL_DTYPE_F32, 2, 8, ids, 1, buf));
  EXPECT_TRUE(Embedding(rec, buf, RL_DTYPE_F16, 2, 16, ids, 1, buf));
  EXPECT_TRUE(Embedding(rec, buf, RL_DTYPE_BF16, 2, 12, ids, 1, buf));
  EXPECT_TRUE(Embedding(rec, buf, RL_DTYPE_BF16, 2, 16, ids, 1, buf + 2));
  EXPECT_TRUE(Embedding(rec, buf, RL_DTYPE_Q4_0, 2, 32, ids, 1, buf));
  EXPECT_FALSE(Embedding(rec, buf, RL_DTYPE_Q4_0, 2, 33, ids, 1, buf));
  const std::vector<void (*)()> expected = {
      Erased(RmsNormWarpKernel<true>),
      Erased(RmsNormWarpKernel<false>),
      Erased(RmsNormWarpKernel<false>),
      Erased(RmsNormBlockKernel<true>),
      Erased(RmsNormBlockKernel<false>),
      Erased(RopeKernel<RL_ROPE_INTERLEAVED, true>),
      Erased(RopeKernel<RL_ROPE_INTERLEAVED, false>),
      Erased(RopeKernel<RL_ROPE_INTERLEAVED, false>),
      Erased(RopeKernel<RL_ROPE_HALVES, false>),
      Erased(AddRowBiasKernel<true>),
      Erased(AddRowBiasKernel<false>),
      Erased(AddRowBiasKernel<false>),
      Erased(EmbeddingKernel<RL_DTYPE_F32, true>),
      Erased(EmbeddingKernel<RL_DTYPE_F32, false>),
      Erased(EmbeddingKernel<RL_DTYPE_F16, true>),
      Erased(EmbeddingKernel<RL_DTYPE_BF16, false>),
      Erased(EmbeddingKernel<RL_DTYPE_BF16, false>),
      Erased(EmbeddingKernel<RL_DTYPE_Q4_0, false>),
  };
  ASSERT_EQ(k.size(), expected.size());
  for (size_t i = 0; i < k.size(); ++i) EXPECT_EQ(k[i], expected[i]) << "launch " << i;
}

// ============================================================================
// RmsNorm
// ============================================================================

void RunRmsNorm(int64_t rows, int64_t dim, float eps, bool in_place, size_t offset, uint32_t seed) {
  SCOPED_TRACE("rows " + std::to_string(rows) + " dim " + std::to_string(dim) + " eps " +
               std::to_string(eps) + (in_place ? " in place" : "") + " offset " +
               std::to_string(offset));
  std::mt19937 rng(seed);
  const std::vector<float> x = RandomFloats(rows * dim, rng, -2.0f, 2.0f);
  const std::vector<float> w = RandomFloats(dim, rng, 0.5f, 1.5f);
  std::vector<float> ref(x.size());
  kernels::RmsNorm(x.data(), w.data(), rows, dim, eps, ref.data());

  Floats x_dev(x, offset);
  Floats w_dev(w, offset == 0 ? 0 : 8);
  Floats out_dev(std::vector<float>(x.size(), kNaN), offset);
  float* out = in_place ? x_dev.ptr() : out_dev.ptr();
  RmsNorm(HostLauncher(), x_dev.ptr(), w_dev.ptr(), rows, dim, eps, out);
  EXPECT_TRUE(x_dev.GuardsIntact());
  EXPECT_TRUE(w_dev.GuardsIntact());
  EXPECT_TRUE(out_dev.GuardsIntact());
  // Both sides sum the same rounded squares in float, in different orders
  // (each within (dim - 1) 2^-24 of the exact sum), then do the same six
  // rounded operations: layer_ops.cuh's (dim + 16) 2^-24 relative bound.
  const double rel = static_cast<double>(dim + 16) * 0x1p-24;
  for (size_t i = 0; i < x.size(); ++i) {
    const float got = out[i];
    ASSERT_TRUE(std::isfinite(got)) << i;
    ASSERT_LE(std::fabs(static_cast<double>(got) - ref[i]), rel * std::fabs(ref[i]))
        << i << ": " << got << " vs " << ref[i];
  }
}

TEST(LayerOpsTest, RmsNormMatchesTheCpu) {
  uint32_t seed = 1;
  for (int64_t dim : {1, 3, 33, 128, 512, 513, 1024, 4096 + 7}) {
    for (int64_t rows : {1, 5}) {
      for (size_t offset : {0, 4}) {
        RunRmsNorm(rows, dim, 1e-5f, false, offset, seed++);
        RunRmsNorm(rows, dim, 1e-6f, true, offset, seed++);
        if (HasFailure()) return;
      }
    }
  }
}

// A row of zeros gives 1 / sqrt(eps) * 0 = 0; rows of +-2^60 have exact
// sums of squares in any order (so the result is exactly +-w); rows of
// +-2^64 overflow the sum to infinity on both sides (so +-0).
TEST(LayerOpsTest, RmsNormEdgeRows) {
  for (int64_t dim : {8, 600}) {
    const float big = dim == 8 ? 0x1p60f : 0x1p64f;
    std::vector<float> x(2 * dim, 0.0f);
    for (int64_t i = 0; i < dim; ++i) x[dim + i] = i % 2 ? -big : big;
    const std::vector<float> w(dim, 0.75f);
    std::vector<float> ref(x.size());
    kernels::RmsNorm(x.data(), w.data(), 2, dim, 1e-5f, ref.data());
    Floats x_dev(x, 0);
    Floats w_dev(w, 0);
    RmsNorm(HostLauncher(), x_dev.ptr(), w_dev.ptr(), 2, dim, 1e-5f, x_dev.ptr());
    const std::vector<float> got = x_dev.values();
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_TRUE(SameBits(got[i], ref[i])) << dim << " " << i << ": " << got[i] << " " << ref[i];
    }
  }
}

// ============================================================================
// Rope
// ============================================================================

// RopeCosSin against cos and sin in long double: within half an ulp (plus
// a hair for the double-precision evaluation), so at most one ulp from any
// faithful cosf/sinf.
TEST(LayerOpsTest, RopeCosSinIsNearlyCorrectlyRounded) {
  std::mt19937 rng(5);
  std::vector<float> angles = {0.0f,       -0.0f,      1e-30f,        0.785398f,
                               1.5707964f, 3.1415927f, -4.712389f,    105615.0f,
                               131071.0f,  1e6f,       2147483648.0f, 2.19993846e10f,
                               8.7e11f,    -1.0e12f,   1e-3f,         6.2831855f};
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> exp(-20, 39);
  for (int i = 0; i < 20000; ++i) {
    const float a = std::ldexp(mant(rng), exp(rng));
    angles.push_back(i % 2 ? a : -a);
  }
  for (const float a : angles) {
    float c, s;
    RopeCosSin(a, &c, &s);
    const long double cl = cosl(static_cast<long double>(a));
    const long double sl = sinl(static_cast<long double>(a));
    const auto half_ulp = [](float v) {
      const float up = std::nextafter(std::fabs(v), kInf);
      return 0.5L * (static_cast<long double>(up) - std::fabs(v)) * (1 + 0x1p-10L);
    };
    ASSERT_LE(std::fabs(c - cl), half_ulp(c)) << a;
    ASSERT_LE(std::fabs(s - sl), half_ulp(s)) << a;
  }
  float c, s;
  RopeCosSin(0x1p41f, &c, &s);  // out of the supported range
  EXPECT_TRUE(std::isnan(c) && std::isnan(s));
  RopeCosSin(kNaN, &c, &s);
  EXPECT_TRUE(std::isnan(c) && std::isnan(s));
}

struct RopeCase {
  int64_t rows;
  int32_t heads, head_dim, rope_dim;
  int32_t pairing;
};

void RunRope(const RopeCase& rc, size_t offset, kernels::RopeScalingKind scaling, uint32_t seed) {
  SCOPED_TRACE("rows " + std::to_string(rc.rows) + " heads " + std::to_string(rc.heads) +
               " head_dim " + std::to_string(rc.head_dim) + " rope_dim " +
               std::to_string(rc.rope_dim) + " pairing " + std::to_string(rc.pairing) + " offset " +
               std::to_string(offset));
  std::mt19937 rng(seed);
  const int64_t width = int64_t{rc.heads} * rc.head_dim;
  const std::vector<float> x = RandomFloats(rc.rows * width, rng, -3.0f, 3.0f);
  const int32_t special[] = {0, 1, 131071, 1000000, 2147483647};
  std::vector<int32_t> positions(rc.rows);
  for (int64_t r = 0; r < rc.rows; ++r) {
    positions[r] = r < 5 ? special[(r + seed) % 5] : static_cast<int32_t>(rng() % 200000);
  }
  kernels::RopeFrequencyParams params;
  params.theta = 500000.0;
  params.rope_dim = rc.rope_dim;
  params.scaling = scaling;
  params.factor = 8.0;
  std::vector<float> inv_freq(rc.rope_dim / 2);
  kernels::RopeInverseFrequencies(params, nullptr, inv_freq.data());

  std::vector<float> ref = x;
  kernels::ApplyRope(ref.data(), rc.rows, rc.heads, rc.head_dim, rc.rope_dim, positions.data(),
                     inv_freq.data(),
                     rc.pairing == RL_ROPE_INTERLEAVED ? kernels::RopePairing::kInterleaved
                                                       : kernels::RopePairing::kHalves);

  Floats x_dev(x, offset);
  GuardedBytes pos_dev(positions.size() * 4, 0);
  pos_dev.CopyFrom(positions.data());
  Floats inv_dev(inv_freq, 0);
  Rope(HostLauncher(), x_dev.ptr(), rc.rows, rc.heads, rc.head_dim, rc.rope_dim,
       pos_dev.as<int32_t>(), inv_dev.ptr(), rc.pairing);
  EXPECT_TRUE(x_dev.GuardsIntact());
  EXPECT_TRUE(pos_dev.GuardsIntact());
  const std::vector<float> got = x_dev.values();

  const int32_t pairs = rc.rope_dim / 2;
  for (int64_t r = 0; r < rc.rows; ++r) {
    for (int32_t h = 0; h < rc.heads; ++h) {
      const int64_t base = r * width + int64_t{h} * rc.head_dim;
      for (int32_t p = 0; p < pairs; ++p) {
        const int64_t a = base + (rc.pairing == RL_ROPE_INTERLEAVED ? 2 * p : p);
        const int64_t b = a + (rc.pairing == RL_ROPE_INTERLEAVED ? 1 : pairs);
        // cos and sin within 2 ulps of the CPU's (<= 2^-23 each), and the
        // rotation's four roundings: layer_ops.cuh's 2^-21 (|xa| + |xb|).
        const double bound = 0x1p-21 * (std::fabs(x[a]) + std::fabs(x[b]));
        ASSERT_LE(std::fabs(static_cast<double>(got[a]) - ref[a]), bound)
            << "row " << r << " head " << h << " pair " << p << " pos " << positions[r];
        ASSERT_LE(std::fabs(static_cast<double>(got[b]) - ref[b]), bound)
            << "row " << r << " head " << h << " pair " << p << " pos " << positions[r];
      }
      for (int32_t d = rc.rope_dim; d < rc.head_dim; ++d) {
        ASSERT_TRUE(SameBits(got[base + d], x[base + d])) << "untouched dim " << d;
      }
    }
  }
}

TEST(LayerOpsTest, RopeMatchesTheCpu) {
  const RopeCase cases[] = {
      {1, 1, 2, 2, RL_ROPE_INTERLEAVED}, {5, 3, 8, 8, RL_ROPE_INTERLEAVED},
      {5, 3, 8, 8, RL_ROPE_HALVES},      {5, 2, 64, 32, RL_ROPE_INTERLEAVED},
      {5, 2, 64, 32, RL_ROPE_HALVES},    {1, 4, 66, 64, RL_ROPE_HALVES},
      {5, 3, 7, 6, RL_ROPE_INTERLEAVED},  // odd head_dim: the scalar pairs
      {5, 3, 7, 4, RL_ROPE_HALVES},      {7, 9, 128, 128, RL_ROPE_INTERLEAVED},
  };
  uint32_t seed = 10;
  for (const RopeCase& rc : cases) {
    for (size_t offset : {0, 4}) {
      RunRope(rc, offset, kernels::RopeScalingKind::kNone, seed++);
      RunRope(rc, offset, kernels::RopeScalingKind::kLlama3, seed++);
      if (HasFailure()) return;
    }
  }
}

// ============================================================================
// Add, AddRowBias, SiluGate: bit-identical to the CPU
// ============================================================================

// Three offsets (bytes past 16-byte alignment) for the operands.
struct Offsets {
  size_t a, b, c;
};
const Offsets kOffsets[] = {{0, 0, 0}, {4, 4, 4}, {12, 12, 12}, {0, 4, 8}, {8, 0, 0}};

void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(SameBits(got[i], want[i]) || (std::isnan(got[i]) && std::isnan(want[i])))
        << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(LayerOpsTest, AddMatchesTheCpu) {
  std::mt19937 rng(20);
  for (int64_t n : {1, 3, 4, 5, 33, 1000, 4096 + 7}) {
    for (const Offsets& o : kOffsets) {
      const std::string what =
          "n " + std::to_string(n) + " offsets " + std::to_string(o.a) + "/" + std::to_string(o.b);
      const std::vector<float> src = RandomFloats(n, rng), dst = RandomFloats(n, rng);
      std::vector<float> ref = dst;
      kernels::Add(src.data(), n, ref.data());
      Floats src_dev(src, o.a), dst_dev(dst, o.b);
      Add(HostLauncher(), src_dev.ptr(), n, dst_dev.ptr());
      EXPECT_TRUE(src_dev.GuardsIntact()) << what;
      EXPECT_TRUE(dst_dev.GuardsIntact()) << what;
      ExpectSameBits(dst_dev.values(), ref, what);
      ExpectSameBits(src_dev.values(), src, what + " (src)");
    }
  }
  Add(HostLauncher(), static_cast<const float*>(nullptr), 0, nullptr);  // nothing to do
}

TEST(LayerOpsTest, AddRowBiasMatchesTheCpu) {
  std::mt19937 rng(21);
  for (int64_t rows : {1, 5}) {
    for (int64_t cols : {1, 3, 8, 33, 4096 + 7}) {
      for (const Offsets& o : kOffsets) {
        const std::string what = "rows " + std::to_string(rows) + " cols " + std::to_string(cols) +
                                 " offsets " + std::to_string(o.a) + "/" + std::to_string(o.b);
        const std::vector<float> bias = RandomFloats(cols, rng), y = RandomFloats(rows * cols, rng);
        std::vector<float> ref = y;
        kernels::AddRowBias(bias.data(), rows, cols, ref.data());
        Floats bias_dev(bias, o.a), y_dev(y, o.b);
        AddRowBias(HostLauncher(), bias_dev.ptr(), rows, cols, y_dev.ptr());
        EXPECT_TRUE(bias_dev.GuardsIntact()) << what;
        EXPECT_TRUE(y_dev.GuardsIntact()) << what;
        ExpectSameBits(y_dev.values(), ref, what);
      }
    }
  }
}

std::vector<float> SiluInputs(size_t n, std::mt19937& rng) {
  std::vector<float> v = {0.0f,     -0.0f,   1.0f,   -1.0f,  20.0f,   -20.0f,  87.0f,
                          -87.0f,   88.0f,   -88.0f, 100.0f, -100.0f, 1e30f,   -1e30f,
                          1e-40f,   -1e-40f, kInf,   -kInf,  kNaN,    -87.5f,  3.4e38f,
                          -3.4e38f, 1e-6f,   -1e-6f, 0.5f,   -86.99f, 88.721f, -88.721f};
  std::uniform_real_distribution<float> dist(-30.0f, 30.0f);
  while (v.size() < n) v.push_back(dist(rng));
  v.resize(n);
  return v;
}

TEST(LayerOpsTest, SiluGateMatchesTheCpuBitForBit) {
  std::mt19937 rng(22);
  for (int64_t n : {1, 3, 4, 7, 33, 1000, 4096 + 7}) {
    for (const Offsets& o : kOffsets) {
      for (int alias = 0; alias < 3; ++alias) {  // separate out, out == gate, out == up
        const std::string what = "n " + std::to_string(n) + " offsets " + std::to_string(o.a) +
                                 "/" + std::to_string(o.b) + "/" + std::to_string(o.c) + " alias " +
                                 std::to_string(alias);
        std::vector<float> gate = SiluInputs(n, rng);
        std::shuffle(gate.begin(), gate.end(), rng);
        const std::vector<float> up = RandomFloats(n, rng, -4.0f, 4.0f);
        std::vector<float> ref(n);
        kernels::SiluGate(gate.data(), up.data(), n, ref.data());
        Floats g_dev(gate, o.a), u_dev(up, o.b), out_dev(std::vector<float>(n, kNaN), o.c);
        float* out = alias == 0 ? out_dev.ptr() : alias == 1 ? g_dev.ptr() : u_dev.ptr();
        SiluGate(HostLauncher(), g_dev.ptr(), u_dev.ptr(), n, out);
        EXPECT_TRUE(g_dev.GuardsIntact()) << what;
        EXPECT_TRUE(u_dev.GuardsIntact()) << what;
        EXPECT_TRUE(out_dev.GuardsIntact()) << what;
        ExpectSameBits(alias == 0   ? out_dev.values()
                       : alias == 1 ? g_dev.values()
                                    : u_dev.values(),
                       ref, what);
        if (HasFailure()) return;
      }
    }
  }
}

// The division without a call: correctly rounded wherever silu uses it
// (divisors in [1, 2^128)), subnormal and huge numerators included.
TEST(LayerOpsTest, SiluDivideIsCorrectlyRounded) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> g_exp(-149, 127), d_exp(0, 127);
  for (int i = 0; i < 200000; ++i) {
    float g = std::ldexp(mant(rng), g_exp(rng));
    if (i % 2) g = -g;
    const float d = i % 7 == 0 ? 1.0f : std::ldexp(mant(rng), d_exp(rng));
    const float got = layer_ops_internal::SiluDivide(g, d);
    ASSERT_TRUE(SameBits(got, g / d)) << g << " / " << d;
  }
  EXPECT_TRUE(SameBits(layer_ops_internal::SiluDivide(-0.0f, 2.0f), -0.0f));
  EXPECT_TRUE(SameBits(layer_ops_internal::SiluDivide(0.0f, 2.0f), 0.0f));
  EXPECT_EQ(layer_ops_internal::SiluDivide(kInf, 1.0f), kInf);
  EXPECT_EQ(layer_ops_internal::SiluDivide(-kInf, 3e38f), -kInf);
  EXPECT_TRUE(std::isnan(layer_ops_internal::SiluDivide(kNaN, 2.0f)));
}

// ============================================================================
// Embedding: bit-identical to EmbeddingRows
// ============================================================================

kernels::WeightType TypeOf(int32_t dtype) {
  switch (dtype) {
    case RL_DTYPE_F32:
      return kernels::WeightType::kF32;
    case RL_DTYPE_F16:
      return kernels::WeightType::kF16;
    case RL_DTYPE_BF16:
      return kernels::WeightType::kBF16;
    case RL_DTYPE_Q8_0:
      return kernels::WeightType::kQ8_0;
    case RL_DTYPE_Q4_0:
      return kernels::WeightType::kQ4_0;
    default:
      return kernels::WeightType::kQ4_1;
  }
}

// A table of vocab rows of dim elements of dtype, in the common layout.
std::vector<unsigned char> MakeTable(int32_t dtype, int64_t vocab, int64_t dim, std::mt19937& rng) {
  const std::vector<float> f = RandomFloats(vocab * dim, rng, -2.0f, 2.0f);
  const int64_t row_bytes = kernels::EmbeddingRowBytes(TypeOf(dtype), dim);
  std::vector<unsigned char> t(vocab * row_bytes);
  switch (dtype) {
    case RL_DTYPE_F32:
      std::memcpy(t.data(), f.data(), t.size());
      break;
    case RL_DTYPE_F16:
    case RL_DTYPE_BF16:
      for (size_t i = 0; i < f.size(); ++i) {
        const uint16_t h = dtype == RL_DTYPE_F16 ? kernels::reference::F32ToF16(f[i])
                                                 : kernels::reference::F32ToBF16(f[i]);
        std::memcpy(t.data() + 2 * i, &h, 2);
      }
      break;
    case RL_DTYPE_Q8_0:
      kernels::reference::QuantizeRowQ8_0(f.data(), t.data(), vocab * dim);
      break;
    case RL_DTYPE_Q4_0:
      kernels::reference::QuantizeRowQ4_0(f.data(), t.data(), vocab * dim);
      break;
    default:
      kernels::reference::QuantizeRowQ4_1(f.data(), t.data(), vocab * dim);
      break;
  }
  return t;
}

TEST(LayerOpsTest, EmbeddingMatchesTheCpuBitForBit) {
  std::mt19937 rng(30);
  const int64_t vocab = 11;
  for (int32_t dtype :
       {RL_DTYPE_F32, RL_DTYPE_F16, RL_DTYPE_BF16, RL_DTYPE_Q8_0, RL_DTYPE_Q4_0, RL_DTYPE_Q4_1}) {
    const bool quant = dtype >= RL_DTYPE_Q8_0;
    const std::vector<int64_t> dims =
        quant ? std::vector<int64_t>{32, 96} : std::vector<int64_t>{1, 3, 33, 64};
    for (int64_t dim : dims) {
      for (size_t offset : {0, 2, 4}) {
        if (dtype == RL_DTYPE_F32 && offset == 2) continue;  // floats are 4-byte aligned
        for (size_t out_offset : {0, 4}) {
          const int64_t n = offset == 0 ? 5 : 2;
          const std::string what = "dtype " + std::to_string(dtype) + " dim " +
                                   std::to_string(dim) + " offsets " + std::to_string(offset) +
                                   "/" + std::to_string(out_offset) + " n " + std::to_string(n);
          const std::vector<unsigned char> table = MakeTable(dtype, vocab, dim, rng);
          std::vector<int32_t> ids = {static_cast<int32_t>(vocab - 1), 0, 3, 3, 7};
          ids.resize(n);
          std::vector<float> ref(n * dim);
          ASSERT_TRUE(kernels::EmbeddingRows(table.data(), TypeOf(dtype), vocab, dim, ids.data(), n,
                                             ref.data()))
              << what;
          GuardedBytes table_dev(table.size(), offset);
          table_dev.CopyFrom(table.data());
          GuardedBytes ids_dev(ids.size() * 4, 0);
          ids_dev.CopyFrom(ids.data());
          Floats out_dev(std::vector<float>(n * dim, kNaN), out_offset);
          ASSERT_TRUE(Embedding(HostLauncher(), table_dev.data(), dtype, vocab, dim,
                                ids_dev.as<int32_t>(), n, out_dev.ptr()))
              << what;
          EXPECT_TRUE(table_dev.GuardsIntact()) << what;
          EXPECT_TRUE(out_dev.GuardsIntact()) << what;
          ExpectSameBits(out_dev.values(), ref, what);
          if (HasFailure()) return;
        }
      }
    }
  }
}

// The GGUF types the CPU's EmbeddingRows may not read yet (Q5_0 .. Q6_K),
// bit for bit against the reference row dequantizers on random blocks, with
// tables at even and odd addresses (byte loads: any alignment).
TEST(LayerOpsTest, EmbeddingOfNewerGgufTypesMatchesTheReferenceBitForBit) {
  std::mt19937 rng(32);
  const int64_t vocab = 7;
  const int32_t dtypes[] = {RL_DTYPE_Q5_0, RL_DTYPE_Q5_1, RL_DTYPE_IQ4_NL, RL_DTYPE_Q2_K,
                            RL_DTYPE_Q3_K, RL_DTYPE_Q4_K, RL_DTYPE_Q5_K,   RL_DTYPE_Q6_K};
  for (int32_t dtype : dtypes) {
    QuantType type = QuantType::kQ8_0;
    ASSERT_TRUE(QuantTypeOfDtype(dtype, &type));
    for (int64_t blocks : {1, 3}) {
      const int64_t dim = blocks * BlockElements(type);
      const std::vector<uint8_t> table = testing::RandomNative(type, vocab, blocks, rng);
      const std::vector<float> all = testing::ReferenceDequant(type, table, vocab * dim);
      for (size_t offset : {0, 1, 2}) {
        const std::string what = std::string(testing::QuantTypeName(type)) + " dim " +
                                 std::to_string(dim) + " offset " + std::to_string(offset);
        const std::vector<int32_t> ids = {static_cast<int32_t>(vocab - 1), 0, 3, 3};
        const int64_t n = static_cast<int64_t>(ids.size());
        std::vector<float> ref;
        for (int32_t id : ids) {
          ref.insert(ref.end(), all.begin() + id * dim, all.begin() + (id + 1) * dim);
        }
        GuardedBytes table_dev(table.size(), offset);
        table_dev.CopyFrom(table.data());
        GuardedBytes ids_dev(ids.size() * 4, 0);
        ids_dev.CopyFrom(ids.data());
        Floats out_dev(std::vector<float>(n * dim, kNaN), 0);
        ASSERT_TRUE(Embedding(HostLauncher(), table_dev.data(), dtype, vocab, dim,
                              ids_dev.as<int32_t>(), n, out_dev.ptr()))
            << what;
        EXPECT_TRUE(table_dev.GuardsIntact()) << what;
        EXPECT_TRUE(out_dev.GuardsIntact()) << what;
        ExpectSameBits(out_dev.values(), ref, what);
        if (HasFailure()) return;
      }
    }
  }
}

// The plugin refuses bad ids before the call; should one reach the kernel
// it reads nothing and writes a NaN row.
TEST(LayerOpsTest, EmbeddingOutOfRangeTokensGiveNaNRows) {
  std::mt19937 rng(31);
  const int64_t vocab = 4, dim = 64;
  for (int32_t dtype : {RL_DTYPE_F32, RL_DTYPE_BF16, RL_DTYPE_Q4_1}) {
    const std::vector<unsigned char> table = MakeTable(dtype, vocab, dim, rng);
    const std::vector<int32_t> ids = {2, -1, 4, 1, INT32_MAX, INT32_MIN};
    GuardedBytes table_dev(table.size(), 0);
    table_dev.CopyFrom(table.data());
    GuardedBytes ids_dev(ids.size() * 4, 0);
    ids_dev.CopyFrom(ids.data());
    Floats out_dev(std::vector<float>(ids.size() * dim, 0.0f), 0);
    ASSERT_TRUE(Embedding(HostLauncher(), table_dev.data(), dtype, vocab, dim,
                          ids_dev.as<int32_t>(), static_cast<int64_t>(ids.size()), out_dev.ptr()));
    EXPECT_TRUE(table_dev.GuardsIntact());
    EXPECT_TRUE(out_dev.GuardsIntact());
    const std::vector<float> got = out_dev.values();
    for (size_t t = 0; t < ids.size(); ++t) {
      const bool valid = ids[t] >= 0 && ids[t] < vocab;
      std::vector<float> row(dim);
      if (valid) {
        ASSERT_TRUE(kernels::EmbeddingRows(table.data(), TypeOf(dtype), vocab, dim, &ids[t], 1,
                                           row.data()));
      }
      for (int64_t j = 0; j < dim; ++j) {
        const float v = got[t * dim + j];
        if (valid) {
          ASSERT_TRUE(SameBits(v, row[j])) << dtype << " token " << t << " at " << j;
        } else {
          ASSERT_TRUE(std::isnan(v)) << dtype << " token " << t << " at " << j;
        }
      }
    }
  }
}

// ============================================================================
// Argmax: identical to ArgmaxRows
// ============================================================================

void RunArgmax(const std::vector<float>& x, int64_t rows, int64_t cols, size_t offset,
               const std::string& what) {
  std::vector<int32_t> ref(rows);
  kernels::ArgmaxRows(x.data(), rows, cols, ref.data());
  Floats x_dev(x, offset);
  GuardedBytes out_dev(rows * 4, 0);
  out_dev.Fill(0xfe);
  Argmax(HostLauncher(), x_dev.ptr(), rows, cols, out_dev.as<int32_t>());
  EXPECT_TRUE(x_dev.GuardsIntact()) << what;
  EXPECT_TRUE(out_dev.GuardsIntact()) << what;
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_EQ(out_dev.as<int32_t>()[r], ref[r]) << what << " row " << r;
  }
}

TEST(LayerOpsTest, ArgmaxMatchesTheCpu) {
  std::mt19937 rng(40);
  for (int64_t cols : {1, 3, 4, 33, 4096 + 7}) {
    for (int64_t rows : {1, 5}) {
      for (size_t offset : {0, 4, 8, 12}) {
        std::vector<float> x = RandomFloats(rows * cols, rng);
        for (int64_t r = 0; r < rows; ++r) {
          float* row = x.data() + r * cols;
          switch (r % 5) {
            case 0:  // the maximum in the tail
              row[cols - 1] = 2.0f;
              break;
            case 1:  // ties: the first wins
              row[cols / 2] = 3.0f;
              row[cols - 1] = 3.0f;
              if (cols > 2) row[cols / 3] = 3.0f;
              break;
            case 2:  // the maximum first, tied at the end
              row[0] = 5.0f;
              row[cols - 1] = 5.0f;
              break;
            case 3:  // NaN at 0 and scattered: NaN never wins
              row[0] = kNaN;
              for (int64_t j = 2; j < cols; j += 7) row[j] = kNaN;
              break;
            case 4:  // all NaN but one -inf in the middle
              for (int64_t j = 0; j < cols; ++j) row[j] = kNaN;
              row[cols / 2] = -kInf;
              break;
          }
        }
        RunArgmax(x, rows, cols, offset,
                  "cols " + std::to_string(cols) + " rows " + std::to_string(rows) + " offset " +
                      std::to_string(offset));
        if (HasFailure()) return;
      }
    }
  }
}

TEST(LayerOpsTest, ArgmaxSpecialRows) {
  const int64_t cols = 70;
  std::vector<std::vector<float>> rows = {
      std::vector<float>(cols, kNaN),    // all NaN: 0
      std::vector<float>(cols, -kInf),   // all -inf: 0
      std::vector<float>(cols, 1.0f),    // all equal: 0
      std::vector<float>(cols, -0.0f)};  // -0 and +0 tie: the first
  rows[3][40] = 0.0f;
  rows.push_back(std::vector<float>(cols, -1.0f));
  rows.back()[69] = kInf;
  rows.push_back(std::vector<float>(cols, kNaN));
  rows.back()[69] = -3.0f;  // the only number, last
  std::vector<float> x;
  for (const auto& r : rows) x.insert(x.end(), r.begin(), r.end());
  const int64_t n = static_cast<int64_t>(rows.size());
  RunArgmax(x, n, cols, 0, "special rows");
  RunArgmax(x, n, cols, 4, "special rows, offset 4");
  EXPECT_TRUE(ArgmaxBetter(1.0f, 5, kNaN, 0));
  EXPECT_FALSE(ArgmaxBetter(kNaN, 0, -kInf, 9));
  EXPECT_TRUE(ArgmaxBetter(kNaN, 0, kNaN, 1));
  EXPECT_TRUE(ArgmaxBetter(2.0f, 0, 2.0f, 1));
  EXPECT_FALSE(ArgmaxBetter(2.0f, 1, 2.0f, 0));
  EXPECT_TRUE(ArgmaxBetter(0.0f, 3, -0.0f, 4));
}

}  // namespace
}  // namespace relayout::cuda
