// float_matmul.cuh run by the SIMT harness against kernels/cpu's Matmul and
// MatmulReference: every weight type, the GEMV and the GEMM (as FloatMatmul
// picks them and forced), odd shapes (one row, K not a multiple of 4 or 8,
// tokens 1, 2, 5, 17), operands only 4- (or 2-) byte aligned, outputs
// poisoned with NaN and surrounded by guard bytes.
#include "kernels/cuda/kernels/float_matmul.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/cuda/simt/simt_testing.h"

namespace relayout::cuda {
namespace {

using simt::HostLauncher;

using simt::GuardedBytes;

kernels::WeightType TypeOf(int32_t dtype) {
  return dtype == RL_DTYPE_F32   ? kernels::WeightType::kF32
         : dtype == RL_DTYPE_F16 ? kernels::WeightType::kF16
                                 : kernels::WeightType::kBF16;
}

const char* DtypeName(int32_t dtype) {
  return dtype == RL_DTYPE_F32 ? "F32" : dtype == RL_DTYPE_F16 ? "F16" : "BF16";
}

std::vector<float> RandomFloats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// A weight of dtype: its bytes and the float values the kernels see.
struct Weight {
  std::vector<unsigned char> bytes;
  std::vector<float> values;
};

Weight MakeWeight(int32_t dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  const std::vector<float> f = RandomFloats(static_cast<size_t>(rows * cols), rng);
  Weight w;
  w.values.resize(f.size());
  if (dtype == RL_DTYPE_F32) {
    w.bytes.resize(f.size() * 4);
    std::memcpy(w.bytes.data(), f.data(), w.bytes.size());
    w.values = f;
    return w;
  }
  std::vector<uint16_t> bits(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    bits[i] = dtype == RL_DTYPE_F16 ? kernels::reference::F32ToF16(f[i])
                                    : kernels::reference::F32ToBF16(f[i]);
    w.values[i] = dtype == RL_DTYPE_F16 ? kernels::reference::F16ToF32(bits[i])
                                        : kernels::reference::BF16ToF32(bits[i]);
  }
  w.bytes.resize(f.size() * 2);
  std::memcpy(w.bytes.data(), bits.data(), w.bytes.size());
  return w;
}

enum class Path { kAuto, kGemv, kGemm };

struct MatmulCase {
  int32_t dtype;
  int64_t rows;
  int64_t cols;
  int64_t tokens;
  Path path = Path::kAuto;
  size_t w_offset = 0;  // bytes past a 64-byte boundary
  size_t x_offset = 0;
  size_t y_offset = 0;
};

std::string Describe(const MatmulCase& c) {
  return std::string(DtypeName(c.dtype)) + " rows " + std::to_string(c.rows) + " cols " +
         std::to_string(c.cols) + " tokens " + std::to_string(c.tokens) + " path " +
         std::to_string(static_cast<int>(c.path)) + " offsets " + std::to_string(c.w_offset) + "/" +
         std::to_string(c.x_offset) + "/" + std::to_string(c.y_offset);
}

// Runs the case and checks y against the CPU within matmul.h's bounds.
void RunMatmul(const MatmulCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  std::mt19937 rng(seed);
  const Weight w = MakeWeight(c.dtype, c.rows, c.cols, rng);
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c.tokens * c.cols), rng);
  const size_t y_count = static_cast<size_t>(c.tokens * c.rows);

  GuardedBytes w_dev(w.bytes.size(), c.w_offset);
  w_dev.CopyFrom(w.bytes.data());
  GuardedBytes x_dev(x.size() * 4, c.x_offset);
  x_dev.CopyFrom(x.data());
  GuardedBytes y_dev(y_count * 4, c.y_offset);
  y_dev.Fill(0xff);  // NaN

