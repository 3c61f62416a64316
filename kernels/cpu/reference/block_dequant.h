// Dequantization of ONE GGUF block from its fields, for layouts that store a
// block's scale(s) and quants apart (the quantized row-group interleave).
//
// Kept separate from dequant.h on purpose while the row-wise dequantizers
// (DequantizeRowQ8_0/Q4_0/Q4_1) land there from another branch; the formulas
// are the GGUF ones and must stay identical to them, so the two can be merged
// into dequant.h (these becoming the per-block helpers of the row functions).
#pragma once

#include <cstdint>

namespace relayout::kernels::reference {

inline constexpr int kBlockElems = 32;

// out[j] = d * qs[j] (qs read as int8), j in [0, 32).
void DequantizeQ8_0Fields(uint16_t d, const uint8_t* qs, float* out);
// out[j] = d * (nib_j - 8), where byte j of the 16 qs holds element j in its
// low nibble and element j + 16 in its high nibble.
void DequantizeQ4_0Fields(uint16_t d, const uint8_t* qs, float* out);
// out[j] = d * nib_j + m, nibbles as for Q4_0.
void DequantizeQ4_1Fields(uint16_t d, uint16_t m, const uint8_t* qs, float* out);

}  // namespace relayout::kernels::reference
