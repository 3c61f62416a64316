// TokenTiming: one generation's token metrics, counted the same way by every
// API that streams tokens (relayout.v1 Generate, the OpenAI API, KServe):
// the first group of tokens observes the time to first token (from the
// call's start) and adds the prompt's tokens, every group adds its tokens,
// and Finish observes the time per output token once two or more were
// generated.
//
// Thread safety: none; the caller serialises OnTokens and Finish (its own
// lock) and calls Finish once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "server/observe/server_metrics.h"

namespace relayout::server {

class TokenTiming {
 public:
  using Clock = std::chrono::steady_clock;

  TokenTiming(ServerMetrics* metrics, Clock::time_point start) : metrics_(metrics), start_(start) {}

  // A group of `count` tokens of a prompt of `prompt_tokens`.
  void OnTokens(size_t count, int64_t prompt_tokens) {
    if (count == 0) return;
    const Clock::time_point now = Clock::now();
    if (generated_ == 0) {
      first_token_at_ = now;
      metrics_->OnTimeToFirstToken(Seconds(now - start_));
      metrics_->AddPromptTokens(static_cast<uint64_t>(prompt_tokens));
    }
    last_token_at_ = now;
    generated_ += static_cast<int64_t>(count);
    metrics_->AddGeneratedTokens(count);
  }

  // The generation ended: time per output token.
  void Finish() {
    if (generated_ > 1) {
      metrics_->OnTimePerOutputToken(Seconds(last_token_at_ - first_token_at_) /
                                     static_cast<double>(generated_ - 1));
    }
  }

  int64_t generated() const { return generated_; }

 private:
  static double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

  ServerMetrics* const metrics_;
  const Clock::time_point start_;
  int64_t generated_ = 0;
  Clock::time_point first_token_at_;
  Clock::time_point last_token_at_;
};

}  // namespace relayout::server