  const HostLauncher launch;
  bool ok = false;
  switch (c.path) {
    case Path::kAuto:
      ok = FloatMatmul(launch, c.dtype, w_dev.data(), c.rows, c.cols, x_dev.as<float>(), c.tokens,
                       y_dev.as<float>());
      break;
    case Path::kGemv:
      ok = FloatGemv(launch, c.dtype, w_dev.data(), c.rows, c.cols, x_dev.as<float>(), c.tokens,
                     y_dev.as<float>());
      break;
    case Path::kGemm:
      ok = FloatGemm(launch, c.dtype, w_dev.data(), c.rows, c.cols, x_dev.as<float>(), c.tokens,
                     y_dev.as<float>());
      break;
  }
  ASSERT_TRUE(ok);
  EXPECT_TRUE(w_dev.GuardsIntact());
  EXPECT_TRUE(x_dev.GuardsIntact());
  EXPECT_TRUE(y_dev.GuardsIntact());

  kernels::MatmulWeight mw;
  mw.data = w.bytes.data();
  mw.type = TypeOf(c.dtype);
  mw.layout = kernels::WeightLayout::kRowMajor;
  mw.rows = c.rows;
  mw.cols = c.cols;
  std::vector<float> y_ref(y_count);
  if (c.dtype == RL_DTYPE_F32) {
    ASSERT_TRUE(kernels::Matmul(mw, x.data(), c.tokens, y_ref.data(), nullptr));
  } else {
    ASSERT_TRUE(kernels::MatmulReference(mw, x.data(), c.tokens, y_ref.data()));
  }

  const float* y = y_dev.as<float>();
  const double k = static_cast<double>(c.cols);
  int reported = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t n = 0; n < c.rows; ++n) {
      double abs_sum = 0;  // sum_k |w_k x_k|
      for (int64_t j = 0; j < c.cols; ++j) {
        abs_sum += std::fabs(static_cast<double>(w.values[n * c.cols + j]) * x[t * c.cols + j]);
      }
      const float ref = y_ref[t * c.rows + n];
      // F32: both sides are double sums (error <= K 2^-53 abs_sum each) rounded
      // once to float (half an ulp each). Halves: matmul.h's bound against
      // MatmulReference.
      const double bound =
          c.dtype == RL_DTYPE_F32
              ? std::ldexp(std::fabs(static_cast<double>(ref)), -23) +
                    2 * k * std::ldexp(abs_sum, -53)
              : std::max(1e-5 * std::sqrt(k), 2 * k * std::ldexp(1.0, -24)) * abs_sum;
      const float got = y[t * c.rows + n];
      const bool good = std::isfinite(got) && std::fabs(static_cast<double>(got) - ref) <= bound;
      if (!good && reported++ < 5) {
        ADD_FAILURE() << "y[" << t << ", " << n << "] = " << got << ", cpu " << ref << ", bound "
                      << bound;
      }
    }
  }
  EXPECT_EQ(reported, 0);
}

