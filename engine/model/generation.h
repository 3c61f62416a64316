// Generation: prompt in, text out, for one sequence: encode, prefill the
// whole prompt in one forward pass, then sample and decode one token per
// step until a stop condition.
//
// Stop conditions, checked after each sampled token in this order:
//   - an end-of-generation id (the tokenizer's and the config's EOS ids) or,
//     with stop_at_bos, BOS: llama2.c's rule, which the 512-piece story
//     models rely on (they never emit their EOS; a new story starts with
//     BOS). The stop token is neither returned nor printed;
//   - a stop string appearing in the text: the text ends before it;
//   - max_new_tokens generated;
//   - the context window full (the next position would be max_positions).
// Text is produced through a StreamingDecoder, so every piece handed to the
// callback is whole UTF-8; with stop strings, text that could begin one is
// held back until it cannot.
//
// Token accounting follows llama2.c's: max_new_tokens = N generates N tokens,
// the first from the prefill's logits and each next one after one decode
// step; llama2.c's `-n steps` with a P-token prompt (BOS counted) is
// max_new_tokens = steps - P + 1.
//
// Thread safety: a call uses the model and cache exclusively (see their
// headers); distinct calls must not run concurrently on the same model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/finish_reason.h"
#include "engine/model/kv_cache.h"
#include "engine/model/llama_model.h"
#include "engine/model/sampler.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

struct GenerationOptions {
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop_strings;
  bool stop_at_bos = true;  // see the header comment
  bool add_bos = true;      // prepend BOS when the tokenizer asks for it
  // Positions the sequence may fill; 0: the model's context_length. A
  // caller may go past the trained context, as llama.cpp lets its users do.
  int64_t max_positions = 0;
};

struct GenerationTimings {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;    // forward passes after the prefill
  double prefill_seconds = 0;  // prompt forward pass and the first sample
  double decode_seconds = 0;   // the decode steps and their samples
  double prefill_tokens_per_second() const {
    return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0;
  }
  double decode_tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(decode_steps) / decode_seconds : 0;
  }
};

struct GenerationResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> ids;  // generated, stop token excluded
  std::string text;          // generated text, stop string excluded
  FinishReason finish_reason = FinishReason::kMaxTokens;
  GenerationTimings timings;
};

// The ids that end a generation: the tokenizer's and the config's EOS ids,
// and BOS (both's) with options.stop_at_bos. May hold duplicates.
std::vector<int32_t> StopTokenIds(const Tokenizer& tokenizer, const ModelConfig& config,
                                  const GenerationOptions& options);

// Called with each newly completed piece of text, in order.
using TextCallback = std::function<void(std::string_view)>;

// Generates from prompt text. The sequence lives in cache for the call only
// and is released on every path. Errors: InvalidArgument (invalid sampling
// parameters, max_new_tokens < 1, an empty prompt without BOS, a prompt that
// fills the context window), the tokenizer's errors, the model's and
// cache's (ResourceExhausted when the KV blocks run out).
Result<GenerationResult> Generate(LlamaModel* model, KvCache* cache, const Tokenizer& tokenizer,
                                  std::string_view prompt, const GenerationOptions& options,
                                  const TextCallback& on_text = {});

// The same from prompt ids (BOS included if wanted).
Result<GenerationResult> GenerateFromIds(LlamaModel* model, KvCache* cache,
                                         const Tokenizer& tokenizer,
                                         std::vector<int32_t> prompt_ids,
                                         const GenerationOptions& options,
                                         const TextCallback& on_text = {});

}  // namespace relayout
