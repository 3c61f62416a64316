// Reference GEMV over GGUF-block weights: file order and the quantized
// row-group interleave. Both dequantize one block at a time with the same
// helper and accumulate k ascending, so they match bit for bit.
#include <cstring>

#include "kernels/cpu/reference/block_dequant.h"
#include "kernels/cpu/reference/gemv.h"

namespace relayout::kernels::reference {
namespace {

using Byte = unsigned char;

uint16_t LoadU16(const Byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Where one block's fields are: scale fields (2 bytes each) and the payload.
struct BlockFields {
  const Byte* field[2] = {nullptr, nullptr};
  const Byte* payload = nullptr;
};

void Dequantize(QuantKind kind, const BlockFields& b, float* out) {
  switch (kind) {
    case QuantKind::kQ8_0:
      return DequantizeQ8_0Fields(LoadU16(b.field[0]), b.payload, out);
    case QuantKind::kQ4_0:
      return DequantizeQ4_0Fields(LoadU16(b.field[0]), b.payload, out);
    case QuantKind::kQ4_1:
      return DequantizeQ4_1Fields(LoadU16(b.field[0]), LoadU16(b.field[1]), b.payload, out);
  }
}

BlockFields FileOrderBlock(const Byte* block, QuantBlockFormat fmt) {
  BlockFields b;
  for (uint32_t f = 0; f < fmt.scale_fields; ++f) b.field[f] = block + 2 * f;
  b.payload = block + 2 * fmt.scale_fields;
  return b;
}

// Block (n, blk) in the quantized row-group interleave (quant_row_group.h).
BlockFields RowGroupBlock(const Byte* base, const QuantRowGroupParams& p, size_t n, size_t blk) {
  const size_t row_bytes = p.blocks_per_row * p.format.block_bytes;
  const size_t g = p.group_rows;
  const size_t group = n / g;
  if (group >= p.rows / g) {
    return FileOrderBlock(base + n * row_bytes + blk * p.format.block_bytes, p.format);
  }
  const size_t r = n % g;
  const Byte* group_block = base + group * g * row_bytes + blk * g * p.format.block_bytes;
  const size_t payload_bytes = p.format.block_bytes - 2 * p.format.scale_fields;
  BlockFields b;
  for (uint32_t f = 0; f < p.format.scale_fields; ++f) b.field[f] = group_block + f * 2 * g + 2 * r;
  b.payload = group_block + 2 * p.format.scale_fields * g + r * payload_bytes;
  return b;
}

}  // namespace

QuantBlockFormat QuantBlockFormatOf(QuantKind kind) {
  switch (kind) {
    case QuantKind::kQ8_0:
      return kQ8_0BlockFormat;
    case QuantKind::kQ4_0:
      return kQ4_0BlockFormat;
    case QuantKind::kQ4_1:
      return kQ4_1BlockFormat;
  }
  return kQ8_0BlockFormat;
}

void GemvGgufBlocks(QuantKind kind, const void* w, size_t rows, size_t blocks_per_row,
                    const float* x, float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  const QuantBlockFormat fmt = QuantBlockFormatOf(kind);
  float deq[kBlockElems];
  for (size_t n = 0; n < rows; ++n) {
    float acc = 0.0f;
    for (size_t blk = 0; blk < blocks_per_row; ++blk) {
      const Byte* block = base + (n * blocks_per_row + blk) * fmt.block_bytes;
      Dequantize(kind, FileOrderBlock(block, fmt), deq);
      for (int j = 0; j < kBlockElems; ++j) acc += deq[j] * x[blk * kBlockElems + j];
    }
    y[n] = acc;
  }
}

void GemvQuantRowGroup(QuantKind kind, const QuantRowGroupParams& layout, const void* w,
                       const float* x, float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  float deq[kBlockElems];
  for (size_t n = 0; n < layout.rows; ++n) {
    float acc = 0.0f;
    for (size_t blk = 0; blk < layout.blocks_per_row; ++blk) {
      Dequantize(kind, RowGroupBlock(base, layout, n, blk), deq);
      for (int j = 0; j < kBlockElems; ++j) acc += deq[j] * x[blk * kBlockElems + j];
    }
    y[n] = acc;
  }
}

}  // namespace relayout::kernels::reference
