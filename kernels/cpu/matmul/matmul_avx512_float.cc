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
#include "kernels/cpu/matmul/matmul_vnni_gemm.h"

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

namespace {

// ---- The float GEMM, from kFloatGemmMinTokens tokens (F16 and BF16; F32
// keeps its double sums, matmul.h's accuracy path).
//
// A panel of rows is widened to F32 once per call, 16 rows interleaved per
// element (one vector = element j of 16 rows; matmul_vnni_gemm.h's panel
// sizes), and x comes packed in groups of kFloatGemmTokens tokens
// (FloatPackedActivations). The register tile is 32 rows x 12 tokens: per
// element j, two weight vectors and 12 broadcasts of x[j] feed 24 FMAs into
// 24 accumulators, so loads (14) stay under the FMA issue slots (24 FMAs at
// two per cycle) and the FMA units, not the loads, set the pace. The 16 x 8
// tile before it did 9 loads per 8 FMAs and ran at about a third of the FMA
// peak.
//
// F16 and BF16 widen exactly, so the products are exact and each sum runs
// over j ascending from 0 in one float accumulator per row and token: the
// bits do not depend on the tile shape, the token group or the thread count.
// Layouts: those FloatTile reads in chunks of 16 (row-major and
// rowgroup-g<G>k16) and bf16-kpair-g16 (two elements per row in each 4-byte
// lane: shifted apart); others keep the per-row kernels.
struct FloatTileBlock {
  alignas(64) float p[16][kGemmRows];
};

// Rows [row, row + 16) are one full group of bf16-kpair-g16.
bool IsBf16KPairGroup16(const MatmulWeight& w, int64_t row, int64_t row_end) {
  return w.layout == WeightLayout::kBf16KPair && w.group_rows == kGemmRows &&
         row % kGemmRows == 0 && row + kGemmRows <= row_end && InFullGroup(w, row);
}

// The GEMM reads this weight's layout: FloatTiles of 16 lanes, or
// bf16-kpair-g16 (whose tail rows are row-major, which FloatTile reads).
bool FloatGemmReads(const MatmulWeight& w) {
  if (w.type == WeightType::kF32) return false;  // F32 sums in double (matmul.h)
  if (w.layout == WeightLayout::kBf16KPair) return w.group_rows == kGemmRows;
  return FloatTileable(w, 16);
}

// 16 F16 or BF16 elements of a row, widened exactly to F32.
__m512 WidenChunk(WeightType type, const uint8_t* src) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
  return type == WeightType::kF16
             ? _mm512_cvtph_ps(h)
             : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Rows [row, row + 16) through FloatTiles of 16 lanes (row-major and
// rowgroup-g<G>k16: chunk b of a row is its elements 16b..16b+15).
void FloatUnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, FloatTileBlock* blocks) {
  if (IsBf16KPairGroup16(w, row, row_end)) {
    // bf16-kpair-g16: pair q of the group's 16 rows is one 64-byte vector of
    // (element 2q, element 2q + 1) per row: shift out the two halves.
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + row * w.cols * 2;
    for (int64_t b = 0; b < w.cols / 16; ++b) {
      for (int q = 0; q < 8; ++q) {
        const __m512i v = _mm512_loadu_si512(group + (8 * b + q) * 64);
        _mm512_store_si512(blocks[b].p[2 * q], _mm512_slli_epi32(v, 16));
        _mm512_store_si512(blocks[b].p[2 * q + 1],
                           _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
      }
    }
    return;
  }
  const uint8_t* main[kGemmRows];
  int64_t stride[kGemmRows];  // a group's rows and the tail rows differ
  for (int r = 0; r < kGemmRows;) {
    FloatTile tile;
    const int64_t n = row + r < row_end ? row + r : row;
    const int got = MakeFloatTile(w, 16, n, row_end, kGemmRows - r, &tile);
    for (int i = 0; i < got && r < kGemmRows; ++i, ++r) {
      main[r] = tile.main[i];
      stride[r] = tile.chunk_stride;
    }
  }
  for (int64_t b = 0; b < w.cols / 16; ++b) {
    alignas(64) float packed[kGemmRows][16];
    for (int r = 0; r < kGemmRows; ++r) {
      _mm512_store_ps(packed[r], WidenChunk(w.type, main[r] + b * stride[r]));
    }
    Transpose16x16Dwords(reinterpret_cast<const uint8_t*>(packed[0]), 64,
                         reinterpret_cast<uint8_t*>(blocks[b].p[0]));
  }
}

constexpr int kFT = kFloatGemmTokens;

// Rows [n, n + 16R) of the R tiles at w (tile r's element j at w + r *
// tile_floats + 16 j) with the nt tokens of the group xg: row n + i of token
// t to y[t * ldy + i] for i < rows (the rows past it are computed and
// dropped).
template <int R>
void FloatGemmMicro(const float* w, int64_t tile_floats, int64_t k, const float* xg, int nt,
                    int rows, float* y, int64_t ldy) {
  // Fully unrolled with constant indices, so that the 12R accumulators live
  // in registers.
  __m512 acc[R * kFT];
#pragma GCC unroll 24
  for (int i = 0; i < R * kFT; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < k; ++j) {
    __m512 wv[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) wv[r] = _mm512_load_ps(w + r * tile_floats + j * kGemmRows);
    const float* xj = xg + j * kFT;
#pragma GCC unroll 12
    for (int t = 0; t < kFT; ++t) {
      const __m512 xb = _mm512_set1_ps(xj[t]);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) acc[r * kFT + t] = _mm512_fmadd_ps(wv[r], xb, acc[r * kFT + t]);
    }
  }
#pragma GCC unroll 24
  for (int i = 0; i < R * kFT; ++i) {
    const int r = i / kFT;
    const int t = i % kFT;
    const auto mask = static_cast<__mmask16>((1u << std::min(kGemmRows, rows - r * kGemmRows)) - 1);
    if (t < nt) _mm512_mask_storeu_ps(y + t * ldy + r * kGemmRows, mask, acc[i]);
  }
}

void FloatGemm(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t k = a.w.cols;
  const int64_t nblocks = k / 16;
  const int64_t tile_floats = k * kGemmRows;
  // An even number of tiles per panel, so that pairs never straddle panels.
  const int64_t panel_tiles = std::max<int64_t>(2, kGemmPanelBytes / (tile_floats * 4) / 2 * 2);
  const uintptr_t raw = reinterpret_cast<uintptr_t>(ThreadPanel(panel_tiles * tile_floats + 16));
  auto* panel = reinterpret_cast<FloatTileBlock*>((raw + 63) & ~uintptr_t{63});
  const int64_t groups = (a.tokens + kFT - 1) / kFT;
  for (int64_t p0 = row_begin; p0 < row_end; p0 += panel_tiles * kGemmRows) {
    const int64_t p1 = std::min(row_end, p0 + panel_tiles * kGemmRows);
    const int64_t tiles = (p1 - p0 + kGemmRows - 1) / kGemmRows;
    for (int64_t i = 0; i < tiles; ++i) {
      FloatUnpackTile(a.w, p0 + i * kGemmRows, p1, panel + i * nblocks);
    }
    // A tile pair meets every token group while its weights are in L2;
    // the groups stream from L3 (measured faster than the converse order and
    // than K-blocking the pair into L1, which added the accumulators' trips
    // through y).
    for (int64_t i = 0; i < tiles; i += 2) {
      const int64_t n = p0 + i * kGemmRows;
      const int rows = static_cast<int>(std::min<int64_t>(2 * kGemmRows, p1 - n));
      const float* w = panel[i * nblocks].p[0];
      for (int64_t g = 0; g < groups; ++g) {
        const float* xg = a.xp.x + g * k * kFT;
        const int nt = static_cast<int>(std::min<int64_t>(kFT, a.tokens - g * kFT));
        float* y = a.y + g * kFT * a.w.rows + n;
        if (rows > kGemmRows) {
          FloatGemmMicro<2>(w, tile_floats, k, xg, nt, rows, y, a.w.rows);
        } else {
          FloatGemmMicro<1>(w, tile_floats, k, xg, nt, rows, y, a.w.rows);
        }
      }
    }
  }
}

}  // namespace

void Avx512FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  if (a.xp.x != nullptr && a.tokens >= kFloatGemmMinTokens && a.w.cols % 16 == 0 &&
      FloatGemmReads(a.w)) {
    return FloatGemm(a, row_begin, row_end);
  }
  FloatSimd<Avx512Float>::Rows(a, row_begin, row_end);
}

void Avx512PackFloat(const float* x, int64_t k, int tokens, float* out) {
  for (int64_t j = 0; j < k; ++j) {
    for (int t = 0; t < kFT; ++t) out[j * kFT + t] = t < tokens ? x[t * k + j] : 0.0f;
  }
}

}  // namespace relayout::kernels::matmul_internal

#endif  // x86-64
