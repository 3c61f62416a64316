// Byte layouts of the GGUF (ggml) quantization blocks, in file order.
//
// This is the common layout of quantized tensors: a row of K elements is K/32
// consecutive blocks; rows follow each other. The checkpoint readers size
// tensors with these constants and the kernels and transforms read blocks
// through these structs, so the two can never disagree.
//
//   Q8_0 (34 bytes / 32 elems):  f16 d;           int8  qs[32];   x = d * q
//   Q4_0 (18 bytes / 32 elems):  f16 d;           uint8 qs[16];   x = d * (nib - 8)
//   Q4_1 (20 bytes / 32 elems):  f16 d; f16 m;    uint8 qs[16];   x = d * nib + m
//   Q5_0 (22 bytes / 32 elems):  f16 d; u8 qh[4]; uint8 qs[16];   x = d * (q5 - 16)
//   Q5_1 (24 bytes / 32 elems):  f16 d; f16 m; u8 qh[4]; u8 qs[16]; x = d * q5 + m
// In Q4 blocks, byte j holds element j in its low nibble and element j + 16 in
// its high nibble.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relayout::kernels {

inline constexpr int kQK = 32;    // elements per Q4/Q5/Q8 block
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;  // f16 bits
  int8_t qs[kQK];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// IQ4_NL: 4-bit indices into a fixed non-linear table of 16 values, one
// half-precision scale per 32 elements; nibbles paired as in Q4_0.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
inline constexpr int8_t kIQ4_NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 18 bytes in GGUF");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes in GGUF");
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes in GGUF");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes in GGUF");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 22 bytes in GGUF");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 24 bytes in GGUF");

// K-quant super-blocks: 256 elements in sub-blocks of 16 or 32, each with
// small integer scales (and mins) under one or two f16 super-block scales.
// Field order is the file's; the formulas are ggml's dequantize_row_*:
//   Q2_K: x = d * (scales[s] & 15) * q2 - dmin * (scales[s] >> 4), s per 16
//   Q3_K: x = d * (scale6[s] - 32) * (q2 - (hmask bit set ? 0 : 4)), s per 16
//   Q4_K: x = d * sc6[s] * q4 - dmin * m6[s], s per 32 (scales: 12 bytes
//         packing 8 six-bit scales and 8 six-bit mins)
//   Q5_K: as Q4_K with a fifth bit from qh
//   Q6_K: x = d * scales[s] * (q6 - 32), s per 16
//   Q8_K: the activation type: x = d * qs, bsums[i] = sum of qs[16i..16i+15]
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // low nibble scale, high nibble min
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

// K-quant super-block sizes in bytes (256 elements each), from the format.
inline constexpr size_t kBlockQ2_KBytes = 84;
inline constexpr size_t kBlockQ3_KBytes = 110;
inline constexpr size_t kBlockQ4_KBytes = 144;
inline constexpr size_t kBlockQ5_KBytes = 176;
inline constexpr size_t kBlockQ6_KBytes = 210;
inline constexpr size_t kBlockQ8_KBytes = 292;
static_assert(sizeof(BlockQ2_K) == kBlockQ2_KBytes, "Q2_K block is 84 bytes in GGUF");
static_assert(sizeof(BlockQ3_K) == kBlockQ3_KBytes, "Q3_K block is 110 bytes in GGUF");
static_assert(sizeof(BlockQ4_K) == kBlockQ4_KBytes, "Q4_K block is 144 bytes in GGUF");
static_assert(sizeof(BlockQ5_K) == kBlockQ5_KBytes, "Q5_K block is 176 bytes in GGUF");
static_assert(sizeof(BlockQ6_K) == kBlockQ6_KBytes, "Q6_K block is 210 bytes in GGUF");
static_assert(sizeof(BlockQ8_K) == kBlockQ8_KBytes, "Q8_K block is 292 bytes in GGUF");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's
// 12-byte `scales` (ggml's get_scale_min_k4). Internal linkage on purpose:
// the per-ISA kernel files include this header, and an inline function with
// external linkage compiled with AVX-512 flags could be the copy the linker
// keeps for every caller (kernels/cpu/matmul/matmul_internal.h).
static inline void KQuantScaleMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace relayout::kernels
