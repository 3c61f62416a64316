#include "kernels/cuda/host/metadata.h"

#include <algorithm>
#include <climits>

namespace relayout::cuda {

namespace {
std::string S(int64_t v) { return std::to_string(v); }
}  // namespace

std::string CheckTokens(const int32_t* tokens, int64_t n, int64_t vocab) {
  if (n < 0) return "negative token count " + S(n);
  if (n > 0 && tokens == nullptr) return "null token ids";
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return "token " + S(i) + " is " + S(tokens[i]) + ", outside the vocabulary [0, " + S(vocab) +
             ")";
    }
  }
  return "";
}

std::string CheckPositions(const int32_t* positions, int64_t rows) {
  if (rows < 0) return "negative row count " + S(rows);
  if (rows > 0 && positions == nullptr) return "null positions";
  for (int64_t i = 0; i < rows; ++i) {
    if (positions[i] < 0 || positions[i] == INT32_MAX) {
      return "position " + S(i) + " is " + S(positions[i]) + ", outside [0, " + S(INT32_MAX) + ")";
    }
  }
  return "";
}

std::string CheckAttentionParams(const rl_attention_params* p) {
  if (p == nullptr) return "null attention params";
  if (p->num_heads < 1 || p->num_kv_heads < 1 || p->head_dim < 1 || p->block_size < 1 ||
      p->pool_blocks < 1) {
    return "attention params: heads " + S(p->num_heads) + ", kv heads " + S(p->num_kv_heads) +
           ", head_dim " + S(p->head_dim) + ", block_size " + S(p->block_size) + ", pool_blocks " +
           S(p->pool_blocks) + " (each must be >= 1)";
  }
  if (p->num_heads % p->num_kv_heads != 0) {
    return "attention params: " + S(p->num_kv_heads) + " kv heads do not divide " +
           S(p->num_heads) + " heads";
  }
  if (p->kv_dtype != RL_KV_F32 && p->kv_dtype != RL_KV_F16) {
    return "attention params: unknown kv_dtype " + S(p->kv_dtype);
  }
  if (p->pool_blocks > INT32_MAX) {
    return "attention params: pool_blocks " + S(p->pool_blocks) + " past int32 block ids";
  }
  return "";
}

int64_t SpanBlocks(const rl_attention_span& s, int32_t block_size) {
  if (s.rows == 0) return 0;
  return (s.start_position + s.rows + block_size - 1) / block_size;
}

std::string CheckSpans(const rl_attention_params* p, const rl_attention_span* spans,
                       int64_t num_spans, SpanSummary* out) {
  *out = SpanSummary{};
  if (num_spans < 0) return "negative span count " + S(num_spans);
  if (num_spans > 0 && spans == nullptr) return "null spans";
  // Bounds that keep every sum below in int64 and every position in int32.
  constexpr int64_t kMaxRow = int64_t{1} << 40;
  for (int64_t i = 0; i < num_spans; ++i) {
    const rl_attention_span& s = spans[i];
    const std::string span = "span " + S(i) + ": ";
    if (s.rows < 0 || s.first_row < 0 || s.start_position < 0) {
      return span + "first_row " + S(s.first_row) + ", rows " + S(s.rows) + ", start_position " +
             S(s.start_position) + " (each must be >= 0)";
    }
    if (s.rows == 0) continue;  // nothing read or written: its table is not looked at
    if (s.first_row > kMaxRow || s.rows > kMaxRow) return span + "rows past 2^40";
    if (s.start_position > INT32_MAX - s.rows) {
      return span + "positions up to " + S(s.start_position + s.rows) + " past int32";
    }
    if (s.block_table == nullptr) return span + "null block table";
    const int64_t blocks = SpanBlocks(s, p->block_size);
    for (int64_t b = 0; b < blocks; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= p->pool_blocks) {
        return span + "block_table[" + S(b) + "] is " + S(s.block_table[b]) +
               ", outside the pool's [0, " + S(p->pool_blocks) + ")";
      }
    }
    out->rows = std::max(out->rows, s.first_row + s.rows);
    out->longest_context = std::max(out->longest_context, s.start_position + s.rows);
    out->max_blocks = std::max(out->max_blocks, blocks);
    out->max_span_rows = std::max(out->max_span_rows, s.rows);
    out->total_rows += s.rows;
  }
  return "";
}

void FlattenBlockTables(const rl_attention_span* spans, int64_t num_spans, int32_t block_size,
                        int64_t stride, int32_t* out) {
  for (int64_t i = 0; i < num_spans; ++i) {
    int32_t* row = out + i * stride;
    const int64_t blocks = SpanBlocks(spans[i], block_size);
    std::copy(spans[i].block_table, spans[i].block_table + blocks, row);
    std::fill(row + blocks, row + stride, 0);
  }
}

}  // namespace relayout::cuda
