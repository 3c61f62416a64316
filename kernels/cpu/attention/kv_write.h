// KvWrite: a batch's K and V rows into the paged KV pools that
// paged_attention.h reads.
//
//   k, v   [rows, kv_dim] floats, the batch's rows (every span's rows at
//          first_row)
//   pools  [num_blocks, block_size, kv_dim] of `elem` (F32 copied, F16
//          rounded to nearest even)
// Row first_row + i of a span goes to the slot of position start_position
// + i: block block_table[pos / block_size], offset pos % block_size.
//
// Thread safety: pure function of its inputs; spans must not share a slot.
#pragma once

#include <cstdint>

#include "kernels/cpu/attention/paged_attention.h"

namespace relayout::kernels {

// False (nothing written) when a dimension is not positive, a block id is
// negative or not below num_blocks, or an argument is null.
[[nodiscard]] bool KvWrite(int64_t kv_dim, int64_t block_size, int64_t num_blocks, KvElem elem,
                           const float* k, const float* v, const AttentionSpan* spans,
                           int64_t num_spans, void* k_pool, void* v_pool);

}  // namespace relayout::kernels
