// Reference GEMV over GGUF-block weights: file order and the quantized
// row-group interleave. Both gather one block back into its file order and
// dequantize it with the row dequantizer of dequant.h, then accumulate k
// ascending, so they match bit for bit.
#include <cstring>

#include "kernels/cpu/reference/dequant.h"
#include "kernels/cpu/reference/gemv.h"
#include "kernels/quant_format.h"

namespace relayout::kernels::reference {
namespace {

using Byte = unsigned char;

constexpr int kMaxBlockElems = kQKK;
constexpr size_t kMaxBlockBytes = kBlockQ6_KBytes;
constexpr uint32_t kMaxFields = 4;

struct KindInfo {
  QuantBlockFormat format;
  int elems;
  DequantizeRowFn dequantize;
};

KindInfo InfoOf(QuantKind kind) {
  switch (kind) {
    case QuantKind::kQ8_0:
      return {kQ8_0BlockFormat, kQK, DequantizeRowQ8_0};
    case QuantKind::kQ4_0:
      return {kQ4_0BlockFormat, kQK, DequantizeRowQ4_0};
    case QuantKind::kQ4_1:
      return {kQ4_1BlockFormat, kQK, DequantizeRowQ4_1};
    case QuantKind::kQ5_0:
      return {kQ5_0BlockFormat, kQK, DequantizeRowQ5_0};
    case QuantKind::kQ5_1:
      return {kQ5_1BlockFormat, kQK, DequantizeRowQ5_1};
    case QuantKind::kIQ4_NL:
      return {kIQ4_NLBlockFormat, kQK, DequantizeRowIQ4_NL};
    case QuantKind::kQ2_K:
      return {{kBlockQ2_KBytes, 0}, kQKK, DequantizeRowQ2_K};
    case QuantKind::kQ3_K:
      return {{kBlockQ3_KBytes, 0}, kQKK, DequantizeRowQ3_K};
    case QuantKind::kQ4_K:
      return {{kBlockQ4_KBytes, 0}, kQKK, DequantizeRowQ4_K};
    case QuantKind::kQ5_K:
      return {{kBlockQ5_KBytes, 0}, kQKK, DequantizeRowQ5_K};
    case QuantKind::kQ6_K:
      return {{kBlockQ6_KBytes, 0}, kQKK, DequantizeRowQ6_K};
  }
  return {kQ8_0BlockFormat, kQK, DequantizeRowQ8_0};
}

// Where one block's fields are: scale fields (2 bytes each) and the payload.
struct BlockFields {
  const Byte* field[kMaxFields] = {};
  const Byte* payload = nullptr;
};

// The block back in file order, dequantized.
void Dequantize(const KindInfo& info, const BlockFields& b, float* out) {
  Byte block[kMaxBlockBytes];
  const uint32_t fields = info.format.scale_fields;
  for (uint32_t f = 0; f < fields; ++f) std::memcpy(block + 2 * f, b.field[f], 2);
  std::memcpy(block + 2 * fields, b.payload, info.format.block_bytes - 2 * fields);
  info.dequantize(block, out, info.elems);
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

QuantBlockFormat QuantBlockFormatOf(QuantKind kind) { return InfoOf(kind).format; }

int QuantBlockElems(QuantKind kind) { return InfoOf(kind).elems; }

void GemvGgufBlocks(QuantKind kind, const void* w, size_t rows, size_t blocks_per_row,
                    const float* x, float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  const KindInfo info = InfoOf(kind);
  float deq[kMaxBlockElems];
  for (size_t n = 0; n < rows; ++n) {
    float acc = 0.0f;
    for (size_t blk = 0; blk < blocks_per_row; ++blk) {
      const Byte* block = base + (n * blocks_per_row + blk) * info.format.block_bytes;
      Dequantize(info, FileOrderBlock(block, info.format), deq);
      for (int j = 0; j < info.elems; ++j) acc += deq[j] * x[blk * info.elems + j];
    }
    y[n] = acc;
  }
}

void GemvQuantRowGroup(QuantKind kind, const QuantRowGroupParams& layout, const void* w,
                       const float* x, float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  const KindInfo info = InfoOf(kind);
  float deq[kMaxBlockElems];
  for (size_t n = 0; n < layout.rows; ++n) {
    float acc = 0.0f;
    for (size_t blk = 0; blk < layout.blocks_per_row; ++blk) {
      Dequantize(info, RowGroupBlock(base, layout, n, blk), deq);
      for (int j = 0; j < info.elems; ++j) acc += deq[j] * x[blk * info.elems + j];
    }
    y[n] = acc;
  }
}

}  // namespace relayout::kernels::reference
