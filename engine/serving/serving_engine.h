// ServingEngine: continuous-batching generation over one LlamaModel.
//
// It owns the model, its KV cache and thread pool, and ONE scheduler thread
// that runs steps: free what was cancelled, released or expired; pick the
// step's batch with ScheduleStep (batch_scheduler.h: FIFO prefills within a
// token budget and the free KV blocks, plus one decode token for every
// running sequence); run it as one batched Forward; then, per sequence,
// sample with the sequence's own Sampler (seeded by its request), check the
// stop conditions and hand the token to the request's callback.
//
// Two kinds of work share the batch:
//   streams   StartStream: prefill, then decode until a finish condition,
//             tokens pushed to on_tokens as they are produced, on_end once;
//   sessions  StartSession prefills and samples the first token, then the
//             session keeps its KV cache between calls; Decode advances it
//             by N tokens; Release frees it; a session idle for
//             limits.session_idle_ttl_seconds is released (then NotFound).
//
// Stop conditions per sampled token, in order (as Generate, generation.h):
// an end-of-generation id (the tokenizer's and the config's EOS ids, and BOS
// with stop_at_bos; skipped with ignore_eos): not returned; a stop string in
// the text: the token's text ends before it; one of stop_token_ids: the
// token is returned; max_new_tokens generated; the context full. Token text
// comes from a StreamingDecoder through a StopStringFilter, so text that may
// begin a stop string is held back; held-back text still pending when an
// end-of-generation token ends the sequence has no token to ride on and is
// dropped (a partial UTF-8 character, or the start of a stop string).
//
// KV-cache capacity: a request is admitted only when the free blocks cover
// its worst case (prompt + max_new_tokens positions, capped by the context),
// so an admitted sequence never runs out of blocks. A request whose worst
// case exceeds the whole cache is refused (ResourceExhausted naming
// kv_cache_bytes); one that fits the cache waits in the queue until blocks
// are freed.
//
// Limits, all checked before anything is allocated (ServingLimits): prompt
// tokens, max new tokens (ResourceExhausted), requests waiting
// (ResourceExhausted naming max_queue), idle TTL (NotFound afterwards).
// Sequences admitted (streams and sessions) are at most max_sessions: a
// request past it waits in the queue until one ends, is released or
// expires (or its caller cancels it).
//
// Greedy requests give the tokens each would get alone: the batched Forward
// computes each sequence's rows independently, and sampling is per sequence.
//
// Callbacks run on the scheduler thread (or the destructor's), never under
// the engine's lock, each at most once (on_tokens possibly many times, in
// order); they must not block for long and may call back into the engine.
//
// Thread safety: every public method may be called concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/model_spec.h"
#include "engine/conversion/live_relayout.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/memory/memory_ledger.h"
#include "engine/model/kv_cache.h"
#include "engine/model/llama_model.h"
#include "engine/model/sampler.h"
#include "engine/serving/serving_limits.h"
#include "engine/serving/serving_request.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {

struct SessionPrefill {
  // The session's handle: 32 hex digits (128 bits) from the OS's CSPRNG,
  // the only way to name the session in Decode and Release.
  std::string session;
  // The first generated token; when the first sample was an
  // end-of-generation token, that id with no text (finish says so).
  ServingToken first_token;
  int64_t prompt_tokens = 0;
  FinishReason finish = FinishReason::kNone;  // not kNone: released
};

struct SessionDecode {
  std::vector<ServingToken> tokens;
  FinishReason finish = FinishReason::kNone;  // not kNone: released
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // in the session so far
};

struct StreamEnd {
  FinishReason finish = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
};

// Gauges, as of the last step or state change.
struct ServingStats {
  int64_t batch_size = 0;       // sequences in the last forward pass
  int64_t batch_tokens = 0;     // tokens in it
  int64_t queue_depth = 0;      // requests waiting for admission
  int64_t active_sessions = 0;  // admitted sequences (streams and sessions)
  // Admitted sequences generating now: streams, and sessions with a prefill
  // or a Decode in flight (vLLM's "running"); a session idle between calls
  // holds its KV cache (active_sessions) but is not running.
  int64_t running_requests = 0;
  int64_t kv_block_size = 0;  // tokens per KV block
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  uint64_t steps = 0;  // forward passes so far
  // Prompt tokens whose K/V came from the prefix cache instead of a
  // prefill, so far (prefix_caching).
  uint64_t prefix_cache_hit_tokens = 0;
  double kv_usage_ratio() const {
    return kv_blocks_total > 0
               ? static_cast<double>(kv_blocks_used) / static_cast<double>(kv_blocks_total)
               : 0;
  }
};

