// Where the rows of a tile live in each layout (matmul_internal.h). Built for
// the baseline ISA: the SIMD kernels call these once per tile, so the layout
// arithmetic exists once and the ISA files hold only arithmetic on data.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/quant_format.h"

namespace relayout::kernels::matmul_internal {
namespace {

using Byte = uint8_t;

int64_t GroupRowsOf(const MatmulWeight& w) {
  return w.layout == WeightLayout::kRowMajor ? 1 : std::max<int64_t>(w.group_rows, 1);
}

// The layout's K-block, where a float layout has one (row-group, K-pair);
// 0 when rows are contiguous (row-major, or a K-block covering all of K).
int64_t KBlockOf(const MatmulWeight& w) {
  int64_t kb = 0;
  if (w.layout == WeightLayout::kRowGroup) kb = w.k_block;
  if (w.layout == WeightLayout::kBf16KPair) kb = 2;
  if (kb >= w.cols || GroupRowsOf(w) == 1) return 0;
  return kb;
}

// Whether rows are interleaved in groups at all; layouts that equal the
// common one (G = 1, or a K-block covering all of K) are read as row-major.
bool Grouped(const MatmulWeight& w) {
  if (w.layout == WeightLayout::kQuantRowGroup) return GroupRowsOf(w) > 1;
  return KBlockOf(w) != 0;
}

// First tail row: rows before it are in full groups.
int64_t TailStart(const MatmulWeight& w) {
  if (!Grouped(w)) return 0;
  const int64_t g = GroupRowsOf(w);
  return w.rows / g * g;
}

int64_t ElemBytes(WeightType t) { return t == WeightType::kF32 ? 4 : 2; }

struct QuantFormat {
  int64_t block_bytes;
  int64_t fields;
  int64_t elems = kQBlock;
};

// The block types as 2-byte fields and a payload (quant_row_group.h): Q5_0/
// Q5_1 count their 4 bytes of fifth bits as two fields, so that every
// payload of the 32-element types is the 16 nibble bytes; a K-quant
// super-block is all payload (its group block is the G blocks unchanged).
QuantFormat QuantFormatOf(WeightType t) {
  switch (t) {
    case WeightType::kQ8_0:
      return {34, 1};
    case WeightType::kQ4_0:
    case WeightType::kIQ4_NL:
      return {18, 1};
    case WeightType::kQ5_0:
      return {22, 3};
    case WeightType::kQ5_1:
      return {24, 4};
    case WeightType::kQ2_K:
      return {sizeof(BlockQ2_K), 0, kKBlock};
    case WeightType::kQ3_K:
      return {sizeof(BlockQ3_K), 0, kKBlock};
    case WeightType::kQ4_K:
      return {sizeof(BlockQ4_K), 0, kKBlock};
    case WeightType::kQ5_K:
      return {sizeof(BlockQ5_K), 0, kKBlock};
    case WeightType::kQ6_K:
      return {sizeof(BlockQ6_K), 0, kKBlock};
    default:
      return {20, 2};
  }
}

}  // namespace

bool InFullGroup(const MatmulWeight& w, int64_t row) { return row < TailStart(w); }

int64_t SplitUnitRows(const MatmulWeight& w) { return Grouped(w) ? GroupRowsOf(w) : kMaxTileRows; }

int64_t RowsLeftInGroup(const MatmulWeight& w, int64_t row) {
  const int64_t g = GroupRowsOf(w);
  if (row >= TailStart(w)) return w.rows - row;
  return g - row % g;
}

bool IsQuantGroup8(const MatmulWeight& w, int64_t row) {
  return w.layout == WeightLayout::kQuantRowGroup && w.group_rows == kQuantGroupRows &&
         row % kQuantGroupRows == 0 && row + kQuantGroupRows <= TailStart(w);
}

const uint8_t* QuantGroupBase(const MatmulWeight& w, int64_t row) {
  const QuantFormat f = QuantFormatOf(w.type);
  return static_cast<const Byte*>(w.data) + row * (w.cols / f.elems) * f.block_bytes;
}

int MakeQuantTile(const MatmulWeight& w, int64_t row, int64_t row_end, int max_rows,
                  QuantTile* tile) {
  const QuantFormat f = QuantFormatOf(w.type);
  const int64_t row_bytes = (w.cols / f.elems) * f.block_bytes;
  const Byte* base = static_cast<const Byte*>(w.data);
  const int64_t rows =
      std::min<int64_t>({max_rows, kMaxTileRows, row_end - row, RowsLeftInGroup(w, row)});
  const bool grouped = row < TailStart(w);
  const int64_t g = GroupRowsOf(w);
  for (int i = 0; i < kMaxTileRows; ++i) {
    const int64_t n = row + (i < rows ? i : 0);
    if (grouped) {
      const Byte* group = base + n / g * g * row_bytes;
      const int64_t r = n % g;
      tile->scale[i] = group + 2 * r;
      tile->min[i] = group + 2 * g + 2 * r;
      tile->qh[i] = f.fields >= 3 ? group + 2 * (f.fields - 2) * g + 2 * r : tile->scale[i];
      tile->payload[i] = group + 2 * f.fields * g + r * (f.block_bytes - 2 * f.fields);
    } else {
      const Byte* block = base + n * row_bytes;
      tile->scale[i] = block;
      tile->min[i] = block + 2;
      tile->qh[i] = f.fields >= 3 ? block + 2 * (f.fields - 2) : block;
      tile->payload[i] = block + 2 * f.fields;
    }
  }
  tile->qh_hi_offset = grouped ? 2 * g : 2;
  tile->block_stride = grouped ? g * f.block_bytes : f.block_bytes;
  tile->rows = static_cast<int>(rows);
  tile->prefetch_from = 0;
  tile->prefetch_bytes = 0;
  if (!grouped) {
    // The next tile's rows follow this one's; a prefetch past the end of the
    // tensor is harmless (it never faults).
    tile->prefetch_from = reinterpret_cast<uintptr_t>(base) + (row + rows) * row_bytes;
    tile->prefetch_bytes = rows * f.block_bytes;
  }
  return tile->rows;
}

bool FloatTileable(const MatmulWeight& w, int lanes) {
  const int64_t kb = KBlockOf(w);
  return kb == 0 || (w.layout == WeightLayout::kRowGroup && kb == lanes);
}

int MakeFloatTile(const MatmulWeight& w, int lanes, int64_t row, int64_t row_end, int max_rows,
                  FloatTile* tile) {
  const int64_t eb = ElemBytes(w.type);
  const Byte* base = static_cast<const Byte*>(w.data);
  const int64_t rows =
      std::min<int64_t>({max_rows, kMaxTileRows, row_end - row, RowsLeftInGroup(w, row)});
  const bool grouped = row < TailStart(w);
  const int64_t g = GroupRowsOf(w);
  const int64_t chunks = w.cols / lanes;
  const int64_t rem = w.cols % lanes;
  for (int i = 0; i < kMaxTileRows; ++i) {
    const int64_t n = row + (i < rows ? i : 0);
    if (grouped) {
      const Byte* group = base + n / g * g * w.cols * eb;
      const int64_t r = n % g;
      tile->main[i] = group + r * lanes * eb;
      tile->tail[i] = group + (g * chunks * lanes + r * rem) * eb;
    } else {
      tile->main[i] = base + n * w.cols * eb;
      tile->tail[i] = tile->main[i] + chunks * lanes * eb;
    }
  }
  tile->chunk_stride = (grouped ? g : 1) * lanes * eb;
  tile->chunks = chunks;
  tile->rem = static_cast<int>(rem);
  tile->rows = static_cast<int>(rows);
  return tile->rows;
}

void DecodeFloatRows(const MatmulWeight& w, int64_t row, int rows, float* panel) {
  const int64_t eb = ElemBytes(w.type);
  const Byte* base = static_cast<const Byte*>(w.data);
  const int64_t k = w.cols;
  const int64_t kb = KBlockOf(w);
  const int64_t g = GroupRowsOf(w);
  auto convert = [&](const Byte* src, int64_t count, float* dst) {
    for (int64_t j = 0; j < count; ++j) {
      if (w.type == WeightType::kF32) {
        std::memcpy(&dst[j], src + 4 * j, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, src + 2 * j, 2);
        dst[j] = w.type == WeightType::kF16 ? reference::F16ToF32(h) : reference::BF16ToF32(h);
      }
    }
  };
  for (int i = 0; i < rows; ++i) {
    const int64_t n = row + i;
    float* out = panel + i * k;
    if (n >= TailStart(w)) {
      convert(base + n * k * eb, k, out);
      continue;
    }
    const Byte* group = base + n / g * g * k * eb;
    const int64_t r = n % g;
    for (int64_t k0 = 0; k0 < k; k0 += kb) {
      const int64_t width = std::min(kb, k - k0);
      convert(group + (g * k0 + r * width) * eb, width, out + k0);
    }
  }
}

float* ThreadPanel(int64_t floats) {
  thread_local std::vector<float> panel;
  if (static_cast<int64_t>(panel.size()) < floats) panel.resize(static_cast<size_t>(floats));
  return panel.data();
}

}  // namespace relayout::kernels::matmul_internal
