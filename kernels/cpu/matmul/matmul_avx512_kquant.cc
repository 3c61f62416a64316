// AVX-512 K-quant kernels: for a few tokens, matmul_kquant_simd.h built with
// AVX-512BW (512-bit dots over pairs of chunks); for prefill, a VNNI GEMM over
// row panels unpacked once per call. Activations are quantized to Q8_K by the
// AVX2 quantizer (the same bits on every ISA).
//
// The GEMM. The tile kernel of matmul_kquant_simd.h keeps one row per lane
// only after a horizontal sum of each (row, token) dot, and re-unpacks every
// super-block for every token block. Here a panel of rows is unpacked once
// into the form vpdpbusd wants, 16 rows interleaved in 4-byte groups:
//
//   u[b][g] (g = 0..63): one 512-bit vector, lane r = elements 4g..4g+3 of
//                        row r's super-block b (unsigned, 0..63)
//   sc[b][s]:            16 int32, lane r = row r's scale of sub-block s
//                        (32 elements for Q4_K/Q5_K, 16 for the others)
//   m[b][p] (p = 0..7):  16 int32, lane r = row r's min terms m_2p, m_2p+1
//                        as two int16 (per 16 elements, as in step 2K)
//   dw[b], mw[b]:        16 floats, the rows' d and dmin
//
// so a token's 4 activations, broadcast, meet 16 rows in one vpdpbusd and
// every accumulator holds one row per lane with no horizontal sum. For a
// register tile of 8 tokens, per sub-block: the dots of the sub-block's
// groups into one int32 vector per token, then isum += sub * sc (vpmulld);
// msum is 8 vpdpwssd of the m pairs with the token's bsum pairs. Integer all
// the way to isum and msum, then the float steps of 2K lane per row in the
// scalar loop's order: bit for bit the scalar result, like every kernel here.
//
// Loop order: row panels (unpacked size about half of L2), then token blocks
// (their Q8_K activations in L2), then 16-row tiles, then 8-token register
// tiles, then super-blocks. The panel is unpacked once per call and serves
// every token.
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/matmul/matmul_kquant_simd.h"

