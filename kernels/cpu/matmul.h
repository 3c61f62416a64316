// Matmul: Y[T, N] = X[T, K] * W[N, K]^T for a weight in any layout the
// relayout engine produces. T = 1 is the decode GEMV; T > 1 the prefill GEMM.
//
//   W  [N = rows, K = cols], in `layout` (kernels/cpu/row_group_interleave.h,
//      quant_row_group.h, bf16_kpair.h describe the byte layouts)
//   X  T rows of K floats, row stride K
//   Y  T rows of N floats, row stride N
//
// Numerics: float accumulation. Quantized weights may be multiplied against
// activations quantized to 8 bits per block of 32 (as llama.cpp's Q8 dot
// products do); the error bound is stated beside each implementation.
//
// Work is split over output rows (whole row groups) across `pool`; a null
// pool runs on the calling thread.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace relayout::kernels {

enum class WeightType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1 };
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

// REQUIRES: MatmulSupported(w); x has tokens * w.cols floats and y has
// tokens * w.rows floats; tokens >= 1. Returns false otherwise.
[[nodiscard]] bool Matmul(const MatmulWeight& w, const float* x, int64_t tokens, float* y,
                          ThreadPool* pool);

// The scalar reference for the same contract (dequantize, accumulate in
// float over k ascending). Never optimised; tests compare against it.
[[nodiscard]] bool MatmulReference(const MatmulWeight& w, const float* x, int64_t tokens, float* y);

}  // namespace relayout::kernels
