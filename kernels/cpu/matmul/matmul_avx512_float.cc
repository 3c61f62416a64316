// AVX-512 kernels for float weights (F32, F16, BF16): the shared kernels of
// matmul_float_simd.h over 16-lane registers, with masked loads for the K
// tail. rowgroup-g<G>k16 gives a tile's rows for one K-chunk as one
// contiguous run; BF16 K-pair with G a multiple of 16 is read with lanes
// along rows (one 64-byte load = 16 rows x 2 columns) when vdpbf16ps is not
// used (matmul_avx512_bf16.cc).
//
// Built with the AVX-512 flags; called only after the dispatcher has seen
// them. Internal linkage throughout (matmul_internal.h says why).
#include "kernels/cpu/matmul/matmul_float_rows.h"
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/matmul/matmul_float_simd.h"

namespace relayout::kernels::matmul_internal {
namespace {

struct Avx512Float {
  using E = FloatKind;
  using Reg = __m512;
  using DReg = __m512d;
  static constexpr int kLanes = 16;
  static constexpr int kGemvRows = 16;
  static constexpr int kGemmTokens = 4;
  static constexpr int kF64Tokens = 4;

  static __mmask16 Mask(int n) { return static_cast<__mmask16>((1u << n) - 1); }
  static Reg Bf16ToF32(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg Add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg LoadPartial(const float* p, int n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
  template <E kE>
  static Reg LoadW(const uint8_t* p) {
    if constexpr (kE == E::kF32) {
      return _mm512_loadu_ps(p);
    } else if constexpr (kE == E::kF16) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      return Bf16ToF32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
  }
  // Reads only the first n elements.
  template <E kE>
  static Reg LoadWPartial(const uint8_t* p, int n) {
    if constexpr (kE == E::kF32) {
      return _mm512_maskz_loadu_ps(Mask(n), p);
    } else if constexpr (kE == E::kF16) {
      return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Mask(n), p));
    } else {
      return Bf16ToF32(_mm256_maskz_loadu_epi16(Mask(n), p));
    }
  }
  // Each zmm folded to a ymm, then the ymm hadd reduction.
  static void Reduce8(const Reg* v, float* out) {
    __m256 h[8];
    for (int i = 0; i < 8; ++i) {
      const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1));
      h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]), upper);
    }
    const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
    _mm256_store_ps(
        out, _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31)));
  }
  static void Bf16Pairs(const uint8_t* p, Reg* w0, Reg* w1) {
    const __m512i v = _mm512_loadu_si512(p);
    *w0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *w1 = _mm512_castsi512_ps(
        _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u))));
  }
  static DReg DZero() { return _mm512_setzero_pd(); }
  static DReg DWiden(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static DReg DFmadd(DReg a, DReg b, DReg c) { return _mm512_fmadd_pd(a, b, c); }
  static double DSum(DReg v) { return _mm512_reduce_add_pd(v); }
};

}  // namespace

void Avx512FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  FloatSimd<Avx512Float>::Rows(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif  // x86-64
