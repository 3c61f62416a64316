#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace relayout::kernels {
namespace {

// One query head of one row: the online-softmax pass over its positions.
void AttendOne(const PagedAttentionParams& p, const float* q, const int32_t* block_table,
               int64_t last_position, int64_t kv_head, const float* k_pool, const float* v_pool,
               float* out) {
  const int64_t hd = p.head_dim;
  const int64_t kv_dim = p.n_kv_heads * hd;
  const int64_t length = last_position + 1;
  float scores[kMaxAttentionBlockSize];
  float running_max = -std::numeric_limits<float>::infinity();
  float running_sum = 0.0f;
  std::fill(out, out + hd, 0.0f);
  for (int64_t b = 0; b * p.block_size < length; ++b) {
    const int64_t n = std::min(p.block_size, length - b * p.block_size);
    const int64_t base =
        static_cast<int64_t>(block_table[b]) * p.block_size * kv_dim + kv_head * hd;
    const float* kb = k_pool + base;
    const float* vb = v_pool + base;
    float block_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      const float* k = kb + j * kv_dim;
      float dot = 0.0f;
      for (int64_t d = 0; d < hd; ++d) dot += q[d] * k[d];
      scores[j] = dot * p.scale;
      block_max = std::max(block_max, scores[j]);
    }
    if (block_max > running_max) {
      // exp(-inf) is 0: the first block rescales an all-zero accumulator.
      const float c = std::exp(running_max - block_max);
      running_sum *= c;
      for (int64_t d = 0; d < hd; ++d) out[d] *= c;
      running_max = block_max;
    }
    for (int64_t j = 0; j < n; ++j) {
      const float w = std::exp(scores[j] - running_max);
      running_sum += w;
      const float* v = vb + j * kv_dim;
      for (int64_t d = 0; d < hd; ++d) out[d] += w * v[d];
    }
  }
  const float inv = 1.0f / running_sum;
  for (int64_t d = 0; d < hd; ++d) out[d] *= inv;
}

}  // namespace

bool PagedAttention(const PagedAttentionParams& params, const float* q, const AttentionSpan* spans,
                    int64_t num_spans, const float* k_pool, const float* v_pool, float* out,
                    ThreadPool* pool) {
  if (params.n_heads <= 0 || params.n_kv_heads <= 0 || params.head_dim <= 0 ||
      params.n_heads % params.n_kv_heads != 0 || params.block_size <= 0 ||
      params.block_size > kMaxAttentionBlockSize || num_spans < 0) {
    return false;
  }
  if (num_spans == 0) return true;
  const int64_t total_rows = spans[num_spans - 1].first_row + spans[num_spans - 1].rows;
  const int64_t group = params.n_heads / params.n_kv_heads;
  const int64_t q_dim = params.n_heads * params.head_dim;
  auto task = [&](int64_t t) {
    const int64_t row = t / params.n_heads;
    const int64_t head = t % params.n_heads;
    // The last span starting at or before row.
    const AttentionSpan* span =
        std::upper_bound(spans, spans + num_spans, row,
                         [](int64_t r, const AttentionSpan& s) { return r < s.first_row; }) -
        1;
    const int64_t position = span->start_position + (row - span->first_row);
    const int64_t offset = row * q_dim + head * params.head_dim;
    AttendOne(params, q + offset, span->block_table, position, head / group, k_pool, v_pool,
              out + offset);
  };
  const int64_t tasks = total_rows * params.n_heads;
  if (pool == nullptr) {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    pool->Run(tasks, task);
  }
  return true;
}

}  // namespace relayout::kernels
