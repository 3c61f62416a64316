// AVX2 kernels for the K-quants (Q2_K .. Q6_K) against activations quantized
// to Q8_K (steps 1K and 2K of matmul_internal.h, bit for bit). The kernel
// body is matmul_kquant_simd.h; this file instantiates it with the AVX2 flags
// and adds the Q8_K quantizer, which the AVX-512 table shares.
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/cpu/matmul/matmul_kquant_simd.h"

namespace relayout::kernels::matmul_internal {
namespace {

float MaxAbs256(const float* x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < kKBlock; i += 8)
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

}  // namespace

void Avx2QuantizeK(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsum) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / kKBlock; ++b) {
    const float* xb = x + b * kKBlock;
    int8_t* qb = q + b * kKBlock;
    const float amax = MaxAbs256(xb);
    float scale = 0.0f;
    if (amax >= 0x1p-100f) {
      scale = amax / 127.0f;
      const __m256 inv = _mm256_set1_ps(1.0f / scale);
      for (int c = 0; c < kKBlock; c += 32) {
        __m256i r[4];
        for (int i = 0; i < 4; ++i) {
          r[i] = _mm256_cvtps_epi32(
              _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + c + 8 * i), inv),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
        // The packs saturate as the scalar rounding clamps, and interleave
        // 128-bit lanes; `order` restores element order.
        const __m256i packed = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3])),
            order);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + c), packed);
      }
    } else {
      std::memset(qb, 0, kKBlock);
    }
    d[b] = scale;
    // Sums of 16: maddubs(1, q) pairs, madd(1) quads, then hadd pairs of quads.
    for (int c = 0; c < kKBlock; c += 64) {
      const __m256i ones8 = _mm256_set1_epi8(1);
      const __m256i ones16 = _mm256_set1_epi16(1);
      const __m256i s0 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, KLoad(qb + c)), ones16);
      const __m256i s1 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, KLoad(qb + c + 32)), ones16);
      // hadd(s0, s1) lanes: [s0 0+1, 2+3, s1 0+1, 2+3 | s0 4+5, 6+7, s1 4+5, 6+7]
      const __m256i h = _mm256_hadd_epi32(s0, s1);
      const __m256i sums = _mm256_hadd_epi32(h, h);  // [a0, a1, b0, b1, .. | a2, a3, b2, b3, ..]
      alignas(32) int32_t v[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(v), sums);
      int16_t* out = bsum + b * (kKBlock / kKSub) + c / kKSub;
      out[0] = static_cast<int16_t>(v[0]);
      out[1] = static_cast<int16_t>(v[4]);
      out[2] = static_cast<int16_t>(v[1]);
      out[3] = static_cast<int16_t>(v[5]);
    }
  }
}

void Avx2KQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  KQuantRowsByType(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif
