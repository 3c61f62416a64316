#include "server/rpc/generate_reactor.h"

#include <mutex>
#include <optional>
#include <utility>

#include "server/observe/token_timing.h"
#include "server/rpc/generation_messages.h"
#include "server/rpc/status_conversion.h"
#include "server/rpc/stream_reactor_step.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

class GenerateReactor::Shared {
 public:
  using Queue = StreamCallQueue<v1::GenerateResponse>;

  Shared(GenerateReactor* reactor, ServerMetrics* metrics, Clock::time_point start)
      : reactor_(reactor), timing_(metrics, start) {}

  // Takes the step the queue decided. The reactor is alive whenever a step
  // is not kNothing (it is deleted only after the one kFinish).
  void Apply(const Queue::Step& step) {
    ApplyStreamStep<v1::GenerateResponse>(step, reactor_, &mu_, &final_code_);
  }

  Queue& queue() { return queue_; }

  void SetStream(std::shared_ptr<const Tokenizer> tokenizer, int64_t prompt_tokens) {
    tokenizer_ = std::move(tokenizer);
    prompt_tokens_ = prompt_tokens;
  }
  void SetStreamId(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    stream_id_ = id;
  }
  std::optional<uint64_t> stream_id() {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_id_;
  }

  // Backend: a group of tokens. Counted at once, so the token counters
  // move while a long stream runs.
  void OnTokens(std::span<const GeneratedToken> tokens) {
    if (tokens.empty() || queue_.closed()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      timing_.OnTokens(tokens.size(), prompt_tokens_);
    }
    Apply(queue_.Append([&](v1::GenerateResponse& message) {
      for (const GeneratedToken& t : tokens) ToProtoToken(t, *tokenizer_, message.add_tokens());
    }));
  }

  // Backend: the end of the stream. A stream the server cancelled ends OK
  // with FINISH_REASON_CANCELLED, as generation.proto promises.
  void OnEnd(const Status& status, const StreamSummary& summary) {
    Apply(queue_.End(ToCallStatus(ToGrpcStatus(status)), [&](v1::GenerateResponse& message) {
      message.set_finish_reason(ToProtoFinishReason(summary.finish));
      message.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(summary.prompt_tokens));
      message.mutable_usage()->set_generated_tokens(
          static_cast<uint32_t>(summary.generated_tokens));
    }));
  }

  // OnDone: time per output token, and the final code for the counters.
  grpc::StatusCode Done() {
    std::lock_guard<std::mutex> lock(mu_);
    timing_.Finish();
    return final_code_;
  }

 private:
  GenerateReactor* const reactor_;
  Queue queue_;
  std::shared_ptr<const Tokenizer> tokenizer_;  // set before the stream starts
  int64_t prompt_tokens_ = 0;                   // set before the stream starts

  std::mutex mu_;
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;  // GUARDED_BY(mu_)
  std::optional<uint64_t> stream_id_;                   // GUARDED_BY(mu_)
  TokenTiming timing_;                                  // GUARDED_BY(mu_)
};

GenerateReactor::GenerateReactor(ServerMetrics* metrics, InflightCalls* inflight,
                                 Clock::time_point start)
    : metrics_(metrics),
      inflight_(inflight),
      start_(start),
      shared_(std::make_shared<Shared>(this, metrics, start)) {}

void GenerateReactor::FinishWithStatus(const grpc::Status& status) {
  shared_->Apply(shared_->queue().FinishNow(ToCallStatus(status)));
}

void GenerateReactor::Run(GenerationBackend* backend, std::shared_ptr<const Tokenizer> tokenizer,
                          GenerationRequest request) {
  backend_ = backend;
  shared_->SetStream(std::move(tokenizer), static_cast<int64_t>(request.prompt_ids.size()));
  std::shared_ptr<Shared> shared = shared_;
  Result<uint64_t> id = backend->StreamGenerate(
      std::move(request),
      [shared](std::span<const GeneratedToken> tokens) { shared->OnTokens(tokens); },
      [shared](const Status& status, const StreamSummary& summary) {
        shared->OnEnd(status, summary);
      });
  if (!id.ok()) {
    shared_->OnEnd(id.status(), {});
    return;
  }
  shared_->SetStreamId(*id);
  // A cancel that came while the stream was starting could not name it.
  if (shared_->queue().closed()) backend->Cancel(*id);
}

void GenerateReactor::OnWriteDone(bool ok) { shared_->Apply(shared_->queue().WriteDone(ok)); }

void GenerateReactor::OnCancel() {
  if (backend_ != nullptr) {
    if (std::optional<uint64_t> id = shared_->stream_id()) backend_->Cancel(*id);
  }
  shared_->Apply(shared_->queue().Cancel(
      ToCallStatus(grpc::Status(grpc::StatusCode::CANCELLED, "Generate: cancelled"))));
}

void GenerateReactor::OnDone() {
  const grpc::StatusCode code = shared_->Done();
  metrics_->OnRequest("Generate", StatusCodeName(static_cast<StatusCode>(code)),
                      Seconds(Clock::now() - start_));
  inflight_->End("Generate");
  delete this;
}

}  // namespace relayout::server
