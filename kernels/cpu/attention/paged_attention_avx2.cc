// PagedAttention's tile with AVX2, FMA and F16C (paged_attention_tile.h).
// Built with those flags; called only after the dispatcher has seen them.
#include "kernels/cpu/attention/paged_attention_tile.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cstring>

namespace relayout::kernels::attention_internal {
namespace {

struct Avx2Ops {
  // 16 positions in two vectors: broadcast FMAs per head dim, no reduction.
  // Multiply then add, not FMA: the same rounding as the portable path's
  // loops, so every ISA gives the same attention output for the same cache
  // (greedy text then does not depend on the CPU it runs on).
  static void Scores(const float* q, int64_t stride, int64_t count, const float* kt, int64_t hd,
                     int64_t width, float* s) {
    for (int64_t j = 0; j < width; j += 16) {
      int64_t c = 0;
      for (; c + 2 <= count; c += 2) {  // two heads share each row of kt
        __m256 l0 = _mm256_setzero_ps(), h0 = l0, l1 = l0, h1 = l0;
        const float* q0 = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          const __m256 klo = _mm256_loadu_ps(kt + d * width + j);
          const __m256 khi = _mm256_loadu_ps(kt + d * width + j + 8);
          const __m256 x0 = _mm256_set1_ps(q0[d]), x1 = _mm256_set1_ps(q0[stride + d]);
          l0 = _mm256_add_ps(_mm256_mul_ps(x0, klo), l0);
          h0 = _mm256_add_ps(_mm256_mul_ps(x0, khi), h0);
          l1 = _mm256_add_ps(_mm256_mul_ps(x1, klo), l1);
          h1 = _mm256_add_ps(_mm256_mul_ps(x1, khi), h1);
        }
        _mm256_storeu_ps(s + c * width + j, l0);
        _mm256_storeu_ps(s + c * width + j + 8, h0);
        _mm256_storeu_ps(s + (c + 1) * width + j, l1);
        _mm256_storeu_ps(s + (c + 1) * width + j + 8, h1);
      }
      for (; c < count; ++c) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const float* qc = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          const __m256 x = _mm256_set1_ps(qc[d]);
          lo = _mm256_add_ps(_mm256_mul_ps(x, _mm256_loadu_ps(kt + d * width + j)), lo);
          hi = _mm256_add_ps(_mm256_mul_ps(x, _mm256_loadu_ps(kt + d * width + j + 8)), hi);
        }
        _mm256_storeu_ps(s + c * width + j, lo);
        _mm256_storeu_ps(s + c * width + j + 8, hi);
      }
    }
  }
  static void AccumulatePv(const float* p, int64_t n, const float* v, int64_t hd, float* a) {
    int64_t d = 0;
    for (; d + 32 <= hd; d += 32) {
      __m256 a0 = _mm256_loadu_ps(a + d), a1 = _mm256_loadu_ps(a + d + 8);
      __m256 a2 = _mm256_loadu_ps(a + d + 16), a3 = _mm256_loadu_ps(a + d + 24);
      for (int64_t j = 0; j < n; ++j) {
        const __m256 w = _mm256_set1_ps(p[j]);
        const float* vj = v + j * hd + d;
        a0 = _mm256_add_ps(_mm256_mul_ps(w, _mm256_loadu_ps(vj)), a0);
        a1 = _mm256_add_ps(_mm256_mul_ps(w, _mm256_loadu_ps(vj + 8)), a1);
        a2 = _mm256_add_ps(_mm256_mul_ps(w, _mm256_loadu_ps(vj + 16)), a2);
        a3 = _mm256_add_ps(_mm256_mul_ps(w, _mm256_loadu_ps(vj + 24)), a3);
      }
      _mm256_storeu_ps(a + d, a0);
      _mm256_storeu_ps(a + d + 8, a1);
      _mm256_storeu_ps(a + d + 16, a2);
      _mm256_storeu_ps(a + d + 24, a3);
    }
    for (; d < hd; ++d) {
      for (int64_t j = 0; j < n; ++j) a[d] += p[j] * v[j * hd + d];
    }
  }
  static void Scale(float c, float* y, int64_t n) {
    const __m256 cv = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(cv, _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] *= c;
  }
  // exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2],
  // exp(r) by its Taylor polynomial to degree 6 (relative error ~1e-7);
  // inputs below -87 give 0, like expf's underflow.
  static __m256 Exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static void Exp(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, Exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
      alignas(32) float buf[8] = {};
      std::memcpy(buf, x + i, sizeof(float) * static_cast<size_t>(n - i));
      _mm256_store_ps(buf, Exp8(_mm256_load_ps(buf)));
      std::memcpy(x + i, buf, sizeof(float) * static_cast<size_t>(n - i));
    }
  }
  static void WidenF16(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_ps(dst + i,
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    }
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
  }
};

}  // namespace

TileFn Avx2TileFn() { return &RunTile<Avx2Ops>; }

}  // namespace relayout::kernels::attention_internal

#else

namespace relayout::kernels::attention_internal {
TileFn Avx2TileFn() { return nullptr; }
}  // namespace relayout::kernels::attention_internal

#endif
