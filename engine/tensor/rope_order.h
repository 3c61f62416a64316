// The two row orders of RoPE'd projections (attn_q, attn_k) in checkpoints.
//
// RoPE rotates pairs of a head's dims. Meta's original weights and GGUF pair
// neighbours (2i, 2i+1); Hugging Face checkpoints pair halves (i, i + d/2),
// their converters having permuted q/k rows. Within head h of head_dim d:
//   interleaved (GGUF) row  h*d + 2*i + j   ==   rotate-half (HF) row  h*d + j*(d/2) + i
// for i in [0, d/2), j in {0, 1}. The engine does not permute: the RoPE
// kernel applies the pairing of the container the rows came from (so q/k
// stay as stored, in whatever layout the relayout chose). ReorderRopeRows
// is how tests compare the same model's tensors across the two containers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/base/status.h"

namespace relayout {

enum class RopeOrder { kInterleaved, kRotateHalf };

// Reorders the rows of a [n_heads * head_dim, *] matrix of rows of row_bytes
// bytes each, in place, from `from` to `to` order, one head at a time using
// `scratch` of HeadRowsBytes() bytes. InvalidArgument if the sizes disagree.
Status ReorderRopeRows(std::span<std::byte> data, int64_t n_heads, int64_t head_dim,
                       uint64_t row_bytes, RopeOrder from, RopeOrder to,
                       std::span<std::byte> scratch);

inline uint64_t RopeReorderScratchBytes(int64_t head_dim, uint64_t row_bytes) {
  return static_cast<uint64_t>(head_dim) * row_bytes;
}

}  // namespace relayout
