// Sampler: picks the next token from a row of logits.
//
// Order of operations, as in the common serving stacks:
//   1. penalties, counted as vLLM does: repetition (CTRL-style: divide
//      positive logits, multiply negative ones) over the prompt and the
//      generated tokens; frequency (minus count * f) and presence (minus p
//      once seen) over the generated tokens only;
//   2. temperature 0 (or top_k 1) => greedy argmax, ties to the lowest id;
//   3. otherwise: divide by temperature, softmax, then top-k, top-p
//      (smallest set whose mass >= p), min-p (drop tokens below min_p times
//      the top probability), renormalise and draw with the seeded generator.
// Log-probabilities reported are of the distribution after penalties and
// temperature, before truncation (what an API user expects to compare).
//
// Thread safety: a Sampler holds a random generator; use one per sequence.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"

namespace relayout {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;         // same seed, same logits => same tokens
  int32_t top_logprobs = 0;  // alternatives to report, 0..20

  // InvalidArgument naming the field for values outside their range.
  Status Validate() const;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0;              // of the chosen token
  std::vector<TokenLogprob> top;  // top_logprobs alternatives, best first
};

class Sampler {
 public:
  // REQUIRES: params.Validate().ok().
  explicit Sampler(const SamplingParams& params);

  // Records the prompt, which counts for the repetition penalty. Generated
  // tokens are recorded by Sample itself.
  void ObservePrompt(std::span<const int32_t> tokens);

  // Samples from logits (modified in place by penalties and temperature).
  SampledToken Sample(std::span<float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  void ApplyPenalties(std::span<float> logits) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int32_t> generated_;  // token -> times generated
  std::unordered_map<int32_t, bool> prompt_;        // tokens in the prompt
  std::vector<int32_t> order_;                      // scratch, reused per call
  std::vector<float> probs_;
};

// Index of the largest value, lowest index on ties. REQUIRES: !v.empty().
int32_t ArgMax(std::span<const float> v);

}  // namespace relayout
