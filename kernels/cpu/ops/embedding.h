// Embedding lookup: one dequantized table row per token.
//   table  [vocab, dim] in the common layout of `type` (row-major floats, or
//          GGUF blocks in file order: a row is dim / 32, or dim / 256 for
//          the K-quants, whole blocks)
//   out    [n, dim]:  out[t, :] = dequant(table[ids[t], :])
// Rows go through the reference row dequantizers (reference/dequant.h), so
// they equal what the matmul reference reads for the same bytes.
//
// Thread safety: a pure function of its inputs.
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul/matmul.h"

namespace relayout::kernels {

// Bytes of one row of dim elements of type; 0 when dim does not divide into
// the type's blocks or is not positive.
int64_t EmbeddingRowBytes(WeightType type, int64_t dim);

// Returns false, writing nothing, when an id is outside [0, vocab) or
// EmbeddingRowBytes(type, dim) is 0. REQUIRES: table holds vocab rows.
[[nodiscard]] bool EmbeddingRows(const void* table, WeightType type, int64_t vocab, int64_t dim,
                                 const int32_t* ids, int64_t n, float* out);

}  // namespace relayout::kernels
