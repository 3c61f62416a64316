// Row-group interleave: the permutation of one group of G rows between
// row-major and [K/KB][G][KB] (+ [G][K%KB]), see row_group_interleave.h.
//
// Speed: every move is one KB-wide slice of one row (KB * elem_bytes bytes).
// The common slice widths (4, 8, 16, 32, 64 bytes) are compile-time constants,
// so each move compiles to one or two vector loads/stores, not a memcpy call.
// The in-place path copies one group (G * K * elem_bytes, e.g. 128 KiB for
// F32 G=8 K=4096) to scratch with memcpy, then permutes it back; the group is
// then cache-resident, so the second pass costs little beyond the first.
#include "kernels/cpu/layout/row_group_interleave.h"

#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace relayout::kernels {
namespace {

using Byte = unsigned char;

template <size_t kChunk>
inline void CopyChunk(Byte* to, const Byte* from, size_t n) {
  if constexpr (kChunk != 0) {
    (void)n;
    std::memcpy(to, from, kChunk);
  } else {
    std::memcpy(to, from, n);
  }
}

// Bytes of the interleaved side one tile spans; small enough to stay in L1.
constexpr size_t kTileBytes = 16 * 1024;

// One full group: `rows` is G rows of row_bytes, `grp` the interleaved group.
// kToGroups: rows -> grp (forward); else grp -> rows (inverse).
//
// Loop order: a tile of K-blocks, then row, then K-block. The row side is then
// walked sequentially (row r's slice of the tile) and the interleaved side
// stays inside one L1-sized tile. The naive order (K-block, then row) touches
// G rows per K-block whose addresses differ by row_bytes, often a multiple of
// 4 KiB: they share L1 sets and, for G = 16, evict each other before a line is
// used up (the inverse ran 5-30x slower than memcpy that way).
template <bool kToGroups, size_t kChunk>
void PermuteGroup(const Byte* from, Byte* to, size_t g, size_t row_bytes, size_t chunk) {
  if constexpr (kChunk != 0) chunk = kChunk;
  const size_t full = row_bytes / chunk;
  const size_t rem = row_bytes - full * chunk;
  const size_t tile = kTileBytes / (g * chunk) > 0 ? kTileBytes / (g * chunk) : 1;
  const size_t grp_stride = g * chunk;  // between K-blocks of one row
  for (size_t c0 = 0; c0 < full; c0 += tile) {
    const size_t c1 = c0 + tile < full ? c0 + tile : full;
    for (size_t r = 0; r < g; ++r) {
      size_t row = r * row_bytes + c0 * chunk;
      size_t grp = c0 * grp_stride + r * chunk;
      for (size_t c = c0; c < c1; ++c, row += chunk, grp += grp_stride) {
        if constexpr (kToGroups) {
          CopyChunk<kChunk>(to + grp, from + row, chunk);
        } else {
          CopyChunk<kChunk>(to + row, from + grp, chunk);
        }
      }
    }
  }
  if (rem != 0) {
    size_t row = full * chunk;
    size_t grp = full * grp_stride;
    for (size_t r = 0; r < g; ++r, row += row_bytes, grp += rem) {
      if constexpr (kToGroups) {
        std::memcpy(to + grp, from + row, rem);
      } else {
        std::memcpy(to + row, from + grp, rem);
      }
    }
  }
}

#if defined(__SSE2__)
// Transposes the 4x4 matrix of 32-bit lanes held in a[0..3] (a[i] lane j ->
// a[j] lane i).
inline void Transpose4x4(__m128i a[4]) {
  const __m128i t0 = _mm_unpacklo_epi32(a[0], a[1]);
  const __m128i t1 = _mm_unpacklo_epi32(a[2], a[3]);
  const __m128i t2 = _mm_unpackhi_epi32(a[0], a[1]);
  const __m128i t3 = _mm_unpackhi_epi32(a[2], a[3]);
  a[0] = _mm_unpacklo_epi64(t0, t1);
  a[1] = _mm_unpackhi_epi64(t0, t1);
  a[2] = _mm_unpacklo_epi64(t2, t3);
  a[3] = _mm_unpackhi_epi64(t2, t3);
}

// 4-byte K-blocks (the BF16 K-pair layout) with G % 4 == 0: moving 4 bytes at
// a time runs at a fraction of memcpy, so 4 rows x 4 K-blocks are moved as
// one 4x4 transpose of 32-bit lanes with 16-byte loads and stores. Same tile
// order as PermuteGroup.
template <bool kToGroups>
void PermuteGroupChunk4(const Byte* from, Byte* to, size_t g, size_t row_bytes) {
  constexpr size_t kChunk = 4;
  const size_t full = row_bytes / kChunk;
  const size_t rem = row_bytes - full * kChunk;
  const size_t grp_stride = g * kChunk;
  const size_t tile = (kTileBytes / grp_stride) & ~size_t{3};
  const size_t step = tile > 4 ? tile : 4;
  for (size_t c0 = 0; c0 < full; c0 += step) {
    const size_t c1 = c0 + step < full ? c0 + step : full;
    for (size_t r0 = 0; r0 < g; r0 += 4) {
      size_t c = c0;
      for (; c + 4 <= c1; c += 4) {
        __m128i a[4];
        if constexpr (kToGroups) {
          for (size_t i = 0; i < 4; ++i) {
            a[i] = _mm_loadu_si128(
                reinterpret_cast<const __m128i*>(from + (r0 + i) * row_bytes + c * kChunk));
          }
          Transpose4x4(a);
          for (size_t j = 0; j < 4; ++j) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(to + (c + j) * grp_stride + r0 * kChunk),
                             a[j]);
          }
        } else {
          for (size_t j = 0; j < 4; ++j) {
            a[j] = _mm_loadu_si128(
                reinterpret_cast<const __m128i*>(from + (c + j) * grp_stride + r0 * kChunk));
          }
          Transpose4x4(a);
          for (size_t i = 0; i < 4; ++i) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(to + (r0 + i) * row_bytes + c * kChunk),
                             a[i]);
          }
        }
      }
      for (; c < c1; ++c) {
        for (size_t r = r0; r < r0 + 4; ++r) {
          const size_t row = r * row_bytes + c * kChunk;
          const size_t grp = c * grp_stride + r * kChunk;
          if constexpr (kToGroups) {
            std::memcpy(to + grp, from + row, kChunk);
          } else {
            std::memcpy(to + row, from + grp, kChunk);
          }
        }
      }
    }
  }
  if (rem != 0) {
    size_t row = full * kChunk;
    size_t grp = full * grp_stride;
    for (size_t r = 0; r < g; ++r, row += row_bytes, grp += rem) {
      if constexpr (kToGroups) {
        std::memcpy(to + grp, from + row, rem);
      } else {
        std::memcpy(to + row, from + grp, rem);
      }
    }
  }
}
#endif

