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
// its high nibble. The K-quants (super-blocks of 256) are listed by size only.
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

// K-quant super-block sizes in bytes (256 elements each), from the format.
inline constexpr size_t kBlockQ2_KBytes = 84;
inline constexpr size_t kBlockQ3_KBytes = 110;
inline constexpr size_t kBlockQ4_KBytes = 144;
inline constexpr size_t kBlockQ5_KBytes = 176;
inline constexpr size_t kBlockQ6_KBytes = 210;
inline constexpr size_t kBlockQ8_KBytes = 292;

}  // namespace relayout::kernels
