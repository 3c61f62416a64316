// ServingLimits: the limits the serving engine enforces, checked at the API
// edge so that a client past one gets a clear status (RESOURCE_EXHAUSTED),
// never a crash or an unbounded allocation. Plain values; flags fill them.
#pragma once

#include <cstdint>

namespace relayout {

struct ServingLimits {
  // Tokens of one prompt, BOS included. Costs KV cache and prefill time
  // linearly.
  int64_t max_prompt_tokens = 4096;
  // Tokens one request may generate (its default when it names none).
  int64_t max_new_tokens = 1024;
  // Sessions (sequences with a KV cache) alive at once, streams included.
  int64_t max_sessions = 64;
  // Requests waiting for admission before new ones are refused.
  int64_t max_queue = 256;
  // A session unused for this long is released with its KV cache.
  int64_t session_idle_ttl_seconds = 300;
  // Text bytes of one Tokenize call; the reply holds up to one id per byte
  // (plus BOS), so this bounds its ids and the memory the call takes.
  int64_t max_tokenize_bytes = int64_t{1} << 20;
  // Token ids of one Detokenize call.
  int64_t max_detokenize_ids = 65536;
};

}  // namespace relayout