// A live relayout of the engine's weights (ServingEngine::StartRelayout).
struct RelayoutJobOptions {
  // The layout each weight should end in (LayoutPolicy::Choose).
  LayoutChooser choose;
  // Conversion scratch, as at start-up: the peak stays within the weights
  // plus this (live_relayout.h).
  uint64_t budget_bytes = uint64_t{64} << 20;
  // While requests run, the conversion between two forward steps lasts at
  // most this fraction of the mean step time (at least one tensor per gap),
  // so a running stream's time per token grows by about this fraction at
  // most, plus one tensor's time when a tensor takes longer than that.
  // With nothing running it converts one tensor per turn of the loop,
  // which checks for new work in between.
  double step_time_fraction = 0.5;
  // Called once by StartRelayout with the plan, before any tensor moves and
  // before on_done, under the engine's lock: it must not call the engine.
  std::function<void(const LiveRelayoutPlan&)> on_start;
  // After each tensor, on the scheduler thread: the same interface as the
  // start-up conversion's, so progress reaches the same metrics. Its ledger
  // totals are the weights plus the conversion's scratch.
  std::shared_ptr<ConversionObserver> observer;
  // Once, on the scheduler thread (or the destructor's): OK with the
  // report, Cancelled (CancelRelayout, or the engine shutting down), or the
  // error that stopped it. Tensors converted before a stop keep their new
  // layout: every tensor is in a layout the forward pass reads at all
  // times, so the model serves on in a mixed state.
  std::function<void(const Status&, const RelayoutReport&)> on_done;
  // Once, just before on_done, with every weight's layout as the job
  // leaves it (the moved ones and the rest), on the same thread.
  std::function<void(std::span<const ResidentTensor>)> on_layouts;
};

// What a relayout in progress has done.
struct RelayoutStatus {
  bool running = false;
  size_t tensors_done = 0;
  size_t tensors_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};

struct ServingEngineOptions {
  ServingLimits limits;
  // Bytes of the KV-cache pool (allocated once; pages are touched as used).
  uint64_t kv_cache_bytes = uint64_t{256} << 20;
  int64_t kv_block_size = 16;  // tokens per block
  // Tokens of one forward pass: decodes first, then prefills within it.
  // Larger: more prefill per step, longer steps for running streams.
  int64_t max_batch_tokens = 512;
  // Positions one sequence may fill; 0: the model's context_length.
  int64_t max_positions = 0;
  bool stop_at_bos = true;  // llama2.c's rule (generation.h)
  // A prompt that starts with whole KV blocks another request computed
  // (and that are still cached) shares them and prefills only the rest
  // (kv_cache.h). The logits of the rest then come from a shorter prefill,
  // whose sums may round differently from the whole prompt's.
  bool prefix_caching = true;
  int threads = 0;  // compute threads; 0: one per hardware thread
  // Called on the scheduler thread after each step and state change.
  std::function<void(const ServingStats&)> on_stats;
};

