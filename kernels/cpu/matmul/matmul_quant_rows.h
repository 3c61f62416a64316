// The walk of the quantized matmul over rows and tokens, shared by the AVX2
// and AVX-512 files (each includes it once, inside its own ISA flags): row
// panels sized for L2 (a.row_panel), token blocks sized for L1
// (a.token_block); whole 8-row groups of the q-rowgroup layout go through the
// ISA's GroupLoader, every other row (GGUF blocks, tail rows) through its
// TileLoader. The ISA file supplies, in a Kernel type:
//   GroupLoader{base, stride, fields}, TileLoader{const QuantTile*},
//   template <QuantKind> static void Tokens(loader, args, t0, t1, row, rows).
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul/matmul_internal.h"

namespace relayout::kernels::matmul_internal {
namespace {

enum class QuantKind { k8_0, k4_0, k4_1, k5_0, k5_1, kIQ4NL };

// 2-byte fields per block (matmul_tiles.cc's QuantFormatOf) and block bytes.
constexpr int QuantFields(QuantKind q) {
  return q == QuantKind::k4_1 ? 2 : q == QuantKind::k5_0 ? 3 : q == QuantKind::k5_1 ? 4 : 1;
}
constexpr int64_t QuantBlockBytes(QuantKind q) {
  return q == QuantKind::k8_0   ? 34
         : q == QuantKind::k5_0 ? 22
         : q == QuantKind::k5_1 ? 24
         : q == QuantKind::k4_1 ? 20
                                : 18;
}
// Types whose weights carry a min (y = acc + accm).
constexpr bool QuantHasMin(QuantKind q) { return q == QuantKind::k4_1 || q == QuantKind::k5_1; }
// Types with a fifth bit per element (qh).
constexpr bool QuantHasHighBit(QuantKind q) { return q == QuantKind::k5_0 || q == QuantKind::k5_1; }

// A tile's next weight block into L1 ahead of its use (the rows of a GGUF
// tile lie far apart; QuantTile::prefetch_* say where), for both ISAs'
// TileLoader. prefetcht0, as _mm_prefetch(_MM_HINT_T0).
inline void PrefetchTileBlock(const QuantTile& t, int64_t b) {
  if (t.prefetch_bytes == 0) return;
  const uintptr_t from = t.prefetch_from + static_cast<uintptr_t>(b * t.prefetch_bytes);
  for (int64_t i = 0; i < t.prefetch_bytes; i += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(from + static_cast<uintptr_t>(i)), 0, 3);
  }
}

// The same for a q-rowgroup-g8 group, one sequential stream of `stride`
// bytes per block: its block kPrefetchAheadBytes ahead of block b.
inline void PrefetchGroupBlock(const uint8_t* base, int64_t stride, int64_t b) {
  const int64_t ahead = (kPrefetchAheadBytes + stride - 1) / stride;
  const uint8_t* from = base + (b + ahead) * stride;
  for (int64_t i = 0; i < stride; i += 64) __builtin_prefetch(from + i, 0, 3);
}

template <class Kernel, QuantKind kQ>
void WalkQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const int fields = QuantFields(kQ);
  const int64_t block_bytes = QuantBlockBytes(kQ);
  for (int64_t p0 = row_begin; p0 < row_end; p0 += a.row_panel) {
    const int64_t p1 = p0 + a.row_panel < row_end ? p0 + a.row_panel : row_end;
    for (int64_t t0 = 0; t0 < a.tokens; t0 += a.token_block) {
      const int64_t t1 = t0 + a.token_block < a.tokens ? t0 + a.token_block : a.tokens;
      for (int64_t row = p0; row < p1;) {
        if (IsQuantGroup8(a.w, row)) {
          const typename Kernel::GroupLoader ld{QuantGroupBase(a.w, row), 8 * block_bytes, fields};
          Kernel::template Tokens<kQ>(ld, a, t0, t1, row, 8);
          row += 8;
        } else {
          QuantTile tile;
          const int n = MakeQuantTile(a.w, row, p1, 8, &tile);
          Kernel::template Tokens<kQ>(typename Kernel::TileLoader{&tile}, a, t0, t1, row, n);
          row += n;
        }
      }
    }
  }
}

// QuantRows for one ISA's Kernel, by the weight's type.
template <class Kernel>
void WalkQuantRowsByType(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.w.type) {
    case WeightType::kQ8_0:
      return WalkQuantRows<Kernel, QuantKind::k8_0>(a, row_begin, row_end);
    case WeightType::kQ4_0:
      return WalkQuantRows<Kernel, QuantKind::k4_0>(a, row_begin, row_end);
    case WeightType::kQ5_0:
      return WalkQuantRows<Kernel, QuantKind::k5_0>(a, row_begin, row_end);
    case WeightType::kQ5_1:
      return WalkQuantRows<Kernel, QuantKind::k5_1>(a, row_begin, row_end);
    case WeightType::kIQ4_NL:
      return WalkQuantRows<Kernel, QuantKind::kIQ4NL>(a, row_begin, row_end);
    default:
      return WalkQuantRows<Kernel, QuantKind::k4_1>(a, row_begin, row_end);
  }
}

}  // namespace
}  // namespace relayout::kernels::matmul_internal
