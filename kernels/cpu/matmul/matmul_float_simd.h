// The float-weight matmul kernels (F32, F16, BF16) written once over a
// vector-traits type, for the AVX2 and AVX-512 files that include it with
// their -m flags (matmul_avx2_float.cc, matmul_avx512_float.cc). The walk
// over rows, groups and token blocks is matmul_float_rows.h's; this is what
// runs inside one tile. A traits type V gives:
//
//   V::kLanes, V::Reg          floats per register, the register type
//   V::kGemvRows, V::kGemmTokens, V::kF64Tokens
//                              the register tile sizes (rows of a GEMV tile,
//                              tokens of a GEMM tile, tokens of the F32
//                              double-precision tile)
//   Zero(), Load(p), Store(p, r), Add(a, b), Fmadd(a, b, c), Broadcast(p)
//   LoadPartial(p, n)          the first n < kLanes floats, the rest zero,
//                              reading only those n
//   LoadW<kE>(p), LoadWPartial<kE>(p, n)
//                              kLanes (or n) weights of kind kE as floats
//   Reduce8(v, out)            out[i] = the horizontal sum of v[i], i < 8
//   Bf16Pairs(p, &w0, &w1)     one load of kLanes rows x 2 columns of a BF16
//                              K-pair group: the even and odd columns
//   V::DReg, DZero(), DWiden(p), DFmadd(a, b, c), DSum(d)
//                              double registers of kLanes / 2 lanes: kLanes
//                              / 2 floats widened, and a sum to a double
//
// Row-major and rowgroup-g<G>k<lanes>: lanes run along K. A register tile of
// TT tokens x RR rows keeps TT * RR accumulators, loads each weight vector
// once for TT tokens and each x vector once for RR rows, and reduces the
// accumulators horizontally once per tile (8 at a time). BF16 K-pair (G a
// multiple of kLanes): lanes run along rows, no reduction at all.
//
// F32 weights: the products and sums in double. A float x float product is
// exact in double, so an F32 matmul is accurate to double rounding whatever
// its summation order: this is what lets an F32 checkpoint's logits match a
// float reference implementation to 1e-4 (a float SIMD order would add its
// own 1e-4-sized error to the reference's). Half the FMA width of Micro;
// F32 weights are the accuracy path, the half and quantized types the fast
// one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul/matmul_float_rows.h"
#include "kernels/cpu/matmul/matmul_internal.h"

namespace relayout::kernels::matmul_internal {
namespace {

template <typename V>
struct FloatSimd {
  using E = FloatKind;
  using Reg = typename V::Reg;
  using DReg = typename V::DReg;
  static constexpr int kLanes = V::kLanes;
  static constexpr int kGemvRows = V::kGemvRows;
  static constexpr int kGemmTokens = V::kGemmTokens;

  // y for tokens [t0, t0 + TT) x the tile's rows; x rows have stride K.
  template <E kE, int TT, int RR>
  static void Micro(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
    const int64_t k = a.w.cols;
    const float* x[TT];
    Reg acc[TT * RR];
    for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
    for (int i = 0; i < TT * RR; ++i) acc[i] = V::Zero();
    // A row group's chunk is one run of RR rows: fetched kPrefetchAheadBytes
    // ahead, one prefetch per line (decode reads every weight from DRAM once).
    constexpr int kElemBytes = kE == E::kF32 ? 4 : 2;
    constexpr int kRowsPerLine = std::max(1, 64 / (kLanes * kElemBytes));
    for (int64_t c = 0; c < tile.chunks; ++c) {
      Reg xv[TT];
      for (int t = 0; t < TT; ++t) xv[t] = V::Load(x[t] + c * kLanes);
      for (int r = 0; r < RR; ++r) {
        if (r % kRowsPerLine == 0) {
          __builtin_prefetch(tile.main[r] + c * tile.chunk_stride + kPrefetchAheadBytes, 0, 3);
        }
        const Reg w = V::template LoadW<kE>(tile.main[r] + c * tile.chunk_stride);
        for (int t = 0; t < TT; ++t) acc[t * RR + r] = V::Fmadd(w, xv[t], acc[t * RR + r]);
      }
    }
    if (tile.rem != 0) {
      Reg xv[TT];
      for (int t = 0; t < TT; ++t) xv[t] = V::LoadPartial(x[t] + tile.chunks * kLanes, tile.rem);
      for (int r = 0; r < RR; ++r) {
        const Reg w = V::template LoadWPartial<kE>(tile.tail[r], tile.rem);
        for (int t = 0; t < TT; ++t) acc[t * RR + r] = V::Fmadd(w, xv[t], acc[t * RR + r]);
      }
    }
    constexpr int kCount = TT * RR;
    constexpr int kPadded = (kCount + 7) / 8 * 8;
    alignas(32) float out[kPadded];
    for (int i = 0; i < kPadded; i += 8) {
      Reg v[8];
      for (int j = 0; j < 8; ++j) v[j] = i + j < kCount ? acc[i + j] : V::Zero();
      V::Reduce8(v, out + i);
    }
    for (int t = 0; t < TT; ++t) {
      float* y = a.y + (t0 + t) * a.w.rows + row;
      for (int r = 0; r < tile.rows; ++r) y[r] = out[t * RR + r];
    }
  }

