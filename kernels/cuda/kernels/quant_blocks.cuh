// GGUF quantization blocks (Q8_0, Q4_0, Q4_1: 32 elements each) as the CUDA
// kernels read them, in the two layouts a quantized weight has on the
// device:
//   - native: the blocks in file order, row after row (the `native` layout,
//     the one llama.cpp's CUDA kernels read with 2-byte-aligned loads);
//   - quant row group (kernels/cpu/layout/quant_row_group.h, the preferred
//     layout with G = 8 on the GPU): for each group of G rows and each block
//     column b, the G rows' scale fields together, then their payloads; the
//     N % G tail rows stay native after the last group. With G = 8 a group
//     block is 9 (Q4_0), 10 (Q4_1) or 17 (Q8_0) 16-byte units, so a lane
//     reads a whole group block with 16-byte aligned loads.
// Every function here is an index map or a decode, host and device alike,
// and tested against the CPU's layout transform and reference dequantizers
// (quant_blocks_test.cc).
#pragma once

#include <cstdint>

#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {

inline constexpr int kQuantBlock = 32;  // elements per block
// Rows per group of the GPU's preferred quantized layout.
inline constexpr int kGpuQuantGroupRows = 8;

enum class QuantType : int32_t { kQ8_0 = 0, kQ4_0 = 1, kQ4_1 = 2 };

struct QuantFormat {
  int32_t block_bytes;    // B
  int32_t scale_fields;   // F leading f16 fields (d, or d and m)
  int32_t payload_bytes;  // B - 2F
};

RL_HD QuantFormat FormatOf(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return {34, 1, 32};
    case QuantType::kQ4_0:
      return {18, 1, 16};
    case QuantType::kQ4_1:
      return {20, 2, 16};
  }
  return {0, 0, 0};
}

// Where row `row`'s block `block` lives: its f16 fields (d at field 0, m at
// field 1, `field_stride` bytes apart) and its payload.
struct BlockPlace {
  int64_t field;  // byte offset of field 0
  int32_t field_stride;
  int64_t payload;  // byte offset of the payload
};

// Native layout: row-major blocks, fields at the block's start.
RL_HD BlockPlace NativeBlockPlace(QuantType t, int64_t blocks_per_row, int64_t row, int64_t block) {
  const QuantFormat f = FormatOf(t);
  const int64_t start = (row * blocks_per_row + block) * f.block_bytes;
  return {start, 2, start + 2 * f.scale_fields};
}

// Quant row group layout with `group_rows` rows per group over `rows` rows.
RL_HD BlockPlace GroupBlockPlace(QuantType t, int64_t rows, int64_t blocks_per_row,
                                 int32_t group_rows, int64_t row, int64_t block) {
  const QuantFormat f = FormatOf(t);
  const int64_t full_rows = rows / group_rows * group_rows;
  if (row >= full_rows) return NativeBlockPlace(t, blocks_per_row, row, block);
  const int64_t group = row / group_rows;
  const int64_t r = row % group_rows;
  const int64_t group_block =
      (group * blocks_per_row + block) * static_cast<int64_t>(group_rows) * f.block_bytes;
  return {
      group_block + 2 * r, 2 * group_rows,
      group_block + 2 * static_cast<int64_t>(f.scale_fields) * group_rows + r * f.payload_bytes};
}

RL_HD uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}

// The integer value of element j (0..31) of a block's payload: the int8 of
// Q8_0, the nibble minus 8 of Q4_0, the nibble of Q4_1 (byte j % 16 holds
// elements j and j + 16 in its low and high nibble, GGUF's pairing).
RL_HD int32_t BlockQuant(QuantType t, const uint8_t* payload, int32_t j) {
  if (t == QuantType::kQ8_0) return static_cast<int8_t>(payload[j]);
  const uint8_t byte = payload[j % 16];
  const int32_t nibble = j < 16 ? (byte & 0x0f) : (byte >> 4);
  return t == QuantType::kQ4_0 ? nibble - 8 : nibble;
}

// Element j of the block at `place` in `data`, as the reference dequantizers
// compute it: d * q (+ m for Q4_1), with d and m converted from f16.
RL_HD float DequantElement(QuantType t, const uint8_t* data, BlockPlace place, int32_t j) {
  const float d = HalfToFloat(LoadU16(data + place.field));
  const float q = static_cast<float>(BlockQuant(t, data + place.payload, j));
  const float m =
      t == QuantType::kQ4_1 ? HalfToFloat(LoadU16(data + place.field + place.field_stride)) : 0.0f;
#if defined(__CUDA_ARCH__)
  // Rounded product then sum, as the host computes it (no fused multiply-add).
  return t == QuantType::kQ4_1 ? __fadd_rn(__fmul_rn(d, q), m) : __fmul_rn(d, q);
#else
  return t == QuantType::kQ4_1 ? d * q + m : d * q;
#endif
}

}  // namespace relayout::cuda