template <bool kToGroups>
void PermuteGroupDispatch(const Byte* from, Byte* to, size_t g, size_t row_bytes, size_t chunk) {
#if defined(__SSE2__)
  if (chunk == 4 && g % 4 == 0) return PermuteGroupChunk4<kToGroups>(from, to, g, row_bytes);
#endif
  switch (chunk) {
    case 4:
      return PermuteGroup<kToGroups, 4>(from, to, g, row_bytes, chunk);
    case 8:
      return PermuteGroup<kToGroups, 8>(from, to, g, row_bytes, chunk);
    case 16:
      return PermuteGroup<kToGroups, 16>(from, to, g, row_bytes, chunk);
    case 32:
      return PermuteGroup<kToGroups, 32>(from, to, g, row_bytes, chunk);
    case 64:
      return PermuteGroup<kToGroups, 64>(from, to, g, row_bytes, chunk);
    default:
      return PermuteGroup<kToGroups, 0>(from, to, g, row_bytes, chunk);
  }
}

struct Geometry {
  size_t row_bytes;
  size_t chunk_bytes;
  size_t group_bytes;
  size_t full_groups;
  size_t groups;  // full groups + tail pseudo-group
  size_t tensor_bytes;
};

Geometry GeometryOf(const RowGroupParams& p) {
  Geometry geo;
  geo.row_bytes = p.cols * p.elem_bytes;
  // KB wider than K acts as KB == K: one partial block per row.
  geo.chunk_bytes = p.k_block * p.elem_bytes;
  geo.group_bytes = p.group_rows * geo.row_bytes;
  geo.full_groups = p.rows / p.group_rows;
  geo.groups = geo.full_groups + (p.rows % p.group_rows != 0 ? 1 : 0);
  geo.tensor_bytes = p.rows * geo.row_bytes;
  return geo;
}