  template <int TT, int RR>
  static void MicroF64(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t row) {
    constexpr int kHalf = kLanes / 2;
    const int64_t k = a.w.cols;
    const float* x[TT];
    DReg acc[TT * RR];
    for (int t = 0; t < TT; ++t) x[t] = a.x + (t0 + t) * k;
    for (int i = 0; i < TT * RR; ++i) acc[i] = V::DZero();
    const auto step = [&](const float* const* xp, const uint8_t* const* wp) {
      DReg xl[TT], xh[TT];
      for (int t = 0; t < TT; ++t) {
        xl[t] = V::DWiden(xp[t]);
        xh[t] = V::DWiden(xp[t] + kHalf);
      }
      for (int r = 0; r < RR; ++r) {
        const float* w = reinterpret_cast<const float*>(wp[r]);
        const DReg wl = V::DWiden(w);
        const DReg wh = V::DWiden(w + kHalf);
        for (int t = 0; t < TT; ++t) {
          acc[t * RR + r] = V::DFmadd(wl, xl[t], acc[t * RR + r]);
          acc[t * RR + r] = V::DFmadd(wh, xh[t], acc[t * RR + r]);
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
      for (int r = 0; r < tile.rows; ++r) y[r] = static_cast<float>(V::DSum(acc[t * RR + r]));
    }
  }

  template <E kE, int TT, int RR>
  static void Tokens(const FloatTile& tile, const MatmulArgs& a, int64_t t0, int64_t t1,
                     int64_t row) {
    int64_t t = t0;
    if constexpr (kE == E::kF32) {
      // The double accumulators and operands must stay in registers.
      constexpr int kTT = TT < V::kF64Tokens ? TT : V::kF64Tokens;
      for (; t + kTT <= t1; t += kTT) MicroF64<kTT, RR>(tile, a, t, row);
      for (; t < t1; ++t) MicroF64<1, RR>(tile, a, t, row);
    } else {
      for (; t + TT <= t1; t += TT) Micro<kE, TT, RR>(tile, a, t, row);
      for (; t < t1; ++t) Micro<kE, 1, RR>(tile, a, t, row);
    }
  }

  // kLanes rows of a BF16 K-pair group (group element offset `sub`) for
  // tokens [t0, t0 + TT).
  template <int TT>
  static void KPairMicro(const uint8_t* group, int64_t g, int64_t sub, const MatmulArgs& a,
                         int64_t t0, int64_t row) {
    const int64_t k = a.w.cols;
    const int64_t pairs = k / 2;
    const float* x[TT];
    Reg even[TT], odd[TT];
    for (int t = 0; t < TT; ++t) {
      x[t] = a.x + (t0 + t) * k;
      even[t] = V::Zero();
      odd[t] = V::Zero();
    }
    for (int64_t p = 0; p < pairs; ++p) {
      Reg w0, w1;
      V::Bf16Pairs(group + 2 * (p * 2 * g + sub), &w0, &w1);
      for (int t = 0; t < TT; ++t) {
        even[t] = V::Fmadd(w0, V::Broadcast(x[t] + 2 * p), even[t]);
        odd[t] = V::Fmadd(w1, V::Broadcast(x[t] + 2 * p + 1), odd[t]);
      }
    }
    if (k % 2 != 0) {  // the last column, stored [G][1] after the pairs
      const Reg w = V::template LoadW<E::kBF16>(group + 2 * (pairs * 2 * g + sub / 2));
      for (int t = 0; t < TT; ++t) even[t] = V::Fmadd(w, V::Broadcast(x[t] + k - 1), even[t]);
    }
    for (int t = 0; t < TT; ++t) {
      V::Store(a.y + (t0 + t) * a.w.rows + row, V::Add(even[t], odd[t]));
    }
  }

  static void Rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
    WalkFloatRowsByType<FloatSimd>(a, row_begin, row_end);
  }
};

}  // namespace
}  // namespace relayout::kernels::matmul_internal
