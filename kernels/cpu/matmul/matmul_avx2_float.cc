// AVX2 + FMA + F16C kernels for float weights (F32, F16, BF16).
//
// Built with -mavx2 -mfma -mf16c and called only after the dispatcher has
// seen those features; internal linkage throughout (matmul_internal.h says
// why).
//
// Row-major and rowgroup-g<G>k8: lanes run along K. A register tile of TT
// tokens x RR rows keeps TT * RR accumulators, loads each weight vector once
// for TT tokens and each x vector once for RR rows, and reduces the
// accumulators horizontally once per tile (8 at a time, with hadds). In
// rowgroup-g<G>k8 the tile's rows for one K-chunk are one contiguous run.
// BF16 K-pair (G a multiple of 8): lanes run along rows, no reduction at all:
// one 32-byte load is 8 rows x 2 columns; a shift and a mask give the two
// columns as floats. Other parameters are decoded to a float panel first.
#include "kernels/cpu/matmul/matmul_float_rows.h"
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

namespace relayout::kernels::matmul_internal {
namespace {

using E = FloatKind;

constexpr int kLanes = 8;

__m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

template <E kE>
__m256 Load8(const uint8_t* p) {
  if constexpr (kE == E::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (kE == E::kF16) {
    return _mm256_cvtph_ps(LoadU128(p));
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(LoadU128(p)), 16));
  }
}

// The first n < 8 elements at p, zero-padded.
template <E kE>
__m256 LoadPartial(const uint8_t* p, int n) {
  alignas(32) uint8_t buf[32] = {};
  std::memcpy(buf, p, static_cast<size_t>(n) * (kE == E::kF32 ? 4 : 2));
  return Load8<kE>(buf);
}

// 8 vectors -> one vector of their 8 horizontal sums.
__m256 Reduce8(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

// y for tokens [t0, t0 + TT) x the tile's rows; x rows have stride K.
template <E kE, int TT, int RR>
void Micro(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
  const int64_t k = a.w.cols;
  const float* x[TT];
  __m256 acc[TT * RR];
  for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
  for (int i = 0; i < TT * RR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < tile.chunks; ++c) {
    __m256 xv[TT];
    for (int t = 0; t < TT; ++t) xv[t] = _mm256_loadu_ps(x[t] + c * kLanes);
    for (int r = 0; r < RR; ++r) {
      const __m256 w = Load8<kE>(tile.main[r] + c * tile.chunk_stride);
      for (int t = 0; t < TT; ++t) acc[t * RR + r] = _mm256_fmadd_ps(w, xv[t], acc[t * RR + r]);
    }
  }
  if (tile.rem != 0) {
    __m256 xv[TT];
    for (int t = 0; t < TT; ++t) {
      alignas(32) float buf[kLanes] = {};
      std::memcpy(buf, x[t] + tile.chunks * kLanes, sizeof(float) * tile.rem);
      xv[t] = _mm256_load_ps(buf);
    }
    for (int r = 0; r < RR; ++r) {
      const __m256 w = LoadPartial<kE>(tile.tail[r], tile.rem);
      for (int t = 0; t < TT; ++t) acc[t * RR + r] = _mm256_fmadd_ps(w, xv[t], acc[t * RR + r]);
    }
  }
  constexpr int kCount = TT * RR;
  constexpr int kPadded = (kCount + 7) / 8 * 8;
  alignas(32) float out[kPadded];
  for (int i = 0; i < kPadded; i += 8) {
    __m256 v[8];
    for (int j = 0; j < 8; ++j) v[j] = i + j < kCount ? acc[i + j] : _mm256_setzero_ps();
    _mm256_store_ps(out + i, Reduce8(v));
  }
  for (int t = 0; t < TT; ++t) {
    float* y = a.y + (t0 + t) * a.w.rows + row;
    for (int r = 0; r < tile.rows; ++r) y[r] = out[t * RR + r];
  }
}

// F32 weights: the products and sums in double, as in the AVX-512 file
// (matmul_avx512_float.cc says why). 4 double lanes per ymm.
template <int TT, int RR>
void MicroF64(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
  const int64_t k = a.w.cols;
  const float* x[TT];
  __m256d acc[TT * RR];
  for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
  for (int i = 0; i < TT * RR; ++i) acc[i] = _mm256_setzero_pd();
  const auto step = [&](const float* const* xp, const uint8_t* const* wp) {
    __m256d xl[TT], xh[TT];
    for (int t = 0; t < TT; ++t) {
      xl[t] = _mm256_cvtps_pd(_mm_loadu_ps(xp[t]));
      xh[t] = _mm256_cvtps_pd(_mm_loadu_ps(xp[t] + 4));
    }
    for (int r = 0; r < RR; ++r) {
      const float* w = reinterpret_cast<const float*>(wp[r]);
      const __m256d wl = _mm256_cvtps_pd(_mm_loadu_ps(w));
      const __m256d wh = _mm256_cvtps_pd(_mm_loadu_ps(w + 4));
      for (int t = 0; t < TT; ++t) {
        acc[t * RR + r] = _mm256_fmadd_pd(wl, xl[t], acc[t * RR + r]);
        acc[t * RR + r] = _mm256_fmadd_pd(wh, xh[t], acc[t * RR + r]);
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
    alignas(32) float xbuf[TT][kLanes] = {};
    alignas(32) float wbuf[RR][kLanes] = {};
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
    for (int r = 0; r < tile.rows; ++r) {
      const __m256d v = acc[t * RR + r];
      const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
      y[r] = static_cast<float>(_mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2))));
    }
  }
}

template <E kE, int TT, int RR>
void Tokens(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t t1, int64_t row) {
  int64_t t = t0;
  if constexpr (kE == E::kF32) {
    // 2 tokens x 4 rows keeps the double accumulators and operands in 16 ymm.
    constexpr int kTT = TT < 2 ? TT : 2;
    for (; t + kTT <= t1; t += kTT) MicroF64<kTT, RR>(tile, a, t, row);
    for (; t < t1; ++t) MicroF64<1, RR>(tile, a, t, row);
  } else {
    for (; t + TT <= t1; t += TT) Micro<kE, TT, RR>(tile, a, t, row);
    for (; t < t1; ++t) Micro<kE, 1, RR>(tile, a, t, row);
  }
}

// 8 rows of a BF16 K-pair group (group element offset `sub` = 16 * s for
// sub-block s) for tokens [t0, t0 + TT).
template <int TT>
void KPairMicro(const uint8_t* group, int64_t g, int64_t sub, const MatmulArgs& a, int64_t t0,
                int64_t row) {
  const int64_t k = a.w.cols;
  const int64_t pairs = k / 2;
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u));
  const float* x[TT];
  __m256 even[TT], odd[TT];
  for (int t = 0; t < TT; ++t) {
    x[t] = a.x + (t0 + t) * k;
    even[t] = _mm256_setzero_ps();
    odd[t] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    const __m256i v =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group + 2 * (p * 2 * g + sub)));
    const __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    const __m256 w1 = _mm256_castsi256_ps(_mm256_and_si256(v, high));
    for (int t = 0; t < TT; ++t) {
      even[t] = _mm256_fmadd_ps(w0, _mm256_broadcast_ss(x[t] + 2 * p), even[t]);
      odd[t] = _mm256_fmadd_ps(w1, _mm256_broadcast_ss(x[t] + 2 * p + 1), odd[t]);
    }
  }
  if (k % 2 != 0) {  // the last column, stored [G][1] after the pairs
    const __m256 w = Load8<E::kBF16>(group + 2 * (pairs * 2 * g + sub / 2));
    for (int t = 0; t < TT; ++t) {
      even[t] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x[t] + k - 1), even[t]);
    }
  }
  for (int t = 0; t < TT; ++t) {
    _mm256_storeu_ps(a.y + (t0 + t) * a.w.rows + row, _mm256_add_ps(even[t], odd[t]));
  }
}

struct Kernel {
  static constexpr int kLanes = ::relayout::kernels::matmul_internal::kLanes;
  static constexpr int kGemvRows = 8;
  static constexpr int kGemmTokens = 3;
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

void Avx2FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  WalkFloatRowsByType<Kernel>(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif  // x86-64