TEST(FloatMatmulTest, LaunchShapes) {
  EXPECT_TRUE(FloatMatmulUsesGemv(1));
  EXPECT_TRUE(FloatMatmulUsesGemv(8));
  EXPECT_FALSE(FloatMatmulUsesGemv(9));
  EXPECT_EQ(FloatGemvTokensPerPass(1), 1);
  EXPECT_EQ(FloatGemvTokensPerPass(2), 2);
  EXPECT_EQ(FloatGemvTokensPerPass(3), 4);
  EXPECT_EQ(FloatGemvTokensPerPass(5), 8);
  EXPECT_EQ(FloatGemvTokensPerPass(17), 8);
  EXPECT_EQ(FloatGemvRowsPerWarp(RL_DTYPE_F32, 4), 1);
  EXPECT_EQ(FloatGemvRowsPerWarp(RL_DTYPE_F32, 8), 2);
  EXPECT_EQ(FloatGemvRowsPerWarp(RL_DTYPE_F16, 2), 1);
  EXPECT_EQ(FloatGemvRowsPerWarp(RL_DTYPE_BF16, 4), 2);
  EXPECT_EQ(FloatGemvRowsPerWarp(RL_DTYPE_BF16, 8), 4);
  // 8 warps per CTA.
  const dim3 gemv = FloatGemvGrid(4096, 17, 2, 8);
  EXPECT_EQ(gemv.x, 256u);
  EXPECT_EQ(gemv.y, 3u);
  const dim3 gemm = FloatGemmGrid(4097, 65);
  EXPECT_EQ(gemm.x, 33u);
  EXPECT_EQ(gemm.y, 2u);
  EXPECT_EQ(kFloatGemmSharedBytes, 25600u);

  alignas(16) float buf[16] = {};
  EXPECT_TRUE(FloatMatmulVectorized(RL_DTYPE_F32, buf, buf, 12));
  EXPECT_FALSE(FloatMatmulVectorized(RL_DTYPE_F32, buf, buf, 10));  // K % 4
  EXPECT_FALSE(FloatMatmulVectorized(RL_DTYPE_F32, buf + 1, buf, 12));
  EXPECT_FALSE(FloatMatmulVectorized(RL_DTYPE_F32, buf, buf + 2, 12));
  EXPECT_TRUE(FloatMatmulVectorized(RL_DTYPE_BF16, buf, buf, 16));
  EXPECT_FALSE(FloatMatmulVectorized(RL_DTYPE_F16, buf, buf, 12));  // K % 8
  EXPECT_FALSE(FloatMatmulVectorized(RL_DTYPE_Q8_0, buf, buf, 32));
}

// A launcher that records the launches instead of running them.
struct CountingLauncher {
  int* launches;
  template <class... P, class... A>
  void operator()(dim3, dim3, size_t, void (*)(P...), A&&...) const {
    ++*launches;
  }
  template <class... P>
  void AllowSharedBytes(void (*)(P...), size_t) const {}
};

TEST(FloatMatmulTest, RefusesOtherTypesAndEmptySizes) {
  int launches = 0;
  const CountingLauncher count{&launches};
  float buf[4] = {};
  EXPECT_FALSE(FloatMatmul(count, RL_DTYPE_Q8_0, buf, 1, 1, buf, 1, buf));
  EXPECT_FALSE(FloatMatmul(count, RL_DTYPE_F32, buf, 0, 1, buf, 1, buf));
  EXPECT_FALSE(FloatMatmul(count, RL_DTYPE_F16, buf, 1, 1, buf, 0, buf));
  EXPECT_FALSE(FloatGemm(count, RL_DTYPE_BF16, buf, 1, 0, buf, 9, buf));
  EXPECT_EQ(launches, 0);
  EXPECT_TRUE(FloatMatmul(count, RL_DTYPE_F32, buf, 1, 1, buf, 1, buf));
  EXPECT_TRUE(FloatMatmul(count, RL_DTYPE_BF16, buf, 1, 1, buf, 9, buf));
  EXPECT_EQ(launches, 2);
}

// Every type, FloatMatmul's own choice of kernel, odd and vector-friendly
// shapes; aligned operands, or weights one element and x and y one float
// past alignment (the scalar-load kernels and, in the GEMM, scalar stores).
class FloatMatmulShapes : public ::testing::TestWithParam<std::tuple<int32_t, bool>> {};