namespace relayout::kernels::matmul_internal {
namespace {

constexpr int kGemmRows = 16;
constexpr int kGemmTokens = 8;
// From this many tokens the GEMM's one-time unpacking pays for itself.
constexpr int64_t kGemmMinTokens = 8;
// Unpacked panel bytes: about half of a 2 MiB L2, beside a token block.
constexpr int64_t kGemmPanelBytes = 1 << 20;
// Q8_K activations of one token block.
constexpr int64_t kGemmTokenBlockBytes = 256 << 10;

template <WeightType kT>
constexpr int KSubElemsOf() {
  return kT == WeightType::kQ4_K || kT == WeightType::kQ5_K ? 32 : 16;
}

// Bytes of one 16-row tile's unpacked super-block.
template <WeightType kT>
constexpr int64_t KTileBlockBytes() {
  return 64 * 64 + (kKBlock / KSubElemsOf<kT>()) * 64 + 8 * 64 + 2 * 64;
}

template <WeightType kT>
struct KTileBlock {
  static constexpr int kSubs = kKBlock / KSubElemsOf<kT>();
  alignas(64) uint8_t u[64][64];
  alignas(64) int32_t sc[kSubs][kGemmRows];
  alignas(64) int32_t m[8][kGemmRows];
  alignas(64) float dw[kGemmRows];
  alignas(64) float mw[kGemmRows];
};
static_assert(sizeof(KTileBlock<WeightType::kQ6_K>) == KTileBlockBytes<WeightType::kQ6_K>());
static_assert(sizeof(KTileBlock<WeightType::kQ4_K>) == KTileBlockBytes<WeightType::kQ4_K>());

// Unpacks rows [row, row + 16) (rows past row_end repeat a valid row, to be
// computed and discarded) into blocks[0 .. K / 256).
template <WeightType kT>
void KUnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, KTileBlock<kT>* blocks) {
  const uint8_t* rows[kGemmRows];
  int64_t stride[kGemmRows];
  for (int r = 0; r < kGemmRows;) {
    QuantTile tile;
    const int64_t n = row + r < row_end ? row + r : row;
    const int got = MakeQuantTile(w, n, row_end, kGemmRows - r, &tile);
    for (int i = 0; i < got && r < kGemmRows; ++i, ++r) {
      rows[r] = tile.payload[i];
      stride[r] = tile.block_stride;
    }
  }
  const int64_t nblocks = w.cols / kKBlock;
  constexpr int kSubs = KTileBlock<kT>::kSubs;
  constexpr int kPer = KSubElemsOf<kT>() / 16;  // 16-element scales per sub-block
  for (int64_t b = 0; b < nblocks; ++b) {
    KTileBlock<kT>& out = blocks[b];
    alignas(64) uint8_t u[kGemmRows][kKBlock];
    for (int r = 0; r < kGemmRows; ++r) {
      KBlockSimd kb;
      KUnpack<kT>(rows[r] + b * stride[r], &kb);
      for (int c = 0; c < 8; ++c) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u[r] + 32 * c), kb.u[c]);
      }
      alignas(32) int16_t sc[16];
      alignas(32) int32_t m[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sc), kb.sc);
      _mm256_store_si256(reinterpret_cast<__m256i*>(m), kb.m);
      for (int s = 0; s < kSubs; ++s) out.sc[s][r] = sc[s * kPer];
      for (int p = 0; p < 8; ++p) out.m[p][r] = m[p];
      out.dw[r] = kb.dw;
      out.mw[r] = kb.mw;
    }
    // 16 x 64 dwords to 64 x 16: four 16 x 16 transposes.
    for (int q = 0; q < 4; ++q) {
      __m512i v[16];
      for (int r = 0; r < 16; ++r) v[r] = _mm512_load_si512(u[r] + 64 * q);
      __m512i t[16];
      for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
      }
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 2; ++j) {
          v[4 * i + j] = _mm512_unpacklo_epi64(t[4 * i + j], t[4 * i + 2 + j]);
          v[4 * i + 2 + j] = _mm512_unpackhi_epi64(t[4 * i + j], t[4 * i + 2 + j]);
        }
      }
      // Now within each 128-bit lane L of v[4i + c]: dword c' of rows
      // 4i..4i+3 for column 4L + c with c = (c' order) below; gather lanes.
      for (int i = 0; i < 4; ++i) {
        for (int c = 0; c < 4; ++c) t[4 * i + c] = v[4 * i + (c == 1 ? 2 : c == 2 ? 1 : c)];
      }
      // t[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c.
      for (int c = 0; c < 4; ++c) {
        const __m512i a01 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0x44);  // L0,L1 | L0,L1
        const __m512i a23 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0xee);  // L2,L3 | L2,L3
        const __m512i b01 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0x44);
        const __m512i b23 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0xee);
        // Column 4L + c: lane L of each of t[c], t[4+c], t[8+c], t[12+c].
        const __m512i col0 = _mm512_shuffle_i32x4(a01, b01, 0x88);
        const __m512i col1 = _mm512_shuffle_i32x4(a01, b01, 0xdd);
        const __m512i col2 = _mm512_shuffle_i32x4(a23, b23, 0x88);
        const __m512i col3 = _mm512_shuffle_i32x4(a23, b23, 0xdd);
        _mm512_store_si512(out.u[16 * q + c], col0);
        _mm512_store_si512(out.u[16 * q + 4 + c], col1);
        _mm512_store_si512(out.u[16 * q + 8 + c], col2);
        _mm512_store_si512(out.u[16 * q + 12 + c], col3);
      }
    }
  }
}

inline __m512i KBroadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// y for 8 tokens (q[t], d[t], bsum[t] of token t; ids past the real ones
// repeat one) and the 16 rows of one unpacked tile.
template <WeightType kT>
void KGemmTile(const KTileBlock<kT>* blocks, int64_t nblocks, const int8_t* const* q,
               const float* const* d, const int16_t* const* bsum, __m512* y) {
  constexpr int kT8 = kGemmTokens;
  constexpr int kSubs = KTileBlock<kT>::kSubs;
  constexpr int kGroups = KSubElemsOf<kT>() / 4;
  __m512 acc[kT8];
  __m512 accm[kT8];
  for (int t = 0; t < kT8; ++t) acc[t] = accm[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nblocks; ++b) {
    const KTileBlock<kT>& kb = blocks[b];
    __m512i isum[kT8];
    for (int t = 0; t < kT8; ++t) isum[t] = _mm512_setzero_si512();
    for (int s = 0; s < kSubs; ++s) {
      __m512i sub[kT8];
      for (int t = 0; t < kT8; ++t) sub[t] = _mm512_setzero_si512();
      for (int g = s * kGroups; g < (s + 1) * kGroups; ++g) {
        const __m512i wv = _mm512_load_si512(kb.u[g]);
        for (int t = 0; t < kT8; ++t) {
          sub[t] = _mm512_dpbusd_epi32(sub[t], wv, KBroadcast4(q[t] + b * kKBlock + 4 * g));
        }
      }
      const __m512i scv = _mm512_load_si512(kb.sc[s]);
      for (int t = 0; t < kT8; ++t)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sub[t], scv));
    }
    __m512i msum[kT8];
    for (int t = 0; t < kT8; ++t) msum[t] = _mm512_setzero_si512();
    for (int p = 0; p < 8; ++p) {
      const __m512i mv = _mm512_load_si512(kb.m[p]);
      for (int t = 0; t < kT8; ++t) {
        msum[t] = _mm512_dpwssd_epi32(msum[t], mv, KBroadcast4(bsum[t] + b * 16 + 2 * p));
      }
    }
    const __m512 dw = _mm512_load_ps(kb.dw);
    for (int t = 0; t < kT8; ++t) {
      const __m512 dt = _mm512_set1_ps(d[t][b]);
      if constexpr (KHasMinOf<kT>()) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, dt), acc[t]);
        accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[t]),
                                  _mm512_mul_ps(_mm512_load_ps(kb.mw), dt), accm[t]);
      } else {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], msum[t])),
                                 _mm512_mul_ps(dw, dt), acc[t]);
      }
    }
  }
  for (int t = 0; t < kT8; ++t) y[t] = KHasMinOf<kT>() ? _mm512_sub_ps(acc[t], accm[t]) : acc[t];
}

