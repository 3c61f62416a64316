// Test helpers for the Matmul tests: random weights in every type, their
// preferred layouts made with the relayout transforms, and the error bounds.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/layout/bf16_kpair.h"
#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/layout/row_group_interleave.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_testing.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels::testing {

inline bool IsQuantType(WeightType t) {
  return t != WeightType::kF32 && t != WeightType::kF16 && t != WeightType::kBF16;
}
inline bool IsKQuantType(WeightType t) {
  return t == WeightType::kQ2_K || t == WeightType::kQ3_K || t == WeightType::kQ4_K ||
         t == WeightType::kQ5_K || t == WeightType::kQ6_K;
}
// Elements per block: 1 for floats, 32, or 256 for the K-quants.
inline int64_t BlockElems(WeightType t) { return IsKQuantType(t) ? 256 : IsQuantType(t) ? 32 : 1; }

inline const char* TypeName(WeightType t) {
  switch (t) {
    case WeightType::kF32:
      return "F32";
    case WeightType::kF16:
      return "F16";
    case WeightType::kBF16:
      return "BF16";
    case WeightType::kQ8_0:
      return "Q8_0";
    case WeightType::kQ4_0:
      return "Q4_0";
    case WeightType::kQ4_1:
      return "Q4_1";
    case WeightType::kQ5_0:
      return "Q5_0";
    case WeightType::kQ5_1:
      return "Q5_1";
    case WeightType::kIQ4_NL:
      return "IQ4_NL";
    case WeightType::kQ2_K:
      return "Q2_K";
    case WeightType::kQ3_K:
      return "Q3_K";
    case WeightType::kQ4_K:
      return "Q4_K";
    case WeightType::kQ5_K:
      return "Q5_K";
    case WeightType::kQ6_K:
      return "Q6_K";
  }
  return "?";
}

// The quantized types the engine reads, in WeightType order.
inline constexpr WeightType kQuantTypes[] = {
    WeightType::kQ8_0, WeightType::kQ4_0,   WeightType::kQ4_1, WeightType::kQ5_0,
    WeightType::kQ5_1, WeightType::kIQ4_NL, WeightType::kQ2_K, WeightType::kQ3_K,
    WeightType::kQ4_K, WeightType::kQ5_K,   WeightType::kQ6_K};

inline std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// The block as the quant row-group sees it; K-quant super-blocks as one
// opaque payload.
inline QuantBlockFormat FormatOf(WeightType t) {
  QuantBlockFormat f;
  EXPECT_TRUE(QuantRowGroupFormatOf(t, &f)) << TypeName(t);
  return f;
}

