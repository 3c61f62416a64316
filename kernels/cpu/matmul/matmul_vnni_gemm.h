// The VNNI GEMM driver shared by the AVX-512 quantized kernels (the K-quants
// in matmul_avx512_kquant.cc, the 32-element block types in
// matmul_avx512_quant.cc), each of which includes it once inside its own ISA
// flags; internal linkage throughout (matmul_internal.h says why).
//
// A panel of rows is unpacked once per call into the form vpdpbusd wants,
// 16 rows interleaved in 4-byte groups: one 512-bit vector holds elements
// 4g..4g+3 of 16 rows (unsigned), so a token's 4 activations, broadcast,
// meet 16 rows in one instruction and every accumulator holds one row per
// lane: no horizontal sums, and the float steps run lane per row in the
// scalar loop's order (bit for bit the scalar result).
//
// Loop order: row panels (unpacked size about half of L2), then token blocks
// (their activations in L2), then 16-row tiles, then 8-token register tiles,
// then the blocks along K. The panel is unpacked once per call and serves
// every token, so the GEMM pays from some number of tokens on, per type
// (below it the per-row kernels, which read each weight once, are faster).
//
// A format F gives:
//   F::Block                one 16-row tile's unpacked block (64-byte aligned)
//   F::kElems               elements per block along K
//   F::TokenBytes(k)        activation bytes per token (for the token block)
//   F::UnpackTile(w, row, row_end, blocks)   rows [row, row + 16) into
//                           blocks[0 .. K / kElems); rows past row_end repeat
//                           a valid row (computed, then discarded)
//   F::Tile(a, blocks, nblocks, ids, y)      y[t] = the 16 rows' outputs for
//                           token ids[t], t < kGemmTokens
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul/matmul_internal.h"

namespace relayout::kernels::matmul_internal {
namespace {

constexpr int kGemmRows = 16;
constexpr int kGemmTokens = 8;
// From this many tokens the one-time unpacking of a K-quant pays for itself
// (their per-row kernels are slower than the 32-element types', which start
// the GEMM later: kQuantGemmMinTokens).
constexpr int64_t kGemmMinTokens = 8;
// Unpacked panel bytes: about half of a 2 MiB L2, beside a token block.
constexpr int64_t kGemmPanelBytes = 1 << 20;
constexpr int64_t kGemmTokenBlockBytes = 256 << 10;

inline __m512i Broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// Where the blocks of rows [row, row + 16) of a quantized weight lie, in any
// layout (QuantTile's fields, per row); rows at or past row_end repeat `row`.
struct GemmRows {
  const uint8_t* payload[kGemmRows];
  const uint8_t* scale[kGemmRows];
  const uint8_t* min[kGemmRows];
  const uint8_t* qh[kGemmRows];
  int64_t stride[kGemmRows];
  int64_t qh_hi_offset[kGemmRows];
};

inline void GemmRowPointers(const MatmulWeight& w, int64_t row, int64_t row_end, GemmRows* out) {
  for (int r = 0; r < kGemmRows;) {
    QuantTile tile;
    const int64_t n = row + r < row_end ? row + r : row;
    const int got = MakeQuantTile(w, n, row_end, kGemmRows - r, &tile);
    for (int i = 0; i < got && r < kGemmRows; ++i, ++r) {
      out->payload[r] = tile.payload[i];
      out->scale[r] = tile.scale[i];
      out->min[r] = tile.min[i];
      out->qh[r] = tile.qh[i];
      out->stride[r] = tile.block_stride;
      out->qh_hi_offset[r] = tile.qh_hi_offset;
    }
  }
}

// 16 rows of 16 dwords (row r at in + r * in_stride) to 16 vectors of 16
// rows: out + 64 * j holds dword j of every row, row r in lane r.
inline void Transpose16x16Dwords(const uint8_t* in, int64_t in_stride, uint8_t* out) {
  __m512i v[16];
  for (int r = 0; r < 16; ++r) v[r] = _mm512_loadu_si512(in + r * in_stride);
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
  // v[4i + c'], 128-bit lane L: rows 4i..4i+3 of column 4L + c with c' the
  // unpack order (0, 2, 1, 3) of c; gather the lanes of each column.
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 4; ++c) t[4 * i + c] = v[4 * i + (c == 1 ? 2 : c == 2 ? 1 : c)];
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i a01 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0x44);  // L0,L1 | L0,L1
    const __m512i a23 = _mm512_shuffle_i32x4(t[c], t[4 + c], 0xee);  // L2,L3 | L2,L3
    const __m512i b01 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0x44);
    const __m512i b23 = _mm512_shuffle_i32x4(t[8 + c], t[12 + c], 0xee);
    _mm512_store_si512(out + 64 * c, _mm512_shuffle_i32x4(a01, b01, 0x88));
    _mm512_store_si512(out + 64 * (4 + c), _mm512_shuffle_i32x4(a01, b01, 0xdd));
    _mm512_store_si512(out + 64 * (8 + c), _mm512_shuffle_i32x4(a23, b23, 0x88));
    _mm512_store_si512(out + 64 * (12 + c), _mm512_shuffle_i32x4(a23, b23, 0xdd));
  }
}

template <class F>
void VnniGemm(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  using Block = typename F::Block;
  const int64_t k = a.w.cols;
  const int64_t nblocks = k / F::kElems;
  const int64_t tile_bytes = nblocks * static_cast<int64_t>(sizeof(Block));
  const int64_t panel_tiles = std::max<int64_t>(1, kGemmPanelBytes / tile_bytes);
  const int64_t token_block = std::max<int64_t>(
      kGemmTokens, kGemmTokenBlockBytes / F::TokenBytes(k) / kGemmTokens * kGemmTokens);
  // ThreadPanel's floats, aligned up to the 64 bytes the blocks need.
  const uintptr_t raw = reinterpret_cast<uintptr_t>(
      ThreadPanel((panel_tiles * tile_bytes + 64) / static_cast<int64_t>(sizeof(float))));
  auto* panel = reinterpret_cast<Block*>((raw + 63) & ~uintptr_t{63});
  for (int64_t p0 = row_begin; p0 < row_end; p0 += panel_tiles * kGemmRows) {
    const int64_t p1 = std::min(row_end, p0 + panel_tiles * kGemmRows);
    const int64_t tiles = (p1 - p0 + kGemmRows - 1) / kGemmRows;
    for (int64_t i = 0; i < tiles; ++i) {
      F::UnpackTile(a.w, p0 + i * kGemmRows, p1, panel + i * nblocks);
    }
    for (int64_t t0 = 0; t0 < a.tokens; t0 += token_block) {
      const int64_t t1 = std::min(a.tokens, t0 + token_block);
      for (int64_t i = 0; i < tiles; ++i) {
        const int64_t n = p0 + i * kGemmRows;
        const int rows = static_cast<int>(std::min<int64_t>(kGemmRows, p1 - n));
        const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
        for (int64_t tc = t0; tc < t1; tc += kGemmTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(kGemmTokens, t1 - tc));
          int64_t ids[kGemmTokens];
          for (int t = 0; t < kGemmTokens; ++t) ids[t] = tc + (t < nt ? t : 0);
          __m512 y[kGemmTokens];
          F::Tile(a, panel + i * nblocks, nblocks, ids, y);
          for (int t = 0; t < nt; ++t) {
            _mm512_mask_storeu_ps(a.y + (tc + t) * a.w.rows + n, mask, y[t]);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace relayout::kernels::matmul_internal
