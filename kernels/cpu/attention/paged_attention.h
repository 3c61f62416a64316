// Causal grouped-query attention over a paged KV cache, whose elements are
// F32 or F16 (KvElem); scores and the weighted sum are computed in float.
//
// Shapes (row-major):
//   q, out   [rows, n_heads * head_dim]    the batch's query rows, RoPE applied
//   k_pool   [num_blocks, block_size, n_kv_heads * head_dim]   one layer's keys
//   v_pool   same shape, the values
// The rows are split into spans, one per sequence: span s covers rows
// [first_row, first_row + rows), its row i sits at position
// start_position + i, and its block table maps position p to pool block
// block_table[p / block_size], slot p % block_size. Keys and values of every
// position up to the span's last one must already be in the pool (the
// caller writes the batch's own K/V before calling).
//
// For query row r of span s at position P, head h, kv head g = h / (n_heads /
// n_kv_heads):
//   score_j = scale * q[r, h] . k[j, g]          j in [0, P]  (causal)
//   out[r, h] = sum_j softmax(score)_j * v[j, g]
// computed block by block with a running maximum and sum (one pass over the
// cache, no score buffer), which equals the two-pass softmax to rounding.
//
// (row, head) pairs run in parallel on `pool` (null: the calling thread).
//
// Thread safety: reads its inputs, writes only out.
#pragma once

#include <cstdint>

#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout::kernels {

struct AttentionSpan {
  int64_t first_row = 0;
  int64_t rows = 0;
  int64_t start_position = 0;
  const int32_t* block_table = nullptr;  // covers positions [0, start_position + rows)
};

// Largest block_size the kernel takes (a block's scores live on the stack).
inline constexpr int64_t kMaxAttentionBlockSize = 256;

enum class KvElem : uint8_t { kF32, kF16 };

struct PagedAttentionParams {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // divides n_heads
  int64_t head_dim = 0;
  int64_t block_size = 0;         // tokens per block, in [1, kMaxAttentionBlockSize]
  float scale = 1.0f;             // usually 1 / sqrt(head_dim)
  KvElem kv_elem = KvElem::kF32;  // the pools' element type
};

// REQUIRES: spans sorted by first_row, covering [0, total rows) without gaps
// or overlap; the parameters as documented above. Returns false, writing
// nothing, when the head counts or block size are out of range.
[[nodiscard]] bool PagedAttention(const PagedAttentionParams& params, const float* q,
                                  const AttentionSpan* spans, int64_t num_spans, const void* k_pool,
                                  const void* v_pool, float* out, ThreadPool* pool);

}  // namespace relayout::kernels
