#include "engine/serving/serving_request.h"

#include <algorithm>

namespace relayout {

Result<int64_t> CheckServingRequest(ServingRequest* request, const ServingRequestBounds& bounds) {
  const ServingLimits& limits = bounds.limits;
  const int64_t prompt = static_cast<int64_t>(request->prompt_ids.size());
  if (prompt == 0) return Status::InvalidArgument("prompt", "empty");
  if (prompt > limits.max_prompt_tokens) {
    return Status::ResourceExhausted("prompt",
                                     StrCat(prompt, " tokens, above the limit ",
                                            "max_prompt_tokens = ", limits.max_prompt_tokens));
  }
  const int64_t vocab = bounds.vocab_size;
  for (size_t i = 0; i < request->prompt_ids.size(); ++i) {
    const int32_t id = request->prompt_ids[i];
    if (id < 0 || id >= vocab) {
      return Status::InvalidArgument(StrCat("prompt[", i, "]"),
                                     StrCat(id, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  for (int32_t id : request->stop_token_ids) {
    if (id < 0 || id >= vocab) {
      return Status::InvalidArgument("stop_token_ids", StrCat(id, " is outside the vocabulary"));
    }
  }
  if (request->max_new_tokens == 0) request->max_new_tokens = limits.max_new_tokens;
  if (request->max_new_tokens < 0) {
    return Status::InvalidArgument("max_new_tokens", StrCat(request->max_new_tokens, " < 0"));
  }
  if (request->max_new_tokens > limits.max_new_tokens) {
    return Status::ResourceExhausted(
        "max_new_tokens", StrCat(request->max_new_tokens,
                                 " is above the limit max_new_tokens = ", limits.max_new_tokens));
  }
  if (prompt >= bounds.max_positions) {
    return Status::InvalidArgument(
        "prompt", StrCat(prompt, " tokens leave no room in the context of ", bounds.max_positions,
                         " positions"));
  }
  RETURN_IF_ERROR(request->sampling.Validate());
  const int64_t positions = std::min(prompt + request->max_new_tokens - 1, bounds.max_positions);
  const int64_t blocks = (positions + bounds.kv_block_size - 1) / bounds.kv_block_size;
  if (blocks > bounds.kv_total_blocks) {
    return Status::ResourceExhausted(
        "kv cache",
        StrCat("the request needs ", blocks, " blocks for ", positions,
               " positions, the cache holds ", bounds.kv_total_blocks, " (kv_cache_bytes)"));
  }
  return blocks;
}

}  // namespace relayout
