// Reference GEMV, y[N] = W[N, K] x[K], for every (dtype, layout) pair the
// relayout engine produces. Scalar and never optimised: the fast kernels and
// the layout tests compare against these.
//
// Numerics: each y[n] is accumulated in float over k ascending (quantized
// weights dequantized one block at a time with dequant.h), whatever the
// layout. So a layout's GEMV and the common layout's GEMV give bit-identical
// y for the same weights: any difference is a layout bug, not rounding.
//
// REQUIRES (all): w holds the tensor in the named layout, x has K floats, y
// has N floats, and the params are valid for the layout's kernel header.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/layout/bf16_kpair.h"
#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/layout/row_group_interleave.h"

namespace relayout::kernels::reference {

enum class FloatElem : uint8_t { kF32, kF16, kBF16 };
enum class QuantKind : uint8_t {
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kIQ4_NL,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};

// The block as the quantized row-group interleave sees it (2-byte fields,
// then a payload). K-quant super-blocks are one opaque payload.
QuantBlockFormat QuantBlockFormatOf(QuantKind kind);
// Elements per block: 32, or 256 for the K-quants.
int QuantBlockElems(QuantKind kind);

// Row-major [N, K] elements.
void GemvRowMajor(FloatElem elem, const void* w, size_t rows, size_t cols, const float* x,
                  float* y);
// Row-group interleave; REQUIRES: layout.elem_bytes matches elem.
void GemvRowGroup(FloatElem elem, const RowGroupParams& layout, const void* w, const float* x,
                  float* y);
// BF16 K-pair interleave.
void GemvBf16KPair(const Bf16KPairParams& layout, const void* w, const float* x, float* y);
// GGUF blocks in file order, K = blocks_per_row * QuantBlockElems(kind).
void GemvGgufBlocks(QuantKind kind, const void* w, size_t rows, size_t blocks_per_row,
                    const float* x, float* y);
// Quantized row-group interleave; REQUIRES: layout.format == QuantBlockFormatOf(kind).
void GemvQuantRowGroup(QuantKind kind, const QuantRowGroupParams& layout, const void* w,
                       const float* x, float* y);

}  // namespace relayout::kernels::reference
