// AVX-512 kernels for float weights (F32, F16, BF16), the AVX2 ones
// (matmul_avx2_float.cc) widened to 16 lanes, with masked loads for the K
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

#include <cstring>

namespace relayout::kernels::matmul_internal {
namespace {

using E = FloatKind;

constexpr int kLanes = 16;

__m512 Bf16ToF32(__m256i v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

template <E kE>
__m512 Load16(const uint8_t* p) {
  if constexpr (kE == E::kF32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (kE == E::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    return Bf16ToF32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
}

// The first n < 16 elements at p, the rest zero; reads only those n.
template <E kE>
__m512 LoadPartial(const uint8_t* p, __mmask16 m) {
  if constexpr (kE == E::kF32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (kE == E::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    return Bf16ToF32(_mm256_maskz_loadu_epi16(m, p));
  }
}

__m256 Reduce8(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

// 8 zmm -> their 8 horizontal sums.
__m256 Reduce8Wide(const __m512* v) {
  __m256 h[8];
  for (int i = 0; i < 8; ++i) {
    const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1));
    h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]), upper);
  }
  return Reduce8(h);
}

template <E kE, int TT, int RR>
void Micro(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
  const int64_t k = a.w.cols;
  const float* x[TT];
  __m512 acc[TT * RR];
  for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
  for (int i = 0; i < TT * RR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t c = 0; c < tile.chunks; ++c) {
    __m512 xv[TT];
    for (int t = 0; t < TT; ++t) xv[t] = _mm512_loadu_ps(x[t] + c * kLanes);
    for (int r = 0; r < RR; ++r) {
      const __m512 w = Load16<kE>(tile.main[r] + c * tile.chunk_stride);
      for (int t = 0; t < TT; ++t) acc[t * RR + r] = _mm512_fmadd_ps(w, xv[t], acc[t * RR + r]);
    }
  }
  if (tile.rem != 0) {
    const __mmask16 m = static_cast<__mmask16>((1u << tile.rem) - 1);
    __m512 xv[TT];
    for (int t = 0; t < TT; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x[t] + tile.chunks * kLanes);
    for (int r = 0; r < RR; ++r) {
      const __m512 w = LoadPartial<kE>(tile.tail[r], m);
      for (int t = 0; t < TT; ++t) acc[t * RR + r] = _mm512_fmadd_ps(w, xv[t], acc[t * RR + r]);
    }
  }
  constexpr int kCount = TT * RR;
  constexpr int kPadded = (kCount + 7) / 8 * 8;
  alignas(32) float out[kPadded];
  for (int i = 0; i < kPadded; i += 8) {
    __m512 v[8];
    for (int j = 0; j < 8; ++j) v[j] = i + j < kCount ? acc[i + j] : _mm512_setzero_ps();
    _mm256_store_ps(out + i, Reduce8Wide(v));
  }
  for (int t = 0; t < TT; ++t) {
    float* y = a.y + (t0 + t) * a.w.rows + row;
    for (int r = 0; r < tile.rows; ++r) y[r] = out[t * RR + r];
  }
}

// F32 weights: the products and sums in double. A float x float product is
// exact in double, so an F32 matmul is accurate to double rounding whatever
// its summation order: this is what lets an F32 checkpoint's logits match a
// float reference implementation to 1e-4 (a float SIMD order would add its
// own 1e-4-sized error to the reference's). Half the FMA width of Micro;
// F32 weights are the accuracy path, the half and quantized types the fast one.
template <int TT, int RR>
void MicroF64(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
  const int64_t k = a.w.cols;
  const float* x[TT];
  __m512d acc[TT * RR];
  for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
  for (int i = 0; i < TT * RR; ++i) acc[i] = _mm512_setzero_pd();
  const auto step = [&](const float* const* xp, const uint8_t* const* wp) {
    __m512d xl[TT], xh[TT];
    for (int t = 0; t < TT; ++t) {
      xl[t] = _mm512_cvtps_pd(_mm256_loadu_ps(xp[t]));
      xh[t] = _mm512_cvtps_pd(_mm256_loadu_ps(xp[t] + 8));
    }
    for (int r = 0; r < RR; ++r) {
      const float* w = reinterpret_cast<const float*>(wp[r]);
      const __m512d wl = _mm512_cvtps_pd(_mm256_loadu_ps(w));
      const __m512d wh = _mm512_cvtps_pd(_mm256_loadu_ps(w + 8));
      for (int t = 0; t < TT; ++t) {
        acc[t * RR + r] = _mm512_fmadd_pd(wl, xl[t], acc[t * RR + r]);
        acc[t * RR + r] = _mm512_fmadd_pd(wh, xh[t], acc[t * RR + r]);
      }
    }
  };
  for (int64_t c = 0; c < tile.chunks; ++c) {
    const float* xp[TT];
    const uint8_t* wp[RR];
    for (int t = 0; t < TT; ++t) xp[t] = x[t] + c * kLanes;
    for (int r = 0; r < RR; ++r) wp[r] = tile.main[r] + c * tile.chunk_stride;
    step(xp, wp);
  }
  if (tile.rem != 0) {
    // The tail through zero-padded copies, so nothing past K is read.
    alignas(64) float xbuf[TT][kLanes] = {};
    alignas(64) float wbuf[RR][kLanes] = {};
    const float* xp[TT];
    const uint8_t* wp[RR];
    for (int t = 0; t < TT; ++t) {
      std::memcpy(xbuf[t], x[t] + tile.chunks * kLanes,
                  sizeof(float) * static_cast<size_t>(tile.rem));
      xp[t] = xbuf[t];
    }
    for (int r = 0; r < RR; ++r) {
      std::memcpy(wbuf[r], tile.tail[r], sizeof(float) * static_cast<size_t>(tile.rem));
      wp[r] = reinterpret_cast<const uint8_t*>(wbuf[r]);
    }
    step(xp, wp);
  }
  for (int t = 0; t < TT; ++t) {
    float* y = a.y + (t0 + t) * a.w.rows + row;
    for (int r = 0; r < tile.rows; ++r)
      y[r] = static_cast<float>(_mm512_reduce_add_pd(acc[t * RR + r]));
  }
}

template <E kE, int TT, int RR>
void Tokens(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t t1, int64_t row) {
  int64_t t = t0;
  if constexpr (kE == E::kF32) {
    for (; t + TT <= t1; t += TT) MicroF64<TT, RR>(tile, a, t, row);
    for (; t < t1; ++t) MicroF64<1, RR>(tile, a, t, row);
  } else {
    for (; t + TT <= t1; t += TT) Micro<kE, TT, RR>(tile, a, t, row);
    for (; t < t1; ++t) Micro<kE, 1, RR>(tile, a, t, row);
  }
}

// 16 rows of a BF16 K-pair group (element offset `sub` = 32 * s for
// sub-block s), lanes along rows.
template <int TT>
void KPairMicro(const uint8_t* group, int64_t g, int64_t sub, const MatmulArgs& a, int64_t t0,
                int64_t row) {
  const int64_t k = a.w.cols;
  const int64_t pairs = k / 2;
  const __m512i high = _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u));
  const float* x[TT];
  __m512 even[TT], odd[TT];
  for (int t = 0; t < TT; ++t) {
    x[t] = a.x + (t0 + t) * k;
    even[t] = _mm512_setzero_ps();
    odd[t] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512i v = _mm512_loadu_si512(group + 2 * (p * 2 * g + sub));
    const __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    const __m512 w1 = _mm512_castsi512_ps(_mm512_and_si512(v, high));
    for (int t = 0; t < TT; ++t) {
      even[t] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[t][2 * p]), even[t]);
      odd[t] = _mm512_fmadd_ps(w1, _mm512_set1_ps(x[t][2 * p + 1]), odd[t]);
    }
  }
  if (k % 2 != 0) {
    const __m512 w = Load16<E::kBF16>(group + 2 * (pairs * 2 * g + sub / 2));
    for (int t = 0; t < TT; ++t) even[t] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[t][k - 1]), even[t]);
  }
  for (int t = 0; t < TT; ++t) {
    _mm512_storeu_ps(a.y + (t0 + t) * a.w.rows + row, _mm512_add_ps(even[t], odd[t]));
  }
}

struct Kernel {
  static constexpr int kLanes = ::relayout::kernels::matmul_internal::kLanes;
  static constexpr int kGemvRows = 16;
  static constexpr int kGemmTokens = 4;
  template <E kE, int TT, int RR>
  static void Tokens(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t t1,
                     int64_t row) {
    matmul_internal::Tokens<kE, TT, RR>(tile, a, t0, t1, row);
  }
  template <int TT>
  static void KPairMicro(const uint8_t* group, int64_t g, int64_t sub, const MatmulArgs& a,
                         int64_t t, int64_t row) {
    matmul_internal::KPairMicro<TT>(group, g, sub, a, t, row);
  }
};

}  // namespace

void Avx512FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  WalkFloatRowsByType<Kernel>(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif  // x86-64
