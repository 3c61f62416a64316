// Quantized row-group interleave of a GGUF-block matrix W[N, K] (Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1, IQ4_NL: K / 32 blocks per row; Q2_K..Q6_K: K / 256
// super-blocks), and its inverse.
//
// Byte layout (docs/LAYOUTS.md has diagrams). With G = group_rows, a block of
// B bytes that starts with F f16 scale fields (d, or d and m) and ends with a
// payload of P = B - 2F quant bytes:
//   - rows are taken in groups of G; inside a full group, for each block
//     column b, the G rows' blocks b are stored together as one "group block"
//     of G*B bytes: field 0 of rows 0..G-1, then field 1 of rows 0..G-1, ...,
//     then the payloads of rows 0..G-1, each payload unchanged:
//       Q8_0 x G: f16 d[G];          int8  qs[G][32]
//       Q4_0 x G: f16 d[G];          uint8 qs[G][16]
//       Q4_1 x G: f16 d[G]; f16 m[G]; uint8 qs[G][16]
//       Q5_0 x G: f16 d[G]; u16 qh_lo[G]; u16 qh_hi[G]; uint8 qs[G][16]
//       Q5_1 x G: f16 d[G]; f16 m[G]; u16 qh_lo[G]; u16 qh_hi[G]; uint8 qs[G][16]
//       IQ4_NL x G: as Q4_0
//       Q2_K..Q6_K x G: the G super-blocks unchanged (F = 0: their scales
//         sit inside the block and are unpacked with it)
//   - the N % G tail rows stay in the GGUF block layout after the last group.
// Why: an AVX2 GEMV converts the G scales of a group block with one vcvtph2ps
// and, for Q4, one 32-byte load gives the nibbles of 2 rows (row r in the low
// 128-bit lane, row r+1 in the high one); `& 0x0f` yields elements 0..15 of
// both rows and `>> 4` elements 16..31, matching GGUF's own nibble pairing
// (byte j = element j | element j+16 << 4), so no nibble needs reordering and
// the transform stays a pure byte permutation of the same size.
//
// Group numbering, the tail pseudo-group, return values and pointer
// requirements are as in row_group_interleave.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relayout::kernels {

// The shape of one quantization block as the interleave sees it.
struct QuantBlockFormat {
  uint32_t block_bytes = 0;   // B
  uint32_t scale_fields = 0;  // F leading 2-byte fields; the rest is payload
};

inline constexpr QuantBlockFormat kQ8_0BlockFormat{34, 1};
inline constexpr QuantBlockFormat kQ4_0BlockFormat{18, 1};
inline constexpr QuantBlockFormat kQ4_1BlockFormat{20, 2};
// Q5: the 4 bytes of fifth bits count as two fields (their low and high 16
// bits), so the payload is the 16 nibble bytes as in Q4 and the kernels read
// the group's nibbles the same way.
inline constexpr QuantBlockFormat kQ5_0BlockFormat{22, 3};
inline constexpr QuantBlockFormat kQ5_1BlockFormat{24, 4};
inline constexpr QuantBlockFormat kIQ4_NLBlockFormat{18, 1};

struct QuantRowGroupParams {
  size_t rows = 0;            // N
  size_t blocks_per_row = 0;  // K / 32
  QuantBlockFormat format;
  size_t group_rows = 0;  // G >= 1
};

// True when group_rows and block_bytes are non-zero, 2 * scale_fields <
// block_bytes, and the tensor's byte size fits in size_t.
bool QuantRowGroupParamsValid(const QuantRowGroupParams& p);
// N * blocks_per_row * block_bytes.
size_t QuantRowGroupTensorBytes(const QuantRowGroupParams& p);
// N / G full groups, plus one when N % G != 0.
size_t QuantRowGroupCount(const QuantRowGroupParams& p);
// G * blocks_per_row * block_bytes when N >= G, else 0.
size_t QuantRowGroupScratchBytes(const QuantRowGroupParams& p);

[[nodiscard]] bool QuantRowGroupForward(const void* src, void* dst, const QuantRowGroupParams& p,
                                        size_t first_group, size_t num_groups);
[[nodiscard]] bool QuantRowGroupInverse(const void* src, void* dst, const QuantRowGroupParams& p,
                                        size_t first_group, size_t num_groups);
[[nodiscard]] bool QuantRowGroupForwardInPlace(void* data, const QuantRowGroupParams& p,
                                               size_t first_group, size_t num_groups, void* scratch,
                                               size_t scratch_bytes);
[[nodiscard]] bool QuantRowGroupInverseInPlace(void* data, const QuantRowGroupParams& p,
                                               size_t first_group, size_t num_groups, void* scratch,
                                               size_t scratch_bytes);

}  // namespace relayout::kernels
