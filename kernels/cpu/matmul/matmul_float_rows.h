// The walk of the float matmul over rows and tokens, shared by the AVX2 and
// AVX-512 files (each includes it once, inside its own ISA flags): token
// blocks sized for L1; BF16 K-pair groups through the ISA's KPairMicro; other
// layouts as FloatTiles of Kernel::kLanes columns; row-group parameters the
// tiles cannot address (a K-block other than the lane count) decoded to an
// F32 panel first. The ISA file supplies, in a Kernel type:
//   kLanes, kGemvRows (rows per GEMV tile), kGemmTokens (tokens per GEMM tile),
//   template <FloatKind, int TT, int RR> static void Tokens(tile, args, t0, t1, row),
//   template <int TT> static void KPairMicro(group, g, sub, args, t, row).
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul/matmul_internal.h"

namespace relayout::kernels::matmul_internal {
namespace {

enum class FloatKind { kF32, kF16, kBF16 };

template <class Kernel, FloatKind kE>
void WalkFloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  constexpr int kLanes = Kernel::kLanes;
  constexpr int kGemmRows = 4;
  const MatmulWeight& w = a.w;
  const bool tileable = FloatTileable(w, kLanes);
  const bool kpair =
      kE == FloatKind::kBF16 && w.layout == WeightLayout::kBf16KPair && w.group_rows % kLanes == 0;
  const bool gemv = a.tokens == 1;
  const int rr = gemv ? Kernel::kGemvRows : kGemmRows;
  for (int64_t t0 = 0; t0 < a.tokens; t0 += a.token_block) {
    const int64_t t1 = t0 + a.token_block < a.tokens ? t0 + a.token_block : a.tokens;
    for (int64_t row = row_begin; row < row_end;) {
      const bool grouped = InFullGroup(w, row);
      if (kpair && grouped) {
        const int64_t g = w.group_rows;
        const uint8_t* group = static_cast<const uint8_t*>(w.data) + row * w.cols * 2;
        for (int64_t s = 0; s < g; s += kLanes) {
          int64_t t = t0;
          for (; t + 4 <= t1; t += 4)
            Kernel::template KPairMicro<4>(group, g, 2 * s, a, t, row + s);
          for (; t < t1; ++t) Kernel::template KPairMicro<1>(group, g, 2 * s, a, t, row + s);
        }
        row += g;
        continue;
      }
      FloatTile tile;
      if (tileable || !grouped) {
        MakeFloatTile(w, kLanes, row, row_end, rr, &tile);
        if (gemv) {
          Kernel::template Tokens<kE, 1, Kernel::kGemvRows>(tile, a, t0, t0 + 1, row);
        } else {
          Kernel::template Tokens<kE, Kernel::kGemmTokens, kGemmRows>(tile, a, t0, t1, row);
        }
      } else {
        // Unusual parameters: decode the rows to floats, then read them row-major.
        const int64_t left =
            row_end - row < RowsLeftInGroup(w, row) ? row_end - row : RowsLeftInGroup(w, row);
        const int n = static_cast<int>(rr < left ? rr : left);
        float* panel = ThreadPanel(n * w.cols);
        DecodeFloatRows(w, row, n, panel);
        MatmulWeight pw = w;
        pw.data = panel;
        pw.type = WeightType::kF32;
        pw.layout = WeightLayout::kRowMajor;
        pw.rows = n;
        MakeFloatTile(pw, kLanes, 0, n, n, &tile);
        if (gemv) {
          Kernel::template Tokens<FloatKind::kF32, 1, Kernel::kGemvRows>(tile, a, t0, t0 + 1, row);
        } else {
          Kernel::template Tokens<FloatKind::kF32, Kernel::kGemmTokens, kGemmRows>(tile, a, t0, t1,
                                                                                   row);
        }
      }
      row += tile.rows;
    }
  }
}

// FloatRows for one ISA's Kernel, by the weight's type.
template <class Kernel>
void WalkFloatRowsByType(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.w.type) {
    case WeightType::kF32:
      return WalkFloatRows<Kernel, FloatKind::kF32>(a, row_begin, row_end);
    case WeightType::kF16:
      return WalkFloatRows<Kernel, FloatKind::kF16>(a, row_begin, row_end);
    default:
      return WalkFloatRows<Kernel, FloatKind::kBF16>(a, row_begin, row_end);
  }
}

}  // namespace
}  // namespace relayout::kernels::matmul_internal
