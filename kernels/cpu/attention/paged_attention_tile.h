// The tiled body of PagedAttention, compiled once per ISA
// (paged_attention.cc: portable; paged_attention_avx2.cc,
// paged_attention_avx512.cc: with their -m flags), each with its own Ops:
//   Scores(q, stride, count, kt, hd, w, s)
//                               for c < count (the GQA heads of one row, whose
//                               queries are `stride` floats apart):
//                               s[c * w + j] = sum_d q[c * stride + d] * kt[d * w + j]
//                               (w a multiple of 16: K transposed, so the
//                               positions lie along the vector lanes, and each
//                               row of kt serves all `count` heads)
//   AccumulatePv(p, n, v, hd, a) a[d] += sum_{j<n} p[j] * v[j * hd + d]
//   Scale(c, y, n)               y[i] *= c
//   WidenF16(src, dst, n)
//   Exp(x, n)           x[i] = exp(x[i]), for x[i] <= 0 (scores minus their max)
//
// One tile is (one sequence span, one KV head, up to kTileRows query rows).
// Each K/V block of that head is converted to float once per tile and then
// serves all the tile's rows and all `group` query heads sharing the KV head
// (GQA), instead of once per (row, head): that sharing is what makes a long
// prefill's attention cheap. Per (row, head) the softmax runs online (a
// running maximum and sum), so no score row is kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/attention/paged_attention.h"

namespace relayout::kernels::attention_internal {

inline constexpr int64_t kTileRows = 64;

struct Tile {
  const AttentionSpan* span = nullptr;
  int64_t kv_head = 0;
  int64_t row_begin = 0;  // rows of the span, [row_begin, row_end)
  int64_t row_end = 0;
};

using TileFn = void (*)(const PagedAttentionParams& p, const float* q, const Tile& tile,
                        const void* k_pool, const void* v_pool, float* out);

namespace {

template <typename Ops>
void RunTile(const PagedAttentionParams& p, const float* q, const Tile& tile, const void* k_pool,
             const void* v_pool, float* out) {
  const int64_t hd = p.head_dim;
  const int64_t kv_dim = p.n_kv_heads * hd;
  const int64_t group = p.n_heads / p.n_kv_heads;
  const int64_t q_dim = p.n_heads * hd;
  const int64_t bs = p.block_size;
  const AttentionSpan& span = *tile.span;
  const int64_t rows = tile.row_end - tile.row_begin;
  const int64_t states = rows * group;
  // Per-thread scratch, grown once and reused by every tile this thread runs.
  thread_local std::vector<float> buffer;
  const int64_t width = (bs + 15) / 16 * 16;  // kt's row length
  const size_t need =
      static_cast<size_t>(states * (hd + 2) + 2 * bs * hd + width * hd + group * width);
  if (buffer.size() < need) buffer.resize(need);
  float* acc = buffer.data();
  float* running_max = acc + states * hd;
  float* running_sum = running_max + states;
  float* kbuf = running_sum + states;
  float* vbuf = kbuf + bs * hd;
  float* kt = vbuf + bs * hd;  // [hd][width], the block's K transposed
  float* scores = kt + width * hd;
  std::fill(acc, acc + states * hd, 0.0f);
  std::fill(running_max, running_max + states, -std::numeric_limits<float>::infinity());
  std::fill(running_sum, running_sum + states, 0.0f);

  const int64_t first_pos = span.start_position + tile.row_begin;
  const int64_t last_pos = span.start_position + tile.row_end - 1;
  const bool f16 = p.kv_elem == KvElem::kF16;
  for (int64_t b = 0; b * bs <= last_pos; ++b) {
    const int64_t n = std::min(bs, last_pos + 1 - b * bs);
    const int64_t base =
        static_cast<int64_t>(span.block_table[b]) * bs * kv_dim + tile.kv_head * hd;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = base + j * kv_dim;
      if (f16) {
        Ops::WidenF16(static_cast<const uint16_t*>(k_pool) + at, kbuf + j * hd, hd);
        Ops::WidenF16(static_cast<const uint16_t*>(v_pool) + at, vbuf + j * hd, hd);
      } else {
        std::memcpy(kbuf + j * hd, static_cast<const float*>(k_pool) + at, sizeof(float) * hd);
        std::memcpy(vbuf + j * hd, static_cast<const float*>(v_pool) + at, sizeof(float) * hd);
      }
    }
    for (int64_t d = 0; d < hd; ++d) {
      float* row = kt + d * width;
      for (int64_t j = 0; j < n; ++j) row[j] = kbuf[j * hd + d];
      for (int64_t j = n; j < width; ++j) row[j] = 0.0f;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = first_pos + r;
      const int64_t visible = std::min(n, pos - b * bs + 1);  // causal
      if (visible <= 0) continue;
      const float* q_row =
          q + (span.first_row + tile.row_begin + r) * q_dim + tile.kv_head * group * hd;
      Ops::Scores(q_row, hd, group, kt, hd, width, scores);
      for (int64_t h = 0; h < group; ++h) {
        const int64_t s = r * group + h;
        float* head_scores = scores + h * width;
        float block_max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          head_scores[j] *= p.scale;
          block_max = std::max(block_max, head_scores[j]);
        }
        float* a = acc + s * hd;
        if (block_max > running_max[s]) {
          // exp(-inf) is 0: the first block rescales an all-zero accumulator.
          const float c = std::exp(running_max[s] - block_max);
          running_sum[s] *= c;
          Ops::Scale(c, a, hd);
          running_max[s] = block_max;
        }
        for (int64_t j = 0; j < visible; ++j) head_scores[j] -= running_max[s];
        Ops::Exp(head_scores, visible);
        for (int64_t j = 0; j < visible; ++j) running_sum[s] += head_scores[j];
        Ops::AccumulatePv(head_scores, visible, vbuf, hd, a);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < group; ++h) {
      const int64_t s = r * group + h;
      float* o =
          out + (span.first_row + tile.row_begin + r) * q_dim + (tile.kv_head * group + h) * hd;
      const float inv = 1.0f / running_sum[s];
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[s * hd + d] * inv;
    }
  }
}

}  // namespace

// Defined in the per-ISA files; each returns null where its file was built
// without that ISA.
TileFn Avx2TileFn();
TileFn Avx512TileFn();

}  // namespace relayout::kernels::attention_internal
