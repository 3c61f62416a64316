// AVX-512 K-quant kernel: matmul_kquant_simd.h built with AVX-512BW, whose
// dot products take two 32-element chunks per instruction. Activations are
// quantized to Q8_K by the AVX2 quantizer (the same bits on every ISA).
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/matmul/matmul_kquant_simd.h"

namespace relayout::kernels::matmul_internal {

void Avx512KQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  KQuantRowsByType(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif
