// Matmul: Y[T, N] = X[T, K] * W[N, K]^T for a weight in any layout the
// relayout engine produces. T = 1 is the decode GEMV; T > 1 the prefill GEMM.
//
//   W  [N = rows, K = cols], in `layout` (kernels/cpu/layout/row_group_interleave.h,
//      quant_row_group.h, bf16_kpair.h describe the byte layouts)
//   X  T rows of K floats, row stride K
//   Y  T rows of N floats, row stride N
//
// Numerics:
//   - F32 weights: products and sums in double (a float product is exact in
//     double), so every ISA and layout gives the same y to float rounding,
//     and an F32 checkpoint's logits match float reference implementations
//     to 1e-4. The F32 path is the accuracy path; half and quantized types
//     are the fast ones.
//   - F16/BF16 weights: float accumulation in a kernel-specific order; |y -
//     y_ref| <= max(1e-5 sqrt(K), 2 K 2^-24) sum_k |w_k x_k| against
//     MatmulReference. BF16 K-pair on AVX-512 BF16 feeds x to vdpbf16ps as two
//     bf16 halves (|x - hi - lo| <= 2^-16 |x|).
//   - Quantized weights (Q8_0, Q4_0, Q4_1): x is quantized once per call to
//     Q8 blocks of 32 (float scale d = max|x| / 127, as llama.cpp's Q8
//     activations but with a float rather than f16 scale), and each block's
//     dot product is exact in int32. Against exact arithmetic on the stored
//     weights, |y - y_exact| <= sum_b (max_{j in b} |x_j| / 254) sum_{j in b}
//     |w_j| plus float rounding of at most (K/32 + 8) 2^-24 sum |w_j x_j|.
//     The result is bit for bit the same on every ISA, in the common and
//     preferred layouts, with or without a pool, and for a token alone or in
//     a batch (matmul_internal.h states the algorithm).
//   - x must be finite; otherwise y is unspecified (never a crash).
//
// Work is split over output rows (whole row groups) across `pool`; a null
// pool runs on the calling thread. The best kernels for the CPU are picked
// once, at the first call (AVX-512 VNNI > AVX2+FMA+F16C > portable C++);
// matmul_testing.h can force one. Scratch for the prepared activations is a
// per-thread buffer that grows to the largest tokens x K seen and is kept.
//
// Thread safety: concurrent calls are safe with distinct pools (or none); a
// ThreadPool itself takes one Run at a time.
#pragma once

#include <cstdint>

#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout::kernels {

enum class WeightType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kIQ4_NL,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};
enum class WeightLayout : uint8_t {
  kRowMajor,       // float row-major, or GGUF blocks in file order
  kRowGroup,       // row_group_interleave.h: group_rows, k_block
  kQuantRowGroup,  // quant_row_group.h: group_rows
  kBf16KPair,      // bf16_kpair.h: group_rows
};

struct MatmulWeight {
  const void* data = nullptr;
  WeightType type = WeightType::kF32;
  WeightLayout layout = WeightLayout::kRowMajor;
  int64_t rows = 0;  // N, outputs
  int64_t cols = 0;  // K, inputs
  int32_t group_rows = 1;
  int32_t k_block = 0;
};

// False (and Y untouched) when the weight's type, layout and parameters do
// not describe a supported combination or a dimension is not positive.
bool MatmulSupported(const MatmulWeight& w);
// The same without looking at data: whether a weight of this type, layout
// and shape could be read (a device's capability query).
bool MatmulShapeSupported(const MatmulWeight& w);

// The bytes the weight occupies in its layout (every layout is a
// permutation of the common one, so the same for all); 0 for an unknown
// type.
int64_t MatmulWeightBytes(const MatmulWeight& w);

// The block format of a type in the quantized row-group layout
// (quant_row_group.h): every block type, a K-quant super-block counting as
// all payload. False for the float types.
bool QuantRowGroupFormatOf(WeightType type, QuantBlockFormat* format);

// REQUIRES: MatmulSupported(w); x has tokens * w.cols floats and y has
// tokens * w.rows floats; tokens >= 1. Returns false otherwise.
[[nodiscard]] bool Matmul(const MatmulWeight& w, const float* x, int64_t tokens, float* y,
                          ThreadPool* pool);

// The scalar reference for the same contract (dequantize, accumulate in
// float over k ascending). Never optimised; tests compare against it.
[[nodiscard]] bool MatmulReference(const MatmulWeight& w, const float* x, int64_t tokens, float* y);

}  // namespace relayout::kernels