TEST_P(FloatMatmulShapes, MatchCpu) {
  const auto [dtype, misaligned] = GetParam();
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{1, 1}, {5, 3}, {37, 33}, {70, 64}, {19, 100}, {9, 264}};
  const size_t elem = dtype == RL_DTYPE_F32 ? 4 : 2;
  uint32_t seed = 1000 * dtype + (misaligned ? 500 : 0);
  for (int64_t tokens : {1, 2, 5, 17}) {
    for (const Shape& s : shapes) {
      MatmulCase c{dtype, s.rows, s.cols, tokens};
      if (misaligned) {
        c.w_offset = elem;
        c.x_offset = 4;
        c.y_offset = 4;
      }
      RunMatmul(c, seed++);
      if (HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, FloatMatmulShapes,
                         ::testing::Combine(::testing::Values(RL_DTYPE_F32, RL_DTYPE_F16,
                                                              RL_DTYPE_BF16),
                                            ::testing::Bool()));

using simt::Erased;
using simt::RecordingLauncher;

// 16-byte loads only where they are aligned; the harness cannot tell an
// unaligned float4 load from an aligned one, so the choice is checked here.
TEST(FloatMatmulTest, DispatchesVectorKernelsOnlyForAlignedOperands) {
  using float_matmul_internal::Bf16Weight;
  using float_matmul_internal::F16Weight;
  using float_matmul_internal::F32Weight;
  std::vector<void (*)()> k;
  const RecordingLauncher rec{&k};
  alignas(16) float buf[64] = {};
  FloatMatmul(rec, RL_DTYPE_F32, buf, 4, 8, buf, 1, buf);
  FloatMatmul(rec, RL_DTYPE_F32, buf + 1, 4, 8, buf, 1, buf);
  FloatMatmul(rec, RL_DTYPE_F32, buf, 4, 8, buf + 1, 3, buf);
  FloatMatmul(rec, RL_DTYPE_F32, buf, 4, 6, buf, 5, buf);
  FloatMatmul(rec, RL_DTYPE_F16, buf, 4, 16, buf, 2, buf);
  FloatMatmul(rec, RL_DTYPE_F16, buf, 4, 12, buf, 8, buf);
  FloatMatmul(rec, RL_DTYPE_BF16, reinterpret_cast<uint16_t*>(buf) + 1, 4, 16, buf, 4, buf);
  FloatMatmul(rec, RL_DTYPE_BF16, buf, 4, 16, buf, 9, buf);
  FloatMatmul(rec, RL_DTYPE_F32, buf, 4, 8, buf + 2, 9, buf);
  FloatMatmul(rec, RL_DTYPE_F16, buf, 4, 8, buf, 64, buf);
  const std::vector<void (*)()> expected = {
      Erased(FloatGemvKernel<F32Weight, 1, 1, true>),
      Erased(FloatGemvKernel<F32Weight, 1, 1, false>),
      Erased(FloatGemvKernel<F32Weight, 1, 4, false>),
      Erased(FloatGemvKernel<F32Weight, 2, 8, false>),
      Erased(FloatGemvKernel<F16Weight, 1, 2, true>),
      Erased(FloatGemvKernel<F16Weight, 4, 8, false>),
      Erased(FloatGemvKernel<Bf16Weight, 2, 4, false>),
      Erased(FloatGemmKernel<Bf16Weight, true>),
      Erased(FloatGemmKernel<F32Weight, false>),
      Erased(FloatGemmKernel<F16Weight, true>),
  };
  ASSERT_EQ(k.size(), expected.size());
  for (size_t i = 0; i < k.size(); ++i) EXPECT_EQ(k[i], expected[i]) << "launch " << i;

  k.clear();
  uint16_t* h = reinterpret_cast<uint16_t*>(buf);
  SplitBf16Pair(rec, buf, 8, h + 32, h + 40);
  SplitBf16Pair(rec, buf + 1, 8, h + 32, h + 40);
  SplitBf16Pair(rec, buf, 8, h + 33, h + 40);
  ToBf16(rec, buf, 8, h + 36);
  ToBf16(rec, buf, 8, h + 34);
  const std::vector<void (*)()> expected_bf16 = {
      Erased(SplitBf16PairKernel<true>), Erased(SplitBf16PairKernel<false>),
      Erased(SplitBf16PairKernel<false>), Erased(ToBf16Kernel<true>), Erased(ToBf16Kernel<false>)};
  ASSERT_EQ(k.size(), expected_bf16.size());
  for (size_t i = 0; i < k.size(); ++i) EXPECT_EQ(k[i], expected_bf16[i]) << "launch " << i;
}

// The GEMV over several passes of 8 tokens, and the GEMM for one or two
// tokens, over tiles in both directions and several K steps.
TEST(FloatMatmulTest, BothKernelsForAnyTokenCount) {
  uint32_t seed = 100;
  for (int32_t dtype : {RL_DTYPE_F32, RL_DTYPE_F16, RL_DTYPE_BF16}) {
    RunMatmul({dtype, 21, 40, 17, Path::kGemv}, seed++);
    RunMatmul({dtype, 21, 41, 17, Path::kGemv}, seed++);
    RunMatmul({dtype, 33, 48, 1, Path::kGemm}, seed++);
    RunMatmul({dtype, 33, 45, 2, Path::kGemm, 0, 4, 0}, seed++);
    RunMatmul({dtype, 130, 104, 70, Path::kGemm}, seed++);
    RunMatmul({dtype, 131, 104, 65, Path::kGemm}, seed++);  // y rows not a multiple of 4
    // Only x, or only y, off alignment, with K and N that would allow
    // 16-byte accesses otherwise.
    RunMatmul({dtype, 36, 48, 3, Path::kGemv, 0, 4, 0}, seed++);
    RunMatmul({dtype, 36, 48, 20, Path::kGemm, 0, 4, 0}, seed++);
    RunMatmul({dtype, 36, 48, 20, Path::kGemm, 0, 0, 4}, seed++);
  }
}

// Integer-valued operands: every product and partial sum is exact, so each
// kernel must give the exact result whatever its summation order.
TEST(FloatMatmulTest, ExactOnIntegerOperands) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8);
  const int64_t rows = 23, cols = 72;
  for (int32_t dtype : {RL_DTYPE_F32, RL_DTYPE_F16, RL_DTYPE_BF16}) {
    for (int64_t tokens : {1, 3, 8, 12}) {
      for (Path path : {Path::kGemv, Path::kGemm}) {
        std::vector<float> wf(rows * cols), x(tokens * cols);
        for (float& v : wf) v = static_cast<float>(small(rng));
        for (float& v : x) v = static_cast<float>(small(rng));
        std::vector<unsigned char> wb;
        if (dtype == RL_DTYPE_F32) {
          wb.resize(wf.size() * 4);
          std::memcpy(wb.data(), wf.data(), wb.size());
        } else {
          std::vector<uint16_t> bits(wf.size());
          for (size_t i = 0; i < wf.size(); ++i) {
            bits[i] = dtype == RL_DTYPE_F16 ? FloatToHalf(wf[i]) : FloatToBf16(wf[i]);
          }
          wb.resize(bits.size() * 2);
          std::memcpy(wb.data(), bits.data(), wb.size());
        }
        GuardedBytes w_dev(wb.size(), 0);
        w_dev.CopyFrom(wb.data());
        std::vector<float> y(tokens * rows, std::numeric_limits<float>::quiet_NaN());
        const HostLauncher launch;
        ASSERT_TRUE(
            path == Path::kGemv
                ? FloatGemv(launch, dtype, w_dev.data(), rows, cols, x.data(), tokens, y.data())
                : FloatGemm(launch, dtype, w_dev.data(), rows, cols, x.data(), tokens, y.data()));
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t n = 0; n < rows; ++n) {
            double s = 0;
            for (int64_t j = 0; j < cols; ++j) s += wf[n * cols + j] * x[t * cols + j];
            ASSERT_EQ(y[t * rows + n], static_cast<float>(s))
                << DtypeName(dtype) << " tokens " << tokens << " path " << static_cast<int>(path)
                << " at " << t << ", " << n;
          }
        }
      }
    }
  }
}

