#include "server/generate_reactor.h"

#include <deque>
#include <mutex>
#include <utility>

#include "server/generation_messages.h"
#include "server/status_conversion.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// The state shared by the reactor (gRPC's threads) and the backend's
// callbacks (engine threads). Every decision about writing or finishing is
// taken under mu_, and the gRPC call it leads to is made after unlocking:
// StartWrite only with write_in_flight_ set (so nobody else finishes
// meanwhile), Finish only once, with finished_ set.
class GenerateReactor::Queue {
 public:
  Queue(GenerateReactor* reactor, ServerMetrics* metrics, Clock::time_point start)
      : reactor_(reactor), metrics_(metrics), start_(start) {}

  void SetTokenizer(std::shared_ptr<const Tokenizer> tokenizer) {
    tokenizer_ = std::move(tokenizer);
  }

  void SetStreamId(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    stream_id_ = id;
    has_stream_id_ = true;
  }
  bool StreamId(uint64_t* id) {
    std::lock_guard<std::mutex> lock(mu_);
    *id = stream_id_;
    return has_stream_id_;
  }

  bool Ended() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_;
  }

  // Backend: a group of tokens.
  void OnTokens(std::span<const GeneratedToken> tokens) {
    if (tokens.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_) return;
      const Clock::time_point now = Clock::now();
      if (generated_ == 0) {
        first_token_at_ = now;
        metrics_->OnTimeToFirstToken(Seconds(now - start_));
      }
      last_token_at_ = now;
      generated_ += static_cast<int64_t>(tokens.size());
      v1::GenerateResponse* message = BackForAppend();
      for (const GeneratedToken& t : tokens) ToProtoToken(t, *tokenizer_, message->add_tokens());
    }
    Pump();
  }

  // Backend: the end of the stream.
  void OnEnd(const Status& status, const StreamSummary& summary) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_) return;
      ended_ = true;
      end_status_ = ToGrpcStatus(status);
      if (status.ok()) {
        v1::GenerateResponse* message = BackForAppend();
        message->set_finish_reason(ToProtoFinishReason(summary.finish));
        message->mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(summary.prompt_tokens));
        message->mutable_usage()->set_generated_tokens(
            static_cast<uint32_t>(summary.generated_tokens));
        prompt_tokens_ = summary.prompt_tokens;
      }
    }
    Pump();
  }

  // gRPC: the client went away or a write failed; drop what is queued.
  void Abort(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.clear();
      if (ended_) return;
      ended_ = true;
      end_status_ = std::move(status);
    }
    Pump();
  }

  void OnWriteDone(bool ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
    }
    if (!ok) {
      Abort(grpc::Status(grpc::StatusCode::CANCELLED, "Generate: the client stopped reading"));
      return;
    }
    Pump();
  }

  // See the class comment.
  void Pump() {
    GenerateReactor* reactor;
    bool write = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_ || write_in_flight_ || reactor_ == nullptr) return;
      if (!pending_.empty()) {
        writing_ = std::move(pending_.front());
        pending_.pop_front();
        write_in_flight_ = true;
        write = true;
      } else if (ended_) {
        finished_ = true;
      } else {
        return;
      }
      reactor = reactor_;
    }
    if (write) {
      reactor->StartWrite(&writing_);
    } else {
      reactor->final_status_ = end_status_;
      reactor->Finish(end_status_);
    }
  }

  // The reactor finishes without a stream (admission or validation error).
  void FinishEarly(GenerateReactor* reactor, const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
      finished_ = true;
      end_status_ = status;
    }
    reactor->final_status_ = status;
    reactor->Finish(status);
  }

  // OnDone: the reactor is going away; records the stream's token metrics.
  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = nullptr;
    if (generated_ > 0) {
      metrics_->AddGeneratedTokens(static_cast<uint64_t>(generated_));
      if (generated_ > 1) {
        metrics_->OnTimePerOutputToken(Seconds(last_token_at_ - first_token_at_) /
                                       static_cast<double>(generated_ - 1));
      }
    }
    if (prompt_tokens_ > 0) metrics_->AddPromptTokens(static_cast<uint64_t>(prompt_tokens_));
  }

 private:
  // The queued message that new tokens join: the last one, or a new one.
  // REQUIRES: mu_ held.
  v1::GenerateResponse* BackForAppend() {
    if (pending_.empty()) pending_.emplace_back();
    return &pending_.back();
  }

  std::mutex mu_;
  GenerateReactor* reactor_;  // GUARDED_BY(mu_); null after OnDone
  ServerMetrics* const metrics_;
  const Clock::time_point start_;
  std::shared_ptr<const Tokenizer> tokenizer_;  // set before the stream starts
  std::deque<v1::GenerateResponse> pending_;    // GUARDED_BY(mu_)
  v1::GenerateResponse writing_;                // owned by the write in flight
  bool write_in_flight_ = false;                // GUARDED_BY(mu_)
  bool ended_ = false;                          // GUARDED_BY(mu_): nothing more will be queued
  bool finished_ = false;                       // GUARDED_BY(mu_): Finish was called
  grpc::Status end_status_;                     // GUARDED_BY(mu_)
  bool has_stream_id_ = false;                  // GUARDED_BY(mu_)
  uint64_t stream_id_ = 0;                      // GUARDED_BY(mu_)
  int64_t generated_ = 0;                       // GUARDED_BY(mu_)
  int64_t prompt_tokens_ = 0;                   // GUARDED_BY(mu_)
  Clock::time_point first_token_at_;
  Clock::time_point last_token_at_;
};

GenerateReactor::GenerateReactor(ServerMetrics* metrics, InflightCalls* inflight,
                                 Clock::time_point start)
    : metrics_(metrics),
      inflight_(inflight),
      start_(start),
      queue_(std::make_shared<Queue>(this, metrics, start)) {}

void GenerateReactor::FinishWithStatus(const grpc::Status& status) {
  queue_->FinishEarly(this, status);
}

void GenerateReactor::Run(GenerationBackend* backend, std::shared_ptr<const Tokenizer> tokenizer,
                          GenerationRequest request) {
  backend_ = backend;
  queue_->SetTokenizer(std::move(tokenizer));
  std::shared_ptr<Queue> queue = queue_;
  Result<uint64_t> id = backend->StreamGenerate(
      std::move(request),
      [queue](std::span<const GeneratedToken> tokens) { queue->OnTokens(tokens); },
      [queue](const Status& status, const StreamSummary& summary) {
        queue->OnEnd(status, summary);
      });
  if (!id.ok()) {
    queue_->OnEnd(id.status(), {});
    return;
  }
  queue_->SetStreamId(*id);
  // A cancel that came while the stream was starting could not name it.
  if (queue_->Ended()) backend->Cancel(*id);
}

void GenerateReactor::Pump() { queue_->Pump(); }

void GenerateReactor::OnWriteDone(bool ok) { queue_->OnWriteDone(ok); }

void GenerateReactor::OnCancel() {
  uint64_t id = 0;
  if (backend_ != nullptr && queue_->StreamId(&id)) backend_->Cancel(id);
  queue_->Abort(grpc::Status(grpc::StatusCode::CANCELLED, "Generate: cancelled"));
}

void GenerateReactor::OnDone() {
  queue_->Detach();
  metrics_->OnRequest("Generate",
                      StatusCodeName(static_cast<StatusCode>(final_status_.error_code())),
                      Seconds(Clock::now() - start_));
  inflight_->End();
  delete this;
}

}  // namespace relayout::server
