// FakeGenerationBackend: a GenerationBackend for tests of the server's
// adapters. Streams token ids 300, 301, ... one per callback from its own
// thread (every delay_ms), knows one session ("session-1"), and records
// cancels. Thread-safe; joins its threads on destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "server/rpc/generation_backend.h"

namespace relayout::server {

class FakeGenerationBackend final : public GenerationBackend {
 public:
  ~FakeGenerationBackend() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : threads_) t.join();
  }

  uint64_t StartSession(GenerationRequest request, StartCallback done) override {
    last_request_ = request;
    Spawn([done = std::move(done), n = request.prompt_ids.size(), lp = request.logprobs] {
      SessionStart s;
      s.session_id = "session-1";
      s.first_token = {403, " Once", lp, -0.5f, {{403, -0.5f}, {407, -1.5f}}};
      s.prompt_tokens = static_cast<int64_t>(n);
      done(s);
    });
    return 7;
  }

  void Decode(const std::string& session_id, int64_t n, DecodeCallback done) override {
    Spawn([done = std::move(done), session_id, n] {
      if (session_id != "session-1") {
        done(Status::NotFound(session_id, "no such session"));
        return;
      }
      DecodeResult r;
      for (int64_t i = 0; i < n; ++i) r.tokens.push_back({407, " upon", false, 0, {}});
      r.finish = FinishReason::kMaxTokens;
      r.prompt_tokens = 5;
      r.generated_tokens = 1 + n;
      done(r);
    });
  }

  Status Release(const std::string& session_id) override {
    if (session_id != "session-1") return Status::NotFound(session_id, "no such session");
    return Status::OK();
  }

  Result<uint64_t> StreamGenerate(GenerationRequest request, TokensCallback on_tokens,
                                  DoneCallback on_done) override {
    const int64_t count = request.max_new_tokens;
    Spawn([this, count, on_tokens = std::move(on_tokens), on_done = std::move(on_done),
           prompt = static_cast<int64_t>(request.prompt_ids.size())] {
      int64_t i = 0;
      for (; i < count && !cancelled_.load(); ++i) {
        const GeneratedToken t{static_cast<int32_t>(300 + i), "x", false, 0, {}};
        on_tokens(std::span<const GeneratedToken>(&t, 1));
        if (delay_ms.load() > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
        }
      }
      if (cancelled_.load()) {
        on_done(Status::OK(), {FinishReason::kCancelled, prompt, i});
        return;
      }
      on_done(Status::OK(), {FinishReason::kMaxTokens, prompt, i});
    });
    return uint64_t{42};
  }

  void Cancel(uint64_t stream_id) override {
    cancel_calls.fetch_add(1);
    if (stream_id == 42) cancelled_.store(true);
  }

  void CancelAll() override { cancelled_.store(true); }

  std::atomic<int> delay_ms{0};
  std::atomic<int> cancel_calls{0};
  GenerationRequest last_request_;

 private:
  template <typename F>
  void Spawn(F f) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(std::move(f));
  }
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace relayout::server