// Heterogeneous lookup of std::string keys by string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class ServingEngine {
 public:
  using Clock = std::chrono::steady_clock;
  using PrefillCallback = std::function<void(Result<SessionPrefill>)>;
  using DecodeCallback = std::function<void(Result<SessionDecode>)>;
  using TokensCallback = std::function<void(std::span<const ServingToken>)>;
  using EndCallback = std::function<void(const Status&, const StreamEnd&)>;

  // Builds the model from converted weights (see LlamaModel::Create), the
  // KV cache and the thread pool, and starts the scheduler thread.
  // weights_ledger (may be null) is the ledger the weights were drawn on:
  // it is kept alive as long as they are, and the KV cache and activations
  // are drawn on it too. Errors: the model's, the cache's
  // (InvalidArgument, ResourceExhausted), InvalidArgument for options out
  // of range.
  static Result<std::unique_ptr<ServingEngine>> Create(const ModelConfig& config,
                                                       NamingScheme naming, LoadedWeights weights,
                                                       std::unique_ptr<MemoryLedger> weights_ledger,
                                                       std::shared_ptr<const Tokenizer> tokenizer,
                                                       ServingEngineOptions options);
  // The same on a plugin device that holds the weights (kept alive by the
  // engine); the KV cache and the activations are drawn on the device, and
  // weights_ledger (the host's: staging, the downloaded logits) is kept.
  static Result<std::unique_ptr<ServingEngine>> Create(const ModelConfig& config,
                                                       NamingScheme naming, DeviceWeights weights,
                                                       std::unique_ptr<Device> device,
                                                       std::unique_ptr<MemoryLedger> weights_ledger,
                                                       std::shared_ptr<const Tokenizer> tokenizer,
                                                       ServingEngineOptions options);

  // Stops the scheduler; work still pending ends: streams with OK and
  // finish kCancelled (a final answer, not an error),
  // session calls with Unavailable.
  ~ServingEngine();
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Queues a stream. Returns its id (for Cancel); on_tokens and on_end are
  // then called as described above. Refused (callbacks never called):
  // InvalidArgument (empty prompt, id outside the vocabulary, invalid
  // sampling, no room in the context), ResourceExhausted (a limit, the
  // cache), Unavailable "serving engine: draining".
  Result<uint64_t> StartStream(ServingRequest request, TokensCallback on_tokens,
                               EndCallback on_end);
  // Ends a stream: on_end soon gets OK with finish kCancelled (and the usage
  // so far), and its KV blocks are freed. A session's id cancels it only
  // while its prefill is pending (the prefill callback gets Cancelled).
  // Unknown or finished ids are ignored.
  void Cancel(uint64_t stream_id);

  // Queues a session's prefill; `done` gets the session and its first token
  // (or Internal when the forward pass fails). Refused as StartStream.
  // Returns the sequence's id, for Cancel while the prefill is pending
  // (its caller left: `done` then gets Cancelled).
  Result<uint64_t> StartSession(ServingRequest request, PrefillCallback done);
  // Generates up to num_tokens (>= 1) more tokens in the session named by
  // its handle. Refused: NotFound for an unknown, released or expired
  // session (one message for all, which never repeats the handle),
  // FailedPrecondition while a Decode of it is in flight, InvalidArgument
  // for num_tokens < 1.
  Status Decode(std::string_view session, int64_t num_tokens, DecodeCallback done);
  // Ends all work in flight soon, for a drain whose grace expired: every
  // stream as Cancel does, a session's Decode in flight with kCancelled
  // and the tokens so far (the session itself is released), a session
  // whose prefill waits with Unavailable. Idle sessions stay, but from now
  // on nothing new starts: a Decode is Unavailable, as new work is.
  void CancelAll();
  // Frees the session and its KV cache (a Decode in flight ends with
  // kCancelled). NotFound as Decode.
  Status Release(std::string_view session);
  // Releases the sessions idle since before now - session_idle_ttl; the
  // scheduler calls it with the current time, tests with a later one.
  void ExpireIdleSessions(Clock::time_point now);

  // Stops admitting new streams and sessions (Unavailable "draining");
  // queued and running work and Decode of existing sessions go on.
  void Drain();

  // Starts converting the weights, in place and between forward steps,
  // into options.choose's layouts while requests keep being served (the
  // scheduler thread is the only one that runs Forward, so no step reads a
  // tensor whose bytes are moving). Returns the plan (its steps: the
  // tensors that change). Refused, nothing moved: FailedPrecondition while
  // another relayout runs; Unavailable while draining; InvalidArgument or
  // Unimplemented naming a tensor whose target layout the conversion or
  // this device's forward pass cannot take; the planner's
  // ResourceExhausted when a tensor needs more budget. A plan with no
  // steps ends at once (on_done OK).
  Result<LiveRelayoutPlan> StartRelayout(RelayoutJobOptions options);
  // Stops the relayout in progress after the tensor being converted; its
  // on_done gets Cancelled. No-op when none runs.
  void CancelRelayout();
  RelayoutStatus relayout_status() const;

  ServingStats stats() const;
  const ModelConfig& config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t max_positions() const { return max_positions_; }

 private:
  static Result<std::unique_ptr<ServingEngine>> CreateWith(
      const ModelConfig& config, std::unique_ptr<MemoryLedger> weights_ledger,
      std::shared_ptr<const Tokenizer> tokenizer, ServingEngineOptions options,
      const std::function<Result<std::unique_ptr<LlamaModel>>(ServingEngine*)>& make_model);
  struct Sequence;
  using Calls = std::vector<std::function<void()>>;

  ServingEngine(std::unique_ptr<MemoryLedger> ledger, std::shared_ptr<const Tokenizer> tokenizer,
                ServingEngineOptions options);
  // The checks shared by StartStream and StartSession; REQUIRES: mu_ held.
  Result<std::unique_ptr<Sequence>> NewSequence(ServingRequest request, bool is_session);
  void Loop();
  // One step; false when there was nothing to do. REQUIRES: lock holds mu_.
  bool Step(std::unique_lock<std::mutex>& lock, Calls* calls);
  void Reap(Calls* calls);
  void Admit(Sequence* s);
  void OnToken(Sequence* s, std::span<float> logits, Calls* calls);
  void Finish(Sequence* s, FinishReason finish, Calls* calls);
  void FailBatch(std::span<Sequence* const> batch, const Status& status, Calls* calls);
  void PublishStats(Calls* calls);
  // Converts the next tensors of the relayout in progress, for the time
  // the last step allows (RelayoutJobOptions::step_time_fraction).
  // REQUIRES: lock holds mu_; relayout_ set.
  void RelayoutSlice(std::unique_lock<std::mutex>& lock, bool busy, Calls* calls);
  // The ledger as a relayout's observer sees it: its totals are the
  // weights plus the conversion's scratch, as its report's peak (the KV
  // cache and activations are the serving's, outside the conversion's
  // bound; a plugin device's host staging is reported apart).
  MemoryLedgerSnapshot ConversionView(uint64_t weight_bytes) const;
  // Ends the relayout in progress with `status`. REQUIRES: mu_ held.
  void EndRelayout(const Status& status, Calls* calls);
  // The session with this handle, if it can take a Decode or Release.
  Sequence* FindSession(std::string_view handle);

  std::unique_ptr<MemoryLedger> ledger_;  // outlives the weights and the cache
  std::unique_ptr<Device> device_;        // a plugin device: outlives the model and the cache
  std::unique_ptr<kernels::ThreadPool> pool_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<KvCache> cache_;  // touched by the scheduler thread only
  std::shared_ptr<const Tokenizer> tokenizer_;
  ServingEngineOptions options_;
  int64_t max_positions_ = 0;
  std::vector<int32_t> stop_ids_;  // end-of-generation ids
  std::vector<float> logits_;      // scratch of the scheduler thread

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> sequences_;  // GUARDED_BY(mu_)
  std::deque<uint64_t> waiting_;                                       // GUARDED_BY(mu_)
  // Sessions' handles to their ids (transparent lookup by string_view).
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>
      handles_;                 // GUARDED_BY(mu_)
  uint64_t next_id_ = 1;        // GUARDED_BY(mu_)
  bool draining_ = false;       // GUARDED_BY(mu_)
  bool cancelled_all_ = false;  // GUARDED_BY(mu_): CancelAll ran; Decode refused
  bool stop_ = false;           // GUARDED_BY(mu_)
  bool reap_ = false;           // GUARDED_BY(mu_): something was cancelled or released
  bool kicked_ = false;         // GUARDED_BY(mu_): new work since the last step began
  ServingStats stats_;          // GUARDED_BY(mu_)
  ServingStats published_;      // GUARDED_BY(mu_): as last handed to on_stats
  struct RelayoutJob;
  // The relayout in progress: set and reset under mu_, its steps run by the
  // scheduler thread only.
  std::unique_ptr<RelayoutJob> relayout_;  // GUARDED_BY(mu_)
  // Mean seconds of a forward step (exponential), scheduler thread only.
  double step_seconds_ = 0;
  std::thread thread_;
};

}  // namespace relayout