// ---- bf16 activations ----

std::vector<float> Bf16TestValues(size_t n, std::mt19937& rng) {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.5f,
                          1.0f + 0x1p-8f,  // a bf16 tie: rounds to even
                          1.0f + 3 * 0x1p-8f,
                          0x1p-130f,  // subnormal
                          -0x1.234p-140f,
                          std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::max(),  // past bf16's largest after rounding
                          -std::numeric_limits<float>::max(),
                          0x1.fefffep127f,  // rounds to bf16's largest, no overflow
                          3.14159265f};
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> exp(-60, 60);
  while (v.size() < n) {
    const float f = std::ldexp(mant(rng), exp(rng));
    v.push_back(rng() % 2 ? f : -f);
  }
  v.resize(n);
  return v;
}

TEST(FloatMatmulTest, SplitBf16PairMeetsItsBound) {
  std::mt19937 rng(11);
  for (int64_t n : {1, 3, 4, 13, 1001}) {
    for (size_t offset : {0, 4}) {
      for (size_t out_offset : {0, 2}) {
        SCOPED_TRACE("n " + std::to_string(n) + " offsets " + std::to_string(offset) + "/" +
                     std::to_string(out_offset));
        const std::vector<float> x = Bf16TestValues(static_cast<size_t>(n), rng);
        GuardedBytes x_dev(n * 4, offset);
        x_dev.CopyFrom(x.data());
        GuardedBytes hi_dev(n * 2, out_offset), lo_dev(n * 2, out_offset);
        hi_dev.Fill(0xff);
        lo_dev.Fill(0xff);
        SplitBf16Pair(HostLauncher(), x_dev.as<float>(), n, hi_dev.as<uint16_t>(),
                      lo_dev.as<uint16_t>());
        EXPECT_TRUE(x_dev.GuardsIntact());
        EXPECT_TRUE(hi_dev.GuardsIntact());
        EXPECT_TRUE(lo_dev.GuardsIntact());
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t hi = hi_dev.as<uint16_t>()[i];
          const uint16_t lo = lo_dev.as<uint16_t>()[i];
          const double h = Bf16ToFloat(hi), l = Bf16ToFloat(lo);
          ASSERT_TRUE(std::isfinite(h) && std::isfinite(l)) << i << ": " << x[i];
          // hi is x's bf16 rounding unless that overflows.
          if (std::fabs(x[i]) < 0x1.ffp127f) {
            ASSERT_EQ(hi, kernels::reference::F32ToBF16(x[i])) << i << ": " << x[i];
          } else {
            ASSERT_EQ(hi & 0x7fffu, 0x7f7fu) << i << ": " << x[i];
          }
          ASSERT_EQ(lo, kernels::reference::F32ToBF16(x[i] - static_cast<float>(h))) << i;
          // float_matmul.cuh's bound: 2^-16 |x|, plus half bf16's smallest
          // subnormal for x too small for two bf16 parts.
          ASSERT_LE(std::fabs(x[i] - h - l),
                    std::ldexp(std::fabs(static_cast<double>(x[i])), -16) + 0x1p-134)
              << i << ": " << x[i];
        }
      }
    }
  }
}

TEST(FloatMatmulTest, ToBf16RoundsToNearestEven) {
  std::mt19937 rng(12);
  for (int64_t n : {1, 7, 8, 1003}) {
    for (size_t offset : {0, 4}) {
      for (size_t out_offset : {0, 2, 8}) {
        const std::vector<float> x = Bf16TestValues(static_cast<size_t>(n), rng);
        GuardedBytes x_dev(n * 4, offset);
        x_dev.CopyFrom(x.data());
        GuardedBytes out_dev(n * 2, out_offset);
        out_dev.Fill(0xff);
        ToBf16(HostLauncher(), x_dev.as<float>(), n, out_dev.as<uint16_t>());
        EXPECT_TRUE(out_dev.GuardsIntact());
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(out_dev.as<uint16_t>()[i], kernels::reference::F32ToBF16(x[i]))
              << "n " << n << " offsets " << offset << "/" << out_offset << " at " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace relayout::cuda
