#include "kernels/cpu/attention/kv_write.h"

#include <cstring>

#include "kernels/cpu/layout/widen.h"

namespace relayout::kernels {
namespace {

bool SpansValid(int64_t block_size, int64_t num_blocks, const AttentionSpan* spans,
                int64_t num_spans) {
  for (int64_t s = 0; s < num_spans; ++s) {
    const AttentionSpan& span = spans[s];
    if (span.rows < 0 || span.first_row < 0 || span.start_position < 0) return false;
    if (span.rows == 0) continue;
    if (span.block_table == nullptr) return false;
    const int64_t first_block = span.start_position / block_size;
    const int64_t last_block = (span.start_position + span.rows - 1) / block_size;
    for (int64_t b = first_block; b <= last_block; ++b) {
      if (span.block_table[b] < 0 || span.block_table[b] >= num_blocks) return false;
    }
  }
  return true;
}

}  // namespace

bool KvWrite(int64_t kv_dim, int64_t block_size, int64_t num_blocks, KvElem elem, const float* k,
             const float* v, const AttentionSpan* spans, int64_t num_spans, void* k_pool,
             void* v_pool) {
  if (kv_dim <= 0 || block_size <= 0 || num_blocks <= 0 || num_spans < 0 || k == nullptr ||
      v == nullptr || k_pool == nullptr || v_pool == nullptr ||
      (num_spans > 0 && spans == nullptr) ||
      !SpansValid(block_size, num_blocks, spans, num_spans)) {
    return false;
  }
  const size_t n = static_cast<size_t>(kv_dim);
  for (int64_t s = 0; s < num_spans; ++s) {
    const AttentionSpan& span = spans[s];
    for (int64_t i = 0; i < span.rows; ++i) {
      const int64_t pos = span.start_position + i;
      const int64_t slot =
          (int64_t{span.block_table[pos / block_size]} * block_size + pos % block_size) * kv_dim;
      const float* k_row = k + (span.first_row + i) * kv_dim;
      const float* v_row = v + (span.first_row + i) * kv_dim;
      if (elem == KvElem::kF16) {
        NarrowF32ToF16(k_row, static_cast<uint16_t*>(k_pool) + slot, n);
        NarrowF32ToF16(v_row, static_cast<uint16_t*>(v_pool) + slot, n);
      } else {
        std::memcpy(static_cast<float*>(k_pool) + slot, k_row, n * sizeof(float));
        std::memcpy(static_cast<float*>(v_pool) + slot, v_row, n * sizeof(float));
      }
    }
  }
  return true;
}

}  // namespace relayout::kernels
