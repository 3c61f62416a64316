// AVX2 + FMA + F16C kernels for float weights (F32, F16, BF16): the shared
// kernels of matmul_float_simd.h over 8-lane registers (rowgroup-g<G>k8;
// BF16 K-pair with G a multiple of 8: one 32-byte load is 8 rows x 2
// columns, a shift and a mask give the two columns as floats).
//
// Built with -mavx2 -mfma -mf16c and called only after the dispatcher has
// seen those features; internal linkage throughout (matmul_internal.h says
// why).
#include "kernels/cpu/matmul/matmul_float_rows.h"
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul/matmul_float_simd.h"

namespace relayout::kernels::matmul_internal {
namespace {

struct Avx2Float {
  using E = FloatKind;
  using Reg = __m256;
  using DReg = __m256d;
  static constexpr int kLanes = 8;
  static constexpr int kGemvRows = 8;
  static constexpr int kGemmTokens = 3;
  static constexpr int kF64Tokens = 2;  // 2 tokens x 4 rows of doubles fit 16 ymm

  static __m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, Reg r) { _mm256_storeu_ps(p, r); }
  static Reg Add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg LoadPartial(const float* p, int n) {
    alignas(32) float buf[kLanes] = {};
    std::memcpy(buf, p, sizeof(float) * static_cast<size_t>(n));
    return _mm256_load_ps(buf);
  }
  template <E kE>
  static Reg LoadW(const uint8_t* p) {
    if constexpr (kE == E::kF32) {
      return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    } else if constexpr (kE == E::kF16) {
      return _mm256_cvtph_ps(LoadU128(p));
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(LoadU128(p)), 16));
    }
  }
  template <E kE>
  static Reg LoadWPartial(const uint8_t* p, int n) {
    alignas(32) uint8_t buf[32] = {};
    std::memcpy(buf, p, static_cast<size_t>(n) * (kE == E::kF32 ? 4 : 2));
    return LoadW<kE>(buf);
  }
  static void Reduce8(const Reg* v, float* out) {
    const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    _mm256_store_ps(
        out, _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31)));
  }
  static void Bf16Pairs(const uint8_t* p, Reg* w0, Reg* w1) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    *w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *w1 = _mm256_castsi256_ps(
        _mm256_and_si256(v, _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u))));
  }
  static DReg DZero() { return _mm256_setzero_pd(); }
  static DReg DWiden(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static DReg DFmadd(DReg a, DReg b, DReg c) { return _mm256_fmadd_pd(a, b, c); }
  static double DSum(DReg v) {
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  }
};

}  // namespace

void Avx2FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  FloatSimd<Avx2Float>::Rows(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif  // x86-64
