// PagedAttention's tile with AVX-512F (paged_attention_tile.h). Built with
// the AVX-512 flags; called only after the dispatcher has seen them.
#include "kernels/cpu/attention/paged_attention_tile.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__F16C__)
#include <immintrin.h>

namespace relayout::kernels::attention_internal {
namespace {

struct Avx512Ops {
  // 16 positions per vector: one broadcast FMA per head dim, no reduction.
  // Multiply then add, not FMA: the same rounding as the portable path's
  // loops, so every ISA gives the same attention output for the same cache
  // (greedy text then does not depend on the CPU it runs on).
  static void Scores(const float* q, int64_t stride, int64_t count, const float* kt, int64_t hd,
                     int64_t width, float* s) {
    for (int64_t j = 0; j < width; j += 16) {
      int64_t c = 0;
      for (; c + 4 <= count; c += 4) {  // four heads share each row of kt
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float* q0 = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          const __m512 k = _mm512_loadu_ps(kt + d * width + j);
          a0 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(q0[d]), k), a0);
          a1 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(q0[stride + d]), k), a1);
          a2 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(q0[2 * stride + d]), k), a2);
          a3 = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(q0[3 * stride + d]), k), a3);
        }
        _mm512_storeu_ps(s + c * width + j, a0);
        _mm512_storeu_ps(s + (c + 1) * width + j, a1);
        _mm512_storeu_ps(s + (c + 2) * width + j, a2);
        _mm512_storeu_ps(s + (c + 3) * width + j, a3);
      }
      for (; c < count; ++c) {
        __m512 acc = _mm512_setzero_ps();
        const float* qc = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          acc = _mm512_add_ps(
              _mm512_mul_ps(_mm512_set1_ps(qc[d]), _mm512_loadu_ps(kt + d * width + j)), acc);
        }
        _mm512_storeu_ps(s + c * width + j, acc);
      }
    }
  }
  // The accumulator stays in registers across the block's positions.
  static void AccumulatePv(const float* p, int64_t n, const float* v, int64_t hd, float* a) {
    int64_t d = 0;
    for (; d + 64 <= hd; d += 64) {
      __m512 a0 = _mm512_loadu_ps(a + d), a1 = _mm512_loadu_ps(a + d + 16);
      __m512 a2 = _mm512_loadu_ps(a + d + 32), a3 = _mm512_loadu_ps(a + d + 48);
      for (int64_t j = 0; j < n; ++j) {
        const __m512 w = _mm512_set1_ps(p[j]);
        const float* vj = v + j * hd + d;
        a0 = _mm512_add_ps(_mm512_mul_ps(w, _mm512_loadu_ps(vj)), a0);
        a1 = _mm512_add_ps(_mm512_mul_ps(w, _mm512_loadu_ps(vj + 16)), a1);
        a2 = _mm512_add_ps(_mm512_mul_ps(w, _mm512_loadu_ps(vj + 32)), a2);
        a3 = _mm512_add_ps(_mm512_mul_ps(w, _mm512_loadu_ps(vj + 48)), a3);
      }
      _mm512_storeu_ps(a + d, a0);
      _mm512_storeu_ps(a + d + 16, a1);
      _mm512_storeu_ps(a + d + 32, a2);
      _mm512_storeu_ps(a + d + 48, a3);
    }
    for (; d + 16 <= hd; d += 16) {
      __m512 acc = _mm512_loadu_ps(a + d);
      for (int64_t j = 0; j < n; ++j) {
        acc = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(p[j]), _mm512_loadu_ps(v + j * hd + d)),
                            acc);
      }
      _mm512_storeu_ps(a + d, acc);
    }
    for (; d < hd; ++d) {
      for (int64_t j = 0; j < n; ++j) a[d] += p[j] * v[j * hd + d];
    }
  }
  static void Scale(float c, float* y, int64_t n) {
    const __m512 cv = _mm512_set1_ps(c);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(cv, _mm512_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] *= c;
  }
  // As the AVX2 file's Exp8, with 2^k applied by vscalefps.
  static __m512 Exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
  }
  static void Exp(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, Exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      _mm512_mask_storeu_ps(x + i, m, Exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
  }
  static void WidenF16(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      _mm512_storeu_ps(
          dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
    }
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
  }
};

}  // namespace

TileFn Avx512TileFn() { return &RunTile<Avx512Ops>; }

}  // namespace relayout::kernels::attention_internal

#else

namespace relayout::kernels::attention_internal {
TileFn Avx512TileFn() { return nullptr; }
}  // namespace relayout::kernels::attention_internal

#endif