// Byte offsets of a block's f16 fields (scale, and min where there is one).
inline std::vector<size_t> HalfFieldsOf(WeightType t) {
  switch (t) {
    case WeightType::kQ5_1:
      return {0, 2};
    case WeightType::kQ2_K:
      return {80, 82};
    case WeightType::kQ3_K:
      return {108};
    case WeightType::kQ4_K:
    case WeightType::kQ5_K:
      return {0, 2};
    case WeightType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

inline reference::DequantizeRowFn DequantizerOf(WeightType t) {
  switch (t) {
    case WeightType::kQ5_0:
      return reference::DequantizeRowQ5_0;
    case WeightType::kQ5_1:
      return reference::DequantizeRowQ5_1;
    case WeightType::kIQ4_NL:
      return reference::DequantizeRowIQ4_NL;
    case WeightType::kQ2_K:
      return reference::DequantizeRowQ2_K;
    case WeightType::kQ3_K:
      return reference::DequantizeRowQ3_K;
    case WeightType::kQ4_K:
      return reference::DequantizeRowQ4_K;
    case WeightType::kQ5_K:
      return reference::DequantizeRowQ5_K;
    case WeightType::kQ6_K:
      return reference::DequantizeRowQ6_K;
    default:
      return nullptr;
  }
}

// One weight matrix in its common layout, its float values, and (when asked)
// a copy in a preferred layout.
struct TestWeight {
  std::vector<uint8_t> native_bytes;
  std::vector<uint8_t> preferred_bytes;
  std::vector<float> values;  // W[n][k] as the kernels see it (dequantized)
  MatmulWeight native;
  MatmulWeight preferred;
};

inline TestWeight MakeWeight(WeightType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  TestWeight tw;
  const std::vector<float> f = RandomFloats(static_cast<size_t>(rows * cols), rng);
  const size_t n = f.size();
  tw.values.resize(n);
  switch (type) {
    case WeightType::kF32:
      tw.native_bytes.resize(n * 4);
      std::memcpy(tw.native_bytes.data(), f.data(), n * 4);
      reference::DequantizeRowF32(tw.native_bytes.data(), tw.values.data(), n);
      break;
    case WeightType::kF16:
    case WeightType::kBF16:
      tw.native_bytes.resize(n * 2);
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h =
            type == WeightType::kF16 ? reference::F32ToF16(f[i]) : reference::F32ToBF16(f[i]);
        std::memcpy(&tw.native_bytes[2 * i], &h, 2);
      }
      if (type == WeightType::kF16) {
        reference::DequantizeRowF16(tw.native_bytes.data(), tw.values.data(), n);
      } else {
        reference::DequantizeRowBF16(tw.native_bytes.data(), tw.values.data(), n);
      }
      break;
    case WeightType::kQ8_0:
    case WeightType::kQ4_0:
    case WeightType::kQ4_1: {
      tw.native_bytes.resize(n / 32 * FormatOf(type).block_bytes);
      if (type == WeightType::kQ8_0) {
        reference::QuantizeRowQ8_0(f.data(), tw.native_bytes.data(), n);
        reference::DequantizeRowQ8_0(tw.native_bytes.data(), tw.values.data(), n);
      } else if (type == WeightType::kQ4_0) {
        reference::QuantizeRowQ4_0(f.data(), tw.native_bytes.data(), n);
        reference::DequantizeRowQ4_0(tw.native_bytes.data(), tw.values.data(), n);
      } else {
        reference::QuantizeRowQ4_1(f.data(), tw.native_bytes.data(), n);
        reference::DequantizeRowQ4_1(tw.native_bytes.data(), tw.values.data(), n);
      }
      break;
    }
    default: {
      // Random quants and sub-block scales (every bit pattern is a valid
      // block), with f16 scales and mins of moderate size.
      const size_t block_bytes = FormatOf(type).block_bytes;
      const size_t blocks = n / static_cast<size_t>(BlockElems(type));
      tw.native_bytes.resize(blocks * block_bytes);
      std::uniform_int_distribution<int> byte(0, 255);
      std::uniform_real_distribution<float> half(-0.02f, 0.02f);
      for (uint8_t& b : tw.native_bytes) b = static_cast<uint8_t>(byte(rng));
      for (size_t i = 0; i < blocks; ++i) {
        for (size_t off : HalfFieldsOf(type)) {
          const uint16_t h = reference::F32ToF16(half(rng));
          std::memcpy(&tw.native_bytes[i * block_bytes + off], &h, 2);
        }
      }
      DequantizerOf(type)(tw.native_bytes.data(), tw.values.data(), static_cast<int64_t>(n));
    }
  }
  tw.native = MatmulWeight{tw.native_bytes.data(), type, WeightLayout::kRowMajor, rows, cols, 1, 0};
  return tw;
}

// Converts tw.native into `layout` with the relayout engine's transforms.
inline void MakePreferred(TestWeight& tw, WeightLayout layout, int32_t group_rows,
                          int32_t k_block) {
  const MatmulWeight& w = tw.native;
  tw.preferred_bytes.assign(tw.native_bytes.size(), 0);
  tw.preferred = w;
  tw.preferred.data = tw.preferred_bytes.data();
  tw.preferred.layout = layout;
  tw.preferred.group_rows = group_rows;
  tw.preferred.k_block = k_block;
  const size_t rows = static_cast<size_t>(w.rows);
  const size_t cols = static_cast<size_t>(w.cols);
  const size_t g = static_cast<size_t>(group_rows);
  bool ok = false;
  if (layout == WeightLayout::kQuantRowGroup) {
    const QuantRowGroupParams p{rows, cols / static_cast<size_t>(BlockElems(w.type)),
                                FormatOf(w.type), g};
    ok = QuantRowGroupForward(tw.native_bytes.data(), tw.preferred_bytes.data(), p, 0,
                              QuantRowGroupCount(p));
  } else if (layout == WeightLayout::kBf16KPair) {
    const Bf16KPairParams p{rows, cols, g};
    ok = Bf16KPairForward(tw.native_bytes.data(), tw.preferred_bytes.data(), p, 0,
                          Bf16KPairGroupCount(p));
  } else {
    const RowGroupParams p{rows, cols, w.type == WeightType::kF32 ? 4u : 2u, g,
                           static_cast<size_t>(k_block)};
    ok = RowGroupInterleaveForward(tw.native_bytes.data(), tw.preferred_bytes.data(), p, 0,
                                   RowGroupCount(p));
  }
  ASSERT_TRUE(ok);
}

// The bound on |y - y_ref| for element (t, n) (matmul_internal.h has the
// algorithm). Float weights: two float sums of K products in different
// orders each err by at most (K - 1) u sum|w x| (u = 2^-24), and the task's
// 1e-5 sqrt(K) relative slack covers the bf16 hi/lo split (2^-16 per term).
// Quantized weights: x_j is replaced by d * q_j with |x_j - d q_j| <= d / 2 =
// amax_b / 254 (times 1 + 2^-15 for the rounding of 1/d), so
//   |y - y_exact| <= sum_b (amax_b / 254) sum_{j in b} |w_j|
// and the float steps add at most (K + K/32 + 8) u sum |w_j| (|x_j| + amax_b/254)
// on both sides.
inline double ErrorBound(WeightType type, const float* w_row, const float* x, int64_t k) {
  constexpr double kU = 1.0 / (1 << 24);
  double mag = 0.0;
  double quant = 0.0;
  if (!IsQuantType(type)) {
    for (int64_t j = 0; j < k; ++j) mag += std::fabs(static_cast<double>(w_row[j]) * x[j]);
    return std::max(1e-5 * std::sqrt(static_cast<double>(k)), 2.0 * k * kU) * mag + 1e-30;
  }
  // Activations are quantized in blocks of 32, or 256 (Q8_K) for the K-quants.
  const int64_t block = BlockElems(type);
  for (int64_t b = 0; b < k / block; ++b) {
    double amax = 0.0;
    for (int64_t j = 0; j < block; ++j)
      amax = std::max(amax, std::fabs(static_cast<double>(x[block * b + j])));
    const double half_step = amax / 254.0 * (1.0 + 1.0 / (1 << 15));
    for (int64_t j = 0; j < block; ++j) {
      const double aw = std::fabs(static_cast<double>(w_row[block * b + j]));
      quant += aw * half_step;
      mag += aw * (std::fabs(static_cast<double>(x[block * b + j])) + half_step);
    }
  }
  return quant + 2.0 * (k + k / 32 + 8) * kU * mag + 1e-30;
}

// Runs Matmul on a NaN-poisoned y, so an element left unwritten shows.
// Checks y against ref element by element within ErrorBound; reports at most 5.
inline void ExpectWithinBound(const TestWeight& tw, const std::vector<float>& x, int64_t tokens,
                              const std::vector<float>& y, const std::vector<float>& ref) {
  const MatmulWeight& w = tw.native;
  int failures = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t n = 0; n < w.rows; ++n) {
      const size_t i = static_cast<size_t>(t * w.rows + n);
      const double bound =
          ErrorBound(w.type, &tw.values[static_cast<size_t>(n * w.cols)], &x[t * w.cols], w.cols);
      if (!(std::fabs(static_cast<double>(y[i]) - ref[i]) <= bound) && ++failures <= 5) {
        ADD_FAILURE() << "t=" << t << " n=" << n << " y=" << y[i] << " ref=" << ref[i]
                      << " bound=" << bound;
      }
    }
  }
}

inline std::vector<float> RunMatmul(const MatmulWeight& w, const std::vector<float>& x,
                                    int64_t tokens, ThreadPool* pool) {
  std::vector<float> y(static_cast<size_t>(tokens * w.rows), std::nanf(""));
  EXPECT_TRUE(Matmul(w, x.data(), tokens, y.data(), pool));
  return y;
}

inline std::vector<MatmulIsa> AvailableIsas() {
  std::vector<MatmulIsa> out;
  for (MatmulIsa isa :
       {MatmulIsa::kScalar, MatmulIsa::kAvx2, MatmulIsa::kAvx512, MatmulIsa::kAvx512NoBf16}) {
    if (MatmulIsaAvailable(isa)) out.push_back(isa);
  }
  return out;
}

// Restores the automatic ISA choice when a test ends.
struct IsaGuard {
  ~IsaGuard() { SetMatmulIsaForTesting(MatmulIsa::kAuto); }
};

}  // namespace relayout::kernels::testing
