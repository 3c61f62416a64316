// PagedAttention's tile with AVX-512F (paged_attention_tile.h). Built with
// the AVX-512 flags; called only after the dispatcher has seen them.
#include "kernels/cpu/paged_attention_tile.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__F16C__)
#include <immintrin.h>

namespace relayout::kernels::attention_internal {
namespace {

struct Avx512Ops {
  static float Dot(const float* a, const float* b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
  }
  static void Axpy(float w, const float* x, float* y, int64_t n) {
    const __m512 wv = _mm512_set1_ps(w);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      _mm512_storeu_ps(y + i, _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] += w * x[i];
  }
  static void Scale(float c, float* y, int64_t n) {
    const __m512 cv = _mm512_set1_ps(c);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(cv, _mm512_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] *= c;
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
