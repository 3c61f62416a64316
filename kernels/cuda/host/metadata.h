// The host-side checks of an op's per-call metadata (kernels/device_abi.h:
// token ids, positions, attention spans and their block tables), made
// before anything is copied to the device: a bad id must come back as
// RL_INVALID_ARGUMENT with a message naming it, not become an out-of-bounds
// read in a kernel. Plain C++ over the ABI's C structs, tested without a
// GPU; every function returns "" when the metadata is good, else the
// message (without the "cuda: " prefix).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/device_abi.h"

namespace relayout::cuda {

// Every token in [0, vocab).
std::string CheckTokens(const int32_t* tokens, int64_t n, int64_t vocab);

// Every position in [0, INT32_MAX - 1] (a row attends to positions up to
// its own, and the kernels count positions in int32).
std::string CheckPositions(const int32_t* positions, int64_t rows);

// The attention shape: heads, grouped KV heads, block size, pool, KV type.
std::string CheckAttentionParams(const rl_attention_params* p);

// What the spans of one call add up to (valid only when CheckSpans passed).
struct SpanSummary {
  int64_t rows = 0;             // batch rows they cover: max(first_row + rows)
  int64_t longest_context = 0;  // max(start_position + rows) over non-empty spans
  int64_t max_blocks = 0;       // max blocks of a span's table that are read
  int64_t max_span_rows = 0;    // the longest span (prefill: its rows)
  int64_t total_rows = 0;       // sum of rows
};

// The blocks of a span's table that are read: ceil((start_position + rows)
// / block_size), 0 for an empty span.
int64_t SpanBlocks(const rl_attention_span& s, int32_t block_size);

// Spans as kernels/cpu reads them: rows, first_row, start_position >= 0, a
// table for every non-empty span whose first SpanBlocks entries lie in [0,
// pool_blocks), contexts that fit int32. `p` passed CheckAttentionParams.
std::string CheckSpans(const rl_attention_params* p, const rl_attention_span* spans,
                       int64_t num_spans, SpanSummary* out);

// Writes the block tables of the spans into `out`, `stride` entries per span
// (stride >= every span's SpanBlocks), padding with block 0 (a valid block:
// a kernel that reads past a table stays inside the pool).
void FlattenBlockTables(const rl_attention_span* spans, int64_t num_spans, int32_t block_size,
                        int64_t stride, int32_t* out);

}  // namespace relayout::cuda
