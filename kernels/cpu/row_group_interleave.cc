// Row-group interleave: the permutation of one group of G rows between
// row-major and [K/KB][G][KB] (+ [G][K%KB]), see row_group_interleave.h.
//
// Speed: every move is one KB-wide slice of one row (KB * elem_bytes bytes).
// The common slice widths (4, 8, 16, 32, 64 bytes) are compile-time constants,
// so each move compiles to one or two vector loads/stores, not a memcpy call.
// The in-place path copies one group (G * K * elem_bytes, e.g. 128 KiB for
// F32 G=8 K=4096) to scratch with memcpy, then permutes it back; the group is
// then cache-resident, so the second pass costs little beyond the first.
#include "kernels/cpu/row_group_interleave.h"

#include <cstdint>
#include <cstring>
#include <limits>

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

// One full group: `rows` is G rows of row_bytes, `grp` the interleaved group.
// kToGroups: rows -> grp (forward); else grp -> rows (inverse).
template <bool kToGroups, size_t kChunk>
void PermuteGroup(const Byte* from, Byte* to, size_t g, size_t row_bytes, size_t chunk) {
  if constexpr (kChunk != 0) chunk = kChunk;
  const size_t full = row_bytes / chunk;
  const size_t rem = row_bytes - full * chunk;
  size_t grp = 0;
  for (size_t c = 0; c < full; ++c) {
    size_t row = c * chunk;
    for (size_t r = 0; r < g; ++r, row += row_bytes, grp += chunk) {
      if constexpr (kToGroups) {
        CopyChunk<kChunk>(to + grp, from + row, chunk);
      } else {
        CopyChunk<kChunk>(to + row, from + grp, chunk);
      }
    }
  }
  if (rem != 0) {
    size_t row = full * chunk;
    for (size_t r = 0; r < g; ++r, row += row_bytes, grp += rem) {
      if constexpr (kToGroups) {
        std::memcpy(to + grp, from + row, rem);
      } else {
        std::memcpy(to + row, from + grp, rem);
      }
    }
  }
}

template <bool kToGroups>
void PermuteGroupDispatch(const Byte* from, Byte* to, size_t g, size_t row_bytes, size_t chunk) {
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