bool MulFits(size_t a, size_t b) { return a == 0 || b <= std::numeric_limits<size_t>::max() / a; }

bool RangeValid(const RowGroupParams& p, size_t first, size_t count) {
  if (!RowGroupParamsValid(p)) return false;
  const size_t groups = RowGroupCount(p);
  return first <= groups && count <= groups - first;
}

template <bool kToGroups>
bool OutOfPlace(const void* src, void* dst, const RowGroupParams& p, size_t first, size_t count) {
  if (!RangeValid(p, first, count)) return false;
  const Geometry geo = GeometryOf(p);
  const Byte* in = static_cast<const Byte*>(src);
  Byte* out = static_cast<Byte*>(dst);
  for (size_t i = first; i < first + count; ++i) {
    const size_t off = i * geo.group_bytes;
    if (i < geo.full_groups) {
      PermuteGroupDispatch<kToGroups>(in + off, out + off, p.group_rows, geo.row_bytes,
                                      geo.chunk_bytes);
    } else {
      std::memcpy(out + off, in + off, geo.tensor_bytes - off);  // tail rows
    }
  }
  return true;
}

template <bool kToGroups>
bool InPlace(void* data, const RowGroupParams& p, size_t first, size_t count, void* scratch,
             size_t scratch_bytes) {
  if (!RangeValid(p, first, count) || scratch_bytes < RowGroupScratchBytes(p)) return false;
  const Geometry geo = GeometryOf(p);
  Byte* base = static_cast<Byte*>(data);
  Byte* tmp = static_cast<Byte*>(scratch);
  const size_t end = first + count < geo.full_groups ? first + count : geo.full_groups;
  for (size_t i = first; i < end; ++i) {
    Byte* group = base + i * geo.group_bytes;
    std::memcpy(tmp, group, geo.group_bytes);
    PermuteGroupDispatch<kToGroups>(tmp, group, p.group_rows, geo.row_bytes, geo.chunk_bytes);
  }
  return true;
}

}  // namespace

bool RowGroupParamsValid(const RowGroupParams& p) {
  if (p.elem_bytes == 0 || p.group_rows == 0 || p.k_block == 0) return false;
  return MulFits(p.cols, p.elem_bytes) && MulFits(p.rows, p.cols * p.elem_bytes) &&
         MulFits(p.k_block, p.elem_bytes) && MulFits(p.group_rows, p.cols * p.elem_bytes);
}

size_t RowGroupTensorBytes(const RowGroupParams& p) { return p.rows * p.cols * p.elem_bytes; }

size_t RowGroupCount(const RowGroupParams& p) {
  if (p.group_rows == 0) return 0;
  return p.rows / p.group_rows + (p.rows % p.group_rows != 0 ? 1 : 0);
}

size_t RowGroupScratchBytes(const RowGroupParams& p) {
  if (p.group_rows == 0 || p.rows < p.group_rows) return 0;
  return p.group_rows * p.cols * p.elem_bytes;
}

bool RowGroupInterleaveForward(const void* src, void* dst, const RowGroupParams& p,
                               size_t first_group, size_t num_groups) {
  return OutOfPlace<true>(src, dst, p, first_group, num_groups);
}

bool RowGroupInterleaveInverse(const void* src, void* dst, const RowGroupParams& p,
                               size_t first_group, size_t num_groups) {
  return OutOfPlace<false>(src, dst, p, first_group, num_groups);
}

bool RowGroupInterleaveForwardInPlace(void* data, const RowGroupParams& p, size_t first_group,
                                      size_t num_groups, void* scratch, size_t scratch_bytes) {
  return InPlace<true>(data, p, first_group, num_groups, scratch, scratch_bytes);
}

bool RowGroupInterleaveInverseInPlace(void* data, const RowGroupParams& p, size_t first_group,
                                      size_t num_groups, void* scratch, size_t scratch_bytes) {
  return InPlace<false>(data, p, first_group, num_groups, scratch, scratch_bytes);
}

}  // namespace relayout::kernels
