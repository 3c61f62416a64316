// Quantized row-group interleave, see quant_row_group.h for the byte layout.
//
// Speed: the three GGUF formats get a specialisation with compile-time field
// and payload sizes, so each 2-byte scale and each 16/32-byte payload move is
// a single load/store; other formats take a generic path with memcpy calls.
#include "kernels/cpu/layout/quant_row_group.h"

#include <cstring>
#include <limits>

namespace relayout::kernels {
namespace {

using Byte = unsigned char;

// kBlock == 0 selects the runtime-sized generic path.
template <bool kToGroups, size_t kBlock, size_t kFields>
void PermuteGroup(const Byte* from, Byte* to, size_t g, size_t blocks, size_t block_rt,
                  size_t fields_rt) {
  const size_t block = kBlock != 0 ? kBlock : block_rt;
  const size_t fields = kBlock != 0 ? kFields : fields_rt;
  const size_t payload = block - 2 * fields;
  const size_t row_bytes = blocks * block;
  size_t grp = 0;
  auto move = [&](size_t row, size_t n) {
    if constexpr (kToGroups) {
      std::memcpy(to + grp, from + row, n);
    } else {
      std::memcpy(to + row, from + grp, n);
    }
    grp += n;
  };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t block_off = b * block;
    for (size_t f = 0; f < fields; ++f) {
      for (size_t r = 0; r < g; ++r) move(r * row_bytes + block_off + 2 * f, 2);
    }
    for (size_t r = 0; r < g; ++r) {
      if constexpr (kBlock != 0) {
        move(r * row_bytes + block_off + 2 * kFields, kBlock - 2 * kFields);
      } else {
        move(r * row_bytes + block_off + 2 * fields, payload);
      }
    }
  }
}

template <bool kToGroups>
void PermuteGroupDispatch(const Byte* from, Byte* to, size_t g, size_t blocks,
                          QuantBlockFormat fmt) {
  if (fmt.block_bytes == 34 && fmt.scale_fields == 1) {
    return PermuteGroup<kToGroups, 34, 1>(from, to, g, blocks, 34, 1);
  }
  if (fmt.block_bytes == 18 && fmt.scale_fields == 1) {
    return PermuteGroup<kToGroups, 18, 1>(from, to, g, blocks, 18, 1);
  }
  if (fmt.block_bytes == 20 && fmt.scale_fields == 2) {
    return PermuteGroup<kToGroups, 20, 2>(from, to, g, blocks, 20, 2);
  }
  PermuteGroup<kToGroups, 0, 0>(from, to, g, blocks, fmt.block_bytes, fmt.scale_fields);
}

bool MulFits(size_t a, size_t b) { return a == 0 || b <= std::numeric_limits<size_t>::max() / a; }

size_t RowBytes(const QuantRowGroupParams& p) { return p.blocks_per_row * p.format.block_bytes; }

bool RangeValid(const QuantRowGroupParams& p, size_t first, size_t count) {
  if (!QuantRowGroupParamsValid(p)) return false;
  const size_t groups = QuantRowGroupCount(p);
  return first <= groups && count <= groups - first;
}

template <bool kToGroups>
bool OutOfPlace(const void* src, void* dst, const QuantRowGroupParams& p, size_t first,
                size_t count) {
  if (!RangeValid(p, first, count)) return false;
  const size_t group_bytes = p.group_rows * RowBytes(p);
  const size_t full_groups = p.rows / p.group_rows;
  const size_t tensor_bytes = QuantRowGroupTensorBytes(p);
  const Byte* in = static_cast<const Byte*>(src);
  Byte* out = static_cast<Byte*>(dst);
  for (size_t i = first; i < first + count; ++i) {
    const size_t off = i * group_bytes;
    if (i < full_groups) {
      PermuteGroupDispatch<kToGroups>(in + off, out + off, p.group_rows, p.blocks_per_row,
                                      p.format);
    } else {
      std::memcpy(out + off, in + off, tensor_bytes - off);  // tail rows
    }
  }
  return true;
}

template <bool kToGroups>
bool InPlace(void* data, const QuantRowGroupParams& p, size_t first, size_t count, void* scratch,
             size_t scratch_bytes) {
  if (!RangeValid(p, first, count) || scratch_bytes < QuantRowGroupScratchBytes(p)) return false;
  const size_t group_bytes = p.group_rows * RowBytes(p);
  const size_t full_groups = p.rows / p.group_rows;
  Byte* base = static_cast<Byte*>(data);
  Byte* tmp = static_cast<Byte*>(scratch);
  const size_t end = first + count < full_groups ? first + count : full_groups;
  for (size_t i = first; i < end; ++i) {
    Byte* group = base + i * group_bytes;
    std::memcpy(tmp, group, group_bytes);
    PermuteGroupDispatch<kToGroups>(tmp, group, p.group_rows, p.blocks_per_row, p.format);
  }
  return true;
}

}  // namespace

bool QuantRowGroupParamsValid(const QuantRowGroupParams& p) {
  if (p.group_rows == 0 || p.format.block_bytes == 0) return false;
  if (2 * static_cast<uint64_t>(p.format.scale_fields) >= p.format.block_bytes) return false;
  return MulFits(p.blocks_per_row, p.format.block_bytes) && MulFits(p.rows, RowBytes(p)) &&
         MulFits(p.group_rows, RowBytes(p));
}

size_t QuantRowGroupTensorBytes(const QuantRowGroupParams& p) { return p.rows * RowBytes(p); }

size_t QuantRowGroupCount(const QuantRowGroupParams& p) {
  if (p.group_rows == 0) return 0;
  return p.rows / p.group_rows + (p.rows % p.group_rows != 0 ? 1 : 0);
}

size_t QuantRowGroupScratchBytes(const QuantRowGroupParams& p) {
  if (p.group_rows == 0 || p.rows < p.group_rows) return 0;
  return p.group_rows * RowBytes(p);
}

bool QuantRowGroupForward(const void* src, void* dst, const QuantRowGroupParams& p,
                          size_t first_group, size_t num_groups) {
  return OutOfPlace<true>(src, dst, p, first_group, num_groups);
}

bool QuantRowGroupInverse(const void* src, void* dst, const QuantRowGroupParams& p,
                          size_t first_group, size_t num_groups) {
  return OutOfPlace<false>(src, dst, p, first_group, num_groups);
}

bool QuantRowGroupForwardInPlace(void* data, const QuantRowGroupParams& p, size_t first_group,
                                 size_t num_groups, void* scratch, size_t scratch_bytes) {
  return InPlace<true>(data, p, first_group, num_groups, scratch, scratch_bytes);
}

bool QuantRowGroupInverseInPlace(void* data, const QuantRowGroupParams& p, size_t first_group,
                                 size_t num_groups, void* scratch, size_t scratch_bytes) {
  return InPlace<false>(data, p, first_group, num_groups, scratch, scratch_bytes);
}

}  // namespace relayout::kernels
