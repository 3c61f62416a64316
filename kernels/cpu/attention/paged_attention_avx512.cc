// PagedAttention's tile with AVX-512F (paged_attention_tile.h): the shared
// SIMD ops (paged_attention_simd.h) over 16-lane registers. Built with the
// AVX-512 flags; called only after the dispatcher has seen them.
#include "kernels/cpu/attention/paged_attention_tile.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__F16C__)
#include <immintrin.h>

#include "kernels/cpu/attention/paged_attention_simd.h"

namespace relayout::kernels::attention_internal {
namespace {

struct Avx512Vec {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Set1(float x) { return _mm512_set1_ps(x); }
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg Add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg Mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg Fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg Round(Reg x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // vscalefps: the same value as building 2^k in the exponent field.
  static Reg Times2Pow(Reg p, Reg k) { return _mm512_scalef_ps(p, k); }
  static Reg LoadF16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

}  // namespace

TileFn Avx512TileFn() { return &RunTile<SimdOps<Avx512Vec>>; }

}  // namespace relayout::kernels::attention_internal

#else

namespace relayout::kernels::attention_internal {
TileFn Avx512TileFn() { return nullptr; }
}  // namespace relayout::kernels::attention_internal

#endif
