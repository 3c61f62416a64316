// GenerationBackend: what the Generation service needs from the serving
// engine, in engine types only (no protobuf). The service validates and
// converts each request, then calls these methods; an implementation wraps
// the continuous-batching engine.
//
// Completion callbacks may run on any thread (an engine thread), at most
// once each, and must not block for long: they only queue a reply. The
// callbacks passed in own no engine state; the backend may call them after
// the request was cancelled (they then do nothing).
//
// Thread safety: every method may be called concurrently from gRPC threads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/hf_side_files.h"
#include "engine/model/finish_reason.h"  // the engine's FinishReason, used as is
#include "engine/model/sampler.h"
#include "engine/serving/serving_engine.h"

namespace relayout::server {

// A validated request: the service has checked every field against the
// model and the ServingLimits before the backend sees it.
struct GenerationRequest {
  std::vector<int32_t> prompt_ids;  // non-empty, each in [0, vocab_size)
  SamplingParams sampling;          // sampling.Validate() is OK
  bool seed_given = false;          // false: the backend picks sampling.seed
  bool logprobs = false;            // report the chosen token's logprob
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  int64_t max_new_tokens = 0;  // in [1, ServingLimits::max_new_tokens]
  bool ignore_eos = false;
};

// One generated token with its streaming-safe text (StreamingDecoder).
struct GeneratedToken {
  int32_t id = 0;
  std::string text;
  // Set when the request asked for logprobs (GenerationRequest::logprobs).
  bool has_logprob = false;
  float logprob = 0;
  std::vector<TokenLogprob> top;  // sampling.top_logprobs alternatives, best first
};

struct SessionStart {
  std::string session_id;
  GeneratedToken first_token;
  int64_t prompt_tokens = 0;
  FinishReason finish = FinishReason::kNone;  // not kNone: already released
};

struct DecodeResult {
  std::vector<GeneratedToken> tokens;
  FinishReason finish = FinishReason::kNone;  // not kNone: already released
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // in the session so far
};

// The end of a stream.
struct StreamSummary {
  FinishReason finish = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
};

class GenerationBackend {
 public:
  using StartCallback = std::function<void(Result<SessionStart>)>;
  using DecodeCallback = std::function<void(Result<DecodeResult>)>;
  // A group of tokens in generation order; called zero or more times.
  using TokensCallback = std::function<void(std::span<const GeneratedToken>)>;
  // Called once, after the last TokensCallback: OK with the summary, or the
  // error that ended the stream (the summary is then ignored).
  using DoneCallback = std::function<void(const Status&, const StreamSummary&)>;

  virtual ~GenerationBackend() = default;

  // Prefills request.prompt_ids into a new session and samples its first
  // token; `done` gets the session (its id unguessable: 128 random bits)
  // or ResourceExhausted (max_queue reached; past max_sessions it waits),
  // Unavailable (shutting down), Internal.
  // Returns an id for Cancel while the prefill is pending (the caller left:
  // `done` then gets Cancelled), or 0 when `done` was already called with
  // an error.
  virtual uint64_t StartSession(GenerationRequest request, StartCallback done) = 0;

  // Generates up to num_tokens (>= 1) more tokens in a session. `done` gets
  // them, or NotFound for an unknown or expired session id.
  virtual void Decode(const std::string& session_id, int64_t num_tokens, DecodeCallback done) = 0;

  // Frees a session and its KV cache. NotFound for an unknown session id
  // (the message never repeats the id).
  virtual Status Release(const std::string& session_id) = 0;

  // Starts a stream: prefill then decode until a finish condition, calling
  // on_tokens as tokens are produced and on_done once at the end. Returns
  // the stream's id (for Cancel), or an error when the stream was not
  // started (ResourceExhausted, Unavailable); callbacks are then never
  // called.
  virtual Result<uint64_t> StreamGenerate(GenerationRequest request, TokensCallback on_tokens,
                                          DoneCallback on_done) = 0;

  // Stops a stream: on_done is then called soon with OK and finish
  // kCancelled (the usage so far), or as usual if it had already finished.
  // With a StartSession id, cancels the session while its prefill is
  // pending. Unknown or finished ids are ignored.
  virtual void Cancel(uint64_t stream_id) = 0;

  // The drain grace expired: every stream ends soon as if Cancel was called
  // on it (OK, finish kCancelled, so each call still gets its final
  // message), a Decode in flight ends with kCancelled and the tokens so far,
  // and a waiting Prefill gets Unavailable. Sessions that are idle stay.
  virtual void CancelAll() = 0;

  // The model's sampling defaults (its generation_config.json) for the
  // fields a request leaves unset; none by default.
  virtual SamplingDefaults sampling_defaults() const { return {}; }

  // Converts the served weights into other layouts while serving
  // (ServingEngine::StartRelayout, whose contract this is). A backend
  // without weights of its own refuses: Unimplemented.
  virtual Result<LiveRelayoutPlan> StartRelayout(RelayoutJobOptions /*options*/) {
    return Status::Unimplemented("relayout", "this backend holds no weights");
  }
  virtual void CancelRelayout() {}
};

}  // namespace relayout::server
