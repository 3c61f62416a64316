// ServingRequest: one generation request to the ServingEngine, the shared
// vocabulary of its results (ServingToken, FinishReason), and the checks
// that run before anything is allocated for it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/finish_reason.h"
#include "engine/model/sampler.h"
#include "engine/serving/serving_limits.h"

namespace relayout {

struct ServingRequest {
  std::vector<int32_t> prompt_ids;  // BOS included if wanted
  SamplingParams sampling;          // its seed seeds the sequence's Sampler
  bool logprobs = false;            // report the chosen token's logprob
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  int64_t max_new_tokens = 0;  // 0: limits.max_new_tokens
  bool ignore_eos = false;
};

struct ServingToken {
  int32_t id = 0;
  std::string text;  // whole UTF-8 characters; may be empty (held back)
  bool has_logprob = false;
  float logprob = 0;
  std::vector<TokenLogprob> top;  // sampling.top_logprobs alternatives
};

// What a request is checked against.
struct ServingRequestBounds {
  ServingLimits limits;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;    // positions one sequence may fill
  int64_t kv_block_size = 0;    // tokens per KV block
  int64_t kv_total_blocks = 0;  // blocks of the whole cache
};

// Checks `request` and fills its defaults (max_new_tokens 0 -> the limit).
// Returns the KV blocks of its worst case: prompt + max_new_tokens - 1
// positions, capped by the context. Errors, naming the field or limit:
// InvalidArgument (empty prompt, an id outside the vocabulary, negative
// max_new_tokens, no room in the context, invalid sampling);
// ResourceExhausted (max_prompt_tokens, max_new_tokens, a worst case larger
// than the whole cache: kv_cache_bytes).
Result<int64_t> CheckServingRequest(ServingRequest* request, const ServingRequestBounds& bounds);

}  // namespace relayout