template <WeightType kT>
void KQuantGemm(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t k = a.w.cols;
  const int64_t nblocks = k / kKBlock;
  const int64_t tile_bytes = nblocks * KTileBlockBytes<kT>();
  const int64_t panel_tiles = std::max<int64_t>(1, kGemmPanelBytes / tile_bytes);
  const int64_t token_bytes = k + nblocks * 4 + (k / kKSub) * 2;
  const int64_t token_block = std::max<int64_t>(
      kGemmTokens, kGemmTokenBlockBytes / token_bytes / kGemmTokens * kGemmTokens);
  // ThreadPanel's floats, aligned up to the 64 bytes the tile blocks need.
  const uintptr_t raw = reinterpret_cast<uintptr_t>(
      ThreadPanel((panel_tiles * tile_bytes + 64) / static_cast<int64_t>(sizeof(float))));
  auto* panel = reinterpret_cast<KTileBlock<kT>*>((raw + 63) & ~uintptr_t{63});
  for (int64_t p0 = row_begin; p0 < row_end; p0 += panel_tiles * kGemmRows) {
    const int64_t p1 = std::min(row_end, p0 + panel_tiles * kGemmRows);
    const int64_t tiles = (p1 - p0 + kGemmRows - 1) / kGemmRows;
    for (int64_t i = 0; i < tiles; ++i) {
      KUnpackTile<kT>(a.w, p0 + i * kGemmRows, p1, panel + i * nblocks);
    }
    for (int64_t t0 = 0; t0 < a.tokens; t0 += token_block) {
      const int64_t t1 = std::min(a.tokens, t0 + token_block);
      for (int64_t i = 0; i < tiles; ++i) {
        const int64_t n = p0 + i * kGemmRows;
        const int rows = static_cast<int>(std::min<int64_t>(kGemmRows, p1 - n));
        for (int64_t tc = t0; tc < t1; tc += kGemmTokens) {
          const int8_t* q[kGemmTokens];
          const float* d[kGemmTokens];
          const int16_t* bs[kGemmTokens];
          const int nt = static_cast<int>(std::min<int64_t>(kGemmTokens, t1 - tc));
          for (int t = 0; t < kGemmTokens; ++t) {
            const int64_t id = tc + (t < nt ? t : 0);
            q[t] = a.xk.q + id * k;
            d[t] = a.xk.d + id * nblocks;
            bs[t] = a.xk.bsum + id * (k / kKSub);
          }
          __m512 y[kGemmTokens];
          KGemmTile<kT>(panel + i * nblocks, nblocks, q, d, bs, y);
          const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
          for (int t = 0; t < nt; ++t)
            _mm512_mask_storeu_ps(a.y + (tc + t) * a.w.rows + n, mask, y[t]);
        }
      }
    }
  }
}

void KQuantGemmByType(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.w.type) {
    case WeightType::kQ2_K:
      return KQuantGemm<WeightType::kQ2_K>(a, row_begin, row_end);
    case WeightType::kQ3_K:
      return KQuantGemm<WeightType::kQ3_K>(a, row_begin, row_end);
    case WeightType::kQ4_K:
      return KQuantGemm<WeightType::kQ4_K>(a, row_begin, row_end);
    case WeightType::kQ5_K:
      return KQuantGemm<WeightType::kQ5_K>(a, row_begin, row_end);
    default:
      return KQuantGemm<WeightType::kQ6_K>(a, row_begin, row_end);
  }
}

}  // namespace

void Avx512KQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  if (a.tokens >= kGemmMinTokens) return KQuantGemmByType(a, row_begin, row_end);
  KQuantRowsByType(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif
