// GGUF quantization blocks as the CUDA kernels read them:
//   - blocks of 32 elements (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), in two
//     layouts on the device:
//     - native: the blocks in file order, row after row (the `native` layout,
//       the one llama.cpp's CUDA kernels read with 2-byte-aligned loads);
//     - quant row group (kernels/cpu/layout/quant_row_group.h, the preferred
//       layout with G = 8 on the GPU): for each group of G rows and each block
//       column b, the G rows' scale fields together, then their payloads; the
//       N % G tail rows stay native after the last group. With G = 8 a group
//       block is 9 (Q4_0), 10 (Q4_1) or 17 (Q8_0) 16-byte units, so a lane
//       reads a whole group block with 16-byte aligned loads. Q5_0, Q5_1 and
//       IQ4_NL have a group format too (11, 12, 9 units: Q5's 32-bit qh counts
//       as two 16-bit fields after d, or d and m, as the CPU transform treats
//       it), which the decode and the relayout follow;
//   - K-quant super-blocks of 256 elements (Q2_K..Q6_K, quant_format.h),
//     native only.
// Every function here is an index map or a decode, host and device alike,
// and tested against the CPU's layout transform and reference dequantizers
// (quant_blocks_test.cc).
#pragma once

#include <cstdint>

#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/device_abi.h"

namespace relayout::cuda {

inline constexpr int kQuantBlock = 32;    // elements per block (and per Q8 activation block)
inline constexpr int kKQuantBlock = 256;  // elements per K-quant super-block
// Rows per group of the GPU's preferred quantized layout.
inline constexpr int kGpuQuantGroupRows = 8;

enum class QuantType : int32_t {
  kQ8_0 = 0,
  kQ4_0 = 1,
  kQ4_1 = 2,
  kQ5_0 = 3,
  kQ5_1 = 4,
  kIQ4_NL = 5,
  kQ2_K = 6,  // the K-quants: super-blocks of 256
  kQ3_K = 7,
  kQ4_K = 8,
  kQ5_K = 9,
  kQ6_K = 10,
};

RL_HD constexpr bool IsKQuant(QuantType t) {
  return t == QuantType::kQ2_K || t == QuantType::kQ3_K || t == QuantType::kQ4_K ||
         t == QuantType::kQ5_K || t == QuantType::kQ6_K;
}

// Elements per block: 32, or 256 for the K-quants.
RL_HD constexpr int32_t BlockElements(QuantType t) {
  return IsKQuant(t) ? kKQuantBlock : kQuantBlock;
}

// Bytes per block in GGUF (quant_format.h's structs).
RL_HD constexpr int32_t BlockBytes(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return 34;
    case QuantType::kQ4_0:
    case QuantType::kIQ4_NL:
      return 18;
    case QuantType::kQ4_1:
      return 20;
    case QuantType::kQ5_0:
      return 22;
    case QuantType::kQ5_1:
      return 24;
    case QuantType::kQ2_K:
      return 84;
    case QuantType::kQ3_K:
      return 110;
    case QuantType::kQ4_K:
      return 144;
    case QuantType::kQ5_K:
      return 176;
    case QuantType::kQ6_K:
      return 210;
  }
  return 0;
}

// Whether a 32-element type has a min (x = d * q + m).
RL_HD constexpr bool HasBlockMin(QuantType t) {
  return t == QuantType::kQ4_1 || t == QuantType::kQ5_1;
}

// The kernels' type of a quantized ABI dtype (RL_DTYPE_Q8_0 .. RL_DTYPE_Q6_K);
// false for any other dtype.
RL_HD constexpr bool QuantTypeOfDtype(int32_t dtype, QuantType* t) {
  switch (dtype) {
    case RL_DTYPE_Q8_0:
      *t = QuantType::kQ8_0;
      return true;
    case RL_DTYPE_Q4_0:
      *t = QuantType::kQ4_0;
      return true;
    case RL_DTYPE_Q4_1:
      *t = QuantType::kQ4_1;
      return true;
    case RL_DTYPE_Q5_0:
      *t = QuantType::kQ5_0;
      return true;
    case RL_DTYPE_Q5_1:
      *t = QuantType::kQ5_1;
      return true;
    case RL_DTYPE_IQ4_NL:
      *t = QuantType::kIQ4_NL;
      return true;
    case RL_DTYPE_Q2_K:
      *t = QuantType::kQ2_K;
      return true;
    case RL_DTYPE_Q3_K:
      *t = QuantType::kQ3_K;
      return true;
    case RL_DTYPE_Q4_K:
      *t = QuantType::kQ4_K;
      return true;
    case RL_DTYPE_Q5_K:
      *t = QuantType::kQ5_K;
      return true;
    case RL_DTYPE_Q6_K:
      *t = QuantType::kQ6_K;
      return true;
    default:
      return false;
  }
}

struct QuantFormat {
  int32_t block_bytes;    // B
  int32_t scale_fields;   // F leading f16 fields (d, or d and m)
  int32_t payload_bytes;  // B - 2F
};

// The 32-element types' block format as the quant row group layout sees it
// (the CPU's QuantBlockFormat): Q5's 32-bit qh is two 16-bit fields after d
// (and m). The K-quants have none ({0, 0, 0}): they stay native.
RL_HD QuantFormat FormatOf(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return {34, 1, 32};
    case QuantType::kQ4_0:
    case QuantType::kIQ4_NL:
      return {18, 1, 16};
    case QuantType::kQ4_1:
      return {20, 2, 16};
    case QuantType::kQ5_0:
      return {22, 3, 16};
    case QuantType::kQ5_1:
      return {24, 4, 16};
    case QuantType::kQ2_K:
    case QuantType::kQ3_K:
    case QuantType::kQ4_K:
    case QuantType::kQ5_K:
    case QuantType::kQ6_K:
      break;
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

// IQ4_NL's 16 values (quant_format.h's kIQ4_NLValues), four int8 per word,
// value v in byte v % 4 of word v / 4: the byte-permute table of the GEMV.
// (A function, not an array: a host array is not visible to device code.)
RL_HD constexpr uint32_t IQ4NLWord(int32_t i) {
  return i == 0 ? 0xbfad9881u : i == 1 ? 0xf6eaddcfu : i == 2 ? 0x26190d01u : 0x71594535u;
}

RL_HD int32_t IQ4NLValue(uint32_t nibble) {
  const uint32_t word = IQ4NLWord(static_cast<int32_t>(nibble / 4));
  return static_cast<int8_t>(static_cast<uint8_t>(word >> (8 * (nibble % 4))));
}

// The integer value of element j (0..31) of a block's payload: the int8 of
// Q8_0, the nibble minus 8 of Q4_0, the nibble of Q4_1, the table value of
// IQ4_NL (byte j % 16 holds elements j and j + 16 in its low and high
// nibble, GGUF's pairing); Q5_0 and Q5_1 add bit j of qh as the fifth bit
// (Q5_0 then minus 16).
RL_HD int32_t BlockQuant(QuantType t, const uint8_t* payload, int32_t j, uint32_t qh = 0) {
  if (t == QuantType::kQ8_0) return static_cast<int8_t>(payload[j]);
  const uint8_t byte = payload[j % 16];
  const int32_t nibble = j < 16 ? (byte & 0x0f) : (byte >> 4);
  const int32_t q5 = nibble | static_cast<int32_t>(((qh >> j) & 1u) << 4);
  switch (t) {
    case QuantType::kQ4_0:
      return nibble - 8;
    case QuantType::kIQ4_NL:
      return IQ4NLValue(static_cast<uint32_t>(nibble));
    case QuantType::kQ5_0:
      return q5 - 16;
    case QuantType::kQ5_1:
      return q5;
    default:
      return nibble;
  }
}

// Float operations rounded as the host reference rounds them: nvcc would
// otherwise contract a product and a sum into one fused multiply-add.
RL_HD float MulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
RL_HD float AddRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
RL_HD float SubRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

// Element j of the 32-element block at `place` in `data`, as the reference
// dequantizers compute it: d * q (+ m for Q4_1 and Q5_1), with d and m
// converted from f16. Q5's qh is the fields after d (and m): low 16 bits,
// then high 16 bits.
RL_HD float DequantElement(QuantType t, const uint8_t* data, BlockPlace place, int32_t j) {
  const float d = HalfToFloat(LoadU16(data + place.field));
  const int32_t qh_field = t == QuantType::kQ5_0 ? 1 : 2;
  const uint32_t qh =
      t == QuantType::kQ5_0 || t == QuantType::kQ5_1
          ? static_cast<uint32_t>(LoadU16(data + place.field + qh_field * place.field_stride)) |
                (static_cast<uint32_t>(
                     LoadU16(data + place.field + (qh_field + 1) * place.field_stride))
                 << 16)
          : 0u;
  const float q = static_cast<float>(BlockQuant(t, data + place.payload, j, qh));
  if (!HasBlockMin(t)) return MulRn(d, q);
  const float m = HalfToFloat(LoadU16(data + place.field + place.field_stride));
  return AddRn(MulRn(d, q), m);
}

// ---- K-quant super-blocks (256 elements; offsets from quant_format.h) ----

// The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K's 12 scale
// bytes, given as three little-endian words s0 = bytes 0..3, s1 = 4..7,
// s2 = 8..11 (quant_format.h's KQuantScaleMin): sub-blocks 0..3 keep 6 bits
// of bytes j and j + 4; 4..7 take a nibble of byte j + 4 and the top two
// bits of bytes j - 4 and j. Written with shifts of the words so that a
// runtime j indexes no array.
RL_HD void KScaleMin(uint32_t s0, uint32_t s1, uint32_t s2, int32_t j, int32_t* sc, int32_t* m) {
  const int32_t shift = 8 * (j & 3);
  const uint32_t lo = (s0 >> shift) & 0xffu;   // byte j % 4
  const uint32_t mid = (s1 >> shift) & 0xffu;  // byte j % 4 + 4
  const uint32_t hi = (s2 >> shift) & 0xffu;   // byte j % 4 + 8
  if (j < 4) {
    *sc = static_cast<int32_t>(lo & 63u);
    *m = static_cast<int32_t>(mid & 63u);
  } else {
    *sc = static_cast<int32_t>((hi & 0x0fu) | ((lo >> 6) << 4));
    *m = static_cast<int32_t>((hi >> 4) | ((mid >> 6) << 4));
  }
}

// Q3_K's 16 six-bit scales (before the -32) from its 12 bytes as words s0,
// s1, s2: scale i has low nibble i < 8 ? byte i & 15 : byte i - 8 >> 4 and
// high two bits (byte 8 + i % 4) >> 2 (i / 4) & 3.
RL_HD int32_t Q3KScale(uint32_t s0, uint32_t s1, uint32_t s2, int32_t i) {
  const uint32_t low_word = (i & 4) ? s1 : s0;
  const uint32_t low = (low_word >> (8 * (i & 3) + 4 * (i >> 3))) & 0x0fu;
  const uint32_t high = (s2 >> (8 * (i & 3) + 2 * (i >> 2))) & 3u;
  return static_cast<int32_t>(low | (high << 4));
}

RL_HD uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(LoadU16(p)) | (static_cast<uint32_t>(LoadU16(p + 2)) << 16);
}

// Element j (0..255) of a K-quant super-block at `block` (any alignment),
// with the reference's float operations in its order (ggml's
// dequantize_row_*):
//   Q2_K: (d * sc) * q - dmin * m      Q3_K: (d * (sc - 32)) * q
//   Q4_K, Q5_K: (d * sc) * q - dmin * m    Q6_K: (d * sc) * q
// Layouts: Q2_K, Q3_K and Q6_K split the block in halves of 128 elements
// in which element 32 k + l (k = 0..3, l = 0..31) takes bits 2k of byte l
// of the half's 32 quant bytes (Q6_K: a nibble of byte l or l + 32 and bits
// 2k of qh), scale 8 half + 2 k + l / 16; Q4_K and Q5_K in chunks of 64
// elements: the chunk's 32 bytes hold element l in the low nibble
// (sub-block 2 chunk) and element 32 + l in the high one.
RL_HD float KQuantElement(QuantType t, const uint8_t* block, int32_t j) {
  const int32_t half = j / 128, k = j % 128 / 32, l = j % 32;
  switch (t) {
    case QuantType::kQ2_K: {
      const int32_t q = (block[16 + 32 * half + l] >> (2 * k)) & 3;
      const uint8_t sc = block[8 * half + 2 * k + l / 16];
      const float d = HalfToFloat(LoadU16(block + 80));
      const float dmin = HalfToFloat(LoadU16(block + 82));
      return SubRn(MulRn(MulRn(d, static_cast<float>(sc & 15)), static_cast<float>(q)),
                   MulRn(dmin, static_cast<float>(sc >> 4)));
    }
    case QuantType::kQ3_K: {
      const int32_t q2 = (block[32 + 32 * half + l] >> (2 * k)) & 3;
      const int32_t high = (block[l] >> (4 * half + k)) & 1;
      const int32_t sc = Q3KScale(LoadU32(block + 96), LoadU32(block + 100), LoadU32(block + 104),
                                  8 * half + 2 * k + l / 16) -
                         32;
      const float d = HalfToFloat(LoadU16(block + 108));
      return MulRn(MulRn(d, static_cast<float>(sc)), static_cast<float>(q2 - (high ? 0 : 4)));
    }
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      const int32_t chunk = j / 64, sub = j / 32, lc = j % 32;
      const bool q5 = t == QuantType::kQ5_K;
      const uint8_t byte = block[(q5 ? 48 : 16) + 32 * chunk + lc];
      int32_t q = (sub & 1) ? byte >> 4 : byte & 15;
      if (q5) q += ((block[16 + lc] >> sub) & 1) << 4;
      int32_t sc, m;
      KScaleMin(LoadU32(block + 4), LoadU32(block + 8), LoadU32(block + 12), sub, &sc, &m);
      const float d = HalfToFloat(LoadU16(block));
      const float dmin = HalfToFloat(LoadU16(block + 2));
      return SubRn(MulRn(MulRn(d, static_cast<float>(sc)), static_cast<float>(q)),
                   MulRn(dmin, static_cast<float>(m)));
    }
    case QuantType::kQ6_K: {
      const uint8_t low = block[64 * half + l + 32 * (k & 1)];
      const int32_t nibble = (k & 2) ? low >> 4 : low & 15;
      const int32_t q = (nibble | (((block[128 + 32 * half + l] >> (2 * k)) & 3) << 4)) - 32;
      const int32_t sc = static_cast<int8_t>(block[192 + 8 * half + 2 * k + l / 16]);
      const float d = HalfToFloat(LoadU16(block + 208));
      return MulRn(MulRn(d, static_cast<float>(sc)), static_cast<float>(q));
    }
    default:
      return 0.0f;
  }
}

// The GEMV reads a K-quant super-block in 4 units of 64 elements, each unit
// two Q8 activation blocks of 32 (a and b, indices 0..7 in the super-block)
// whose weights share quant bytes, so a lane loads each byte it needs once:
//   Q4_K, Q5_K: a = 2u, b = 2u + 1 (one chunk's low and high nibbles);
//   Q6_K: a = 4 (u / 2) + u % 2, b = a + 2 (low and high nibbles of the same
//         32 ql bytes, two bit pairs of the same qh bytes);
//   Q2_K, Q3_K: a = 4 (u / 2) + 2 (u % 2), b = a + 1 (bit pairs 2a, 2b of
//         the same 32 quant bytes).
RL_HD void KUnitBlocks(QuantType t, int32_t u, int32_t* a, int32_t* b) {
  if (t == QuantType::kQ4_K || t == QuantType::kQ5_K) {
    *a = 2 * u;
    *b = 2 * u + 1;
  } else if (t == QuantType::kQ6_K) {
    *a = 4 * (u / 2) + u % 2;
    *b = *a + 2;
  } else {
    *a = 4 * (u / 2) + 2 * (u % 2);
    *b = *a + 1;
  }
}

// Element k of row `row` of a native weight (blocks in file order,
// blocks_per_row = cols / BlockElements(t)), any type.
RL_HD float NativeElement(QuantType t, const uint8_t* data, int64_t blocks_per_row, int64_t row,
                          int64_t k) {
  const int32_t n = BlockElements(t);
  if (IsKQuant(t)) {
    return KQuantElement(t, data + (row * blocks_per_row + k / n) * BlockBytes(t),
                         static_cast<int32_t>(k % n));
  }
  return DequantElement(t, data, NativeBlockPlace(t, blocks_per_row, row, k / n),
                        static_cast<int32_t>(k % n));
}

}  // namespace relayout::cuda
