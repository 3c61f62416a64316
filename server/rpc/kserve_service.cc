#include "server/rpc/kserve_service.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "server/observe/token_timing.h"
#include "server/rpc/admission.h"
#include "server/rpc/cancellable_unary_reactor.h"
#include "server/rpc/generation_messages.h"
#include "server/rpc/kserve_messages.h"
#include "server/rpc/status_conversion.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;
using StreamResponse = inference::ModelStreamInferResponse;

constexpr char kInferRpc[] = "ModelInfer";
constexpr char kStreamRpc[] = "ModelStreamInfer";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string_view CodeName(grpc::StatusCode code) {
  return StatusCodeName(static_cast<StatusCode>(code));
}

grpc::Status NotAttached() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "generation backend not attached");
}

// A unary call's end: Finish exactly once, then `after` (its count). A
// backend callback dropped without being called (it owns the last
// reference) still ends the call, with INTERNAL, so that no call is left
// without an answer (as GenerationService's UnaryCall).
class UnaryEnd {
 public:
  UnaryEnd(grpc::ServerUnaryReactor* reactor, std::function<void(grpc::StatusCode)> after)
      : reactor_(reactor), after_(std::move(after)) {}
  ~UnaryEnd() {
    Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                        "ModelInfer: the backend dropped the call without an answer"));
  }
  UnaryEnd(const UnaryEnd&) = delete;
  UnaryEnd& operator=(const UnaryEnd&) = delete;

  void Finish(const grpc::Status& status) {
    if (finished_.exchange(true)) return;
    reactor_->Finish(status);
    after_(status.error_code());
  }

 private:
  grpc::ServerUnaryReactor* const reactor_;
  const std::function<void(grpc::StatusCode)> after_;
  std::atomic<bool> finished_{false};
};

}  // namespace

// One inference request on the backend, from its admission to its last
// response: its tokens' timing and counts, the text of a request that does
// not stream, and its one count in the metrics (Account). Held in
// InflightCalls from construction to Account.
class KserveService::Run {
 public:
  Run(const KserveService* service, const char* rpc, KserveRequest request, int64_t prompt_tokens,
      Clock::time_point start)
      : request(std::move(request)),
        prompt_tokens(prompt_tokens),
        service_(service),
        rpc_(rpc),
        start_(start),
        timing_(service->deps_.metrics, start) {
    service_->deps_.inflight->Begin(rpc_);
  }
  // A run dropped unaccounted (a backend that never ended it) still leaves
  // the in-flight count.
  ~Run() { Account(grpc::StatusCode::INTERNAL); }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Backend: a group of tokens. Moves the token metrics and returns their
  // text; a request that does not stream also keeps it.
  std::string OnTokens(std::span<const GeneratedToken> tokens) {
    std::string text;
    for (const GeneratedToken& t : tokens) text += t.text;
    {
      std::lock_guard<std::mutex> lock(mu_);
      timing_.OnTokens(tokens.size(), prompt_tokens);
      if (!request.options.stream) text_ += text;
    }
    return text;
  }

  // The whole text so far (a request that does not stream).
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  int64_t generated() {
    std::lock_guard<std::mutex> lock(mu_);
    return timing_.generated();
  }

  // The request's one count: relayout_requests_total, its duration, time
  // per output token, and the end of its in-flight count. Later calls do
  // nothing.
  void Account(grpc::StatusCode code) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (accounted_) return;
      accounted_ = true;
      timing_.Finish();
    }
    service_->deps_.metrics->OnRequest(rpc_, CodeName(code), Seconds(Clock::now() - start_));
    service_->deps_.inflight->End(rpc_);
  }

  const KserveRequest request;
  const int64_t prompt_tokens;

 private:
  const KserveService* service_;
  const char* rpc_;
  const Clock::time_point start_;
  std::mutex mu_;
  std::string text_;        // GUARDED_BY(mu_)
  TokenTiming timing_;      // GUARDED_BY(mu_)
  bool accounted_ = false;  // GUARDED_BY(mu_)
};

// ---- unary methods ----

grpc::ServerUnaryReactor* KserveService::FinishNow(grpc::CallbackServerContext* context,
                                                   const char* rpc,
                                                   const grpc::Status& status) const {
  deps_.metrics->OnRequest(rpc, CodeName(status.error_code()), 0);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::Status KserveService::CheckModel(const std::string& name, const std::string& version) const {
  if (name != deps_.model_name) {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        StrCat("model \"", name.substr(0, 128), "\" is not served here; this server serves \"",
               deps_.model_name, "\""));
  }
  if (!version.empty() && version != kKserveModelVersion) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        StrCat("model \"", name, "\" has no version \"", version.substr(0, 32),
                               "\"; the only version is \"", kKserveModelVersion, "\""));
  }
  return grpc::Status::OK;
}

bool KserveService::Ready() const {
  return deps_.state->state() == LifecycleState::kServing && backend_.load() != nullptr;
}

grpc::ServerUnaryReactor* KserveService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, "ServerLive", grpc::Status::OK);
}

grpc::ServerUnaryReactor* KserveService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  response->set_ready(Ready());
  return FinishNow(context, "ServerReady", grpc::Status::OK);
}

grpc::ServerUnaryReactor* KserveService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  grpc::Status s = deps_.auth->Check(*context);
  if (s.ok()) s = CheckModel(request->name(), request->version());
  if (s.ok()) response->set_ready(Ready());
  return FinishNow(context, "ModelReady", s);
}

grpc::ServerUnaryReactor* KserveService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  grpc::Status s = deps_.auth->Check(*context);
  if (s.ok()) {
    response->set_name(kKservePlatform);
    response->set_version(kKserveServerVersion);
    // Only what is implemented: a client then skips the rest.
    response->add_extensions("model_configuration");
    response->add_extensions("parameters");
  }
  return FinishNow(context, "ServerMetadata", s);
}

grpc::ServerUnaryReactor* KserveService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  grpc::Status s = deps_.auth->Check(*context);
  if (s.ok()) s = CheckModel(request->name(), request->version());
  if (s.ok()) ToModelMetadata(deps_.model_name, response);
  return FinishNow(context, "ModelMetadata", s);
}

grpc::ServerUnaryReactor* KserveService::ModelConfig(grpc::CallbackServerContext* context,
                                                     const inference::ModelConfigRequest* request,
                                                     inference::ModelConfigResponse* response) {
  grpc::Status s = deps_.auth->Check(*context);
  if (s.ok()) s = CheckModel(request->name(), request->version());
  if (s.ok()) ToModelConfig(deps_.model_name, response->mutable_config());
  return FinishNow(context, "ModelConfig", s);
}

// ---- ModelInfer ----

grpc::ServerUnaryReactor* KserveService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest* request,
                                                    inference::ModelInferResponse* response) {
  const Clock::time_point start = Clock::now();
  auto* reactor = new CancellableUnaryReactor;  // a client that leaves cancels its generation
  auto fail = [&](const grpc::Status& status) {
    deps_.metrics->OnRequest(kInferRpc, CodeName(status.error_code()),
                             Seconds(Clock::now() - start));
    reactor->Finish(status);
    return reactor;
  };
  std::shared_ptr<const Tokenizer> tokenizer;
  const Admission admission(deps_.state, deps_.auth);
  if (grpc::Status s =
          admission.Check(*context, Admission::Work::kNew, Admission::Needs::kModel, &tokenizer);
      !s.ok()) {
    return fail(s);
  }
  GenerationBackend* backend = backend_.load();
  if (backend == nullptr) return fail(NotAttached());
  Result<KserveRequest> parsed = ParseInferRequest(*request, deps_.model_name);
  if (!parsed.ok()) return fail(ToGrpcStatus(parsed.status()));
  if (parsed->options.stream) {
    return fail(ToGrpcStatus(
        Status::InvalidArgument("stream", "true needs ModelStreamInfer (a decoupled model)")));
  }
  Result<GenerationRequest> converted = ToGenerationRequest(
      parsed->prompt, parsed->sampling, *tokenizer, deps_.limits, backend->sampling_defaults());
  if (!converted.ok()) return fail(ToGrpcStatus(converted.status()));

  auto run = std::make_shared<Run>(this, kInferRpc, std::move(*parsed),
                                   static_cast<int64_t>(converted->prompt_ids.size()), start);
  // Finish before the in-flight count drops, so a drain that sees no call in
  // flight has no reply left to send.
  auto end =
      std::make_shared<UnaryEnd>(reactor, [run](grpc::StatusCode code) { run->Account(code); });
  Result<uint64_t> id = backend->StreamGenerate(
      std::move(*converted),
      [run](std::span<const GeneratedToken> tokens) { (void)run->OnTokens(tokens); },
      [this, run, end, response, context](const Status& status, const StreamSummary& summary) {
        grpc::Status result = ToGrpcStatus(status);
        if (result.ok() && summary.finish == FinishReason::kCancelled && context->IsCancelled()) {
          result = grpc::Status(grpc::StatusCode::CANCELLED, "ModelInfer: cancelled by the client");
        }
        if (result.ok()) {
          KserveOutput out;
          out.text = run->text();
          out.output_tokens = summary.generated_tokens;
          out.input_tokens = summary.prompt_tokens;
          out.finished = true;
          out.finish = summary.finish;
          ToInferResponse(run->request, deps_.model_name, out, response);
        }
        end->Finish(result);
      });
  if (!id.ok()) {
    end->Finish(ToGrpcStatus(id.status()));
    return reactor;
  }
  reactor->hook()->Set([backend, stream = *id] { backend->Cancel(stream); });
  return reactor;
}

// ---- ModelStreamInfer ----

// The stream's queue of responses and its end-of-call state machine, shared
// with the backend's callbacks (which may outlive the reactor). Every event
// returns the one step the caller then takes outside the lock, as
// StreamCallQueue does for Generate: at most one write in flight, Finish
// exactly once and only with no write in flight, and after Finish nothing.
//
// The stream finishes OK once the client has half-closed, every request
// has ended and every response is written; CANCELLED as soon as no write
// is in flight after the client cancelled or a write failed (what is
// queued is then dropped and running requests are cancelled).
class KserveService::StreamReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse> {
 public:
  StreamReactor(const KserveService* service, grpc::CallbackServerContext* context);

  // Checks the token, then reads the first request.
  void Start();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  class Shared;

  // Admits, converts and starts one request; its responses (or its error)
  // go through the queue.
  void StartRequest(const inference::ModelInferRequest& request);

  const KserveService* service_;
  grpc::CallbackServerContext* context_;
  inference::ModelInferRequest request_;  // the read in flight's message
  std::shared_ptr<Shared> shared_;
};

class KserveService::StreamReactor::Shared {
 public:
  struct Step {
    enum class Kind { kNothing, kWrite, kFinish };
    Kind kind = Kind::kNothing;
    const StreamResponse* message = nullptr;  // kWrite: valid until WriteDone
    grpc::Status status;                      // kFinish
    bool read = false;                        // then read the next request
  };

  // Reads pause while this many responses wait to be written, so that a
  // client that sends requests without reading the responses cannot grow
  // the queue without bound; the write that brings it below resumes them.
  static constexpr size_t kMaxPendingResponses = 64;

  Shared(StreamReactor* reactor, const KserveService* service)
      : reactor_(reactor), service_(service) {}

  void Apply(const Step& step) {
    switch (step.kind) {
      case Step::Kind::kNothing:
        break;
      case Step::Kind::kWrite:
        reactor_->StartWrite(step.message);
        break;
      case Step::Kind::kFinish:
        reactor_->Finish(step.status);
        break;
    }
    if (step.read) reactor_->StartRead(&reactor_->request_);
  }

  // A request was read and started: read the next one, unless the stream
  // is closing or too many responses wait (WriteDone resumes reading).
  Step ReadDone() {
    std::lock_guard<std::mutex> lock(mu_);
    Step step;
    if (state_ != State::kOpen) return step;
    if (pending_.size() >= kMaxPendingResponses) {
      reads_paused_ = true;
    } else {
      step.read = true;
    }
    return step;
  }

  // A request that failed before it ran (admission, validation): one error
  // response, counted now.
  Step Fail(const std::string& id, bool empty_final, const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kOpen) return {};
    Entry e;
    e.kind = Entry::Kind::kError;
    e.id = id;
    e.empty_final = empty_final;
    e.error = status.error_message();
    pending_.push_back(std::move(e));
    return PumpLocked();
  }

  // Registers a run before it starts; false when the stream is closing (it
  // must then not start).
  bool AddRun(const std::shared_ptr<Run>& run) {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kOpen && state_ != State::kReadsDone) return false;
    active_.emplace(run.get(), ActiveRun{run, std::nullopt});
    return true;
  }

  // The backend's id for a run; true when the stream was cancelled
  // meanwhile and the run must be cancelled now.
  bool SetStreamId(Run* run, uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(run);
    if (it == active_.end()) return false;
    it->second.stream_id = id;
    return state_ == State::kAborting || state_ == State::kFinished;
  }

  // Backend: tokens of a run. A streaming run's join the response of the
  // same run that has not started writing, or start a new one.
  Step OnTokens(Run* run, std::span<const GeneratedToken> tokens) {
    if (tokens.empty()) return {};
    std::string text = run->OnTokens(tokens);
    if (!run->request.options.stream) return {};
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kAborting || state_ == State::kFinished) return {};
    Entry* e = OpenEntryLocked(run);
    e->output.text += text;
    e->output.output_tokens += static_cast<int64_t>(tokens.size());
    return PumpLocked();
  }

  // Backend: a run ended. Queues its last responses; the run is counted
  // once the one that ends it is written.
  Step OnEnd(Run* run, const Status& status, const StreamSummary& summary) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = active_.find(run);
    if (it == active_.end()) return {};
    std::shared_ptr<Run> owned = std::move(it->second.run);
    active_.erase(it);
    if (state_ == State::kAborting || state_ == State::kFinished) {
      lock.unlock();
      owned->Account(grpc::StatusCode::CANCELLED);
      return {};
    }
    const KserveOptions& o = run->request.options;
    if (!status.ok()) {
      Entry e;
      e.kind = Entry::Kind::kError;
      e.run = owned;
      e.id = run->request.id;
      e.empty_final = o.empty_final_response;
      e.error = status.message();
      e.code = ToGrpcStatus(status).error_code();
      e.ends_request = true;
      pending_.push_back(std::move(e));
      return PumpLocked();
    }
    Entry* last = nullptr;
    if (!o.stream) {
      last = NewEntryLocked(owned);
      last->output.text = run->text();
      last->output.output_tokens = run->generated();
    } else if (!pending_.empty() && pending_.back().run == owned &&
               pending_.back().kind == Entry::Kind::kOutput) {
      last = &pending_.back();
    } else if (!o.empty_final_response || o.finish_reason) {
      last = NewEntryLocked(owned);  // carries the finish reason
    }
    if (last != nullptr) {
      last->output.finished = true;
      last->output.finish = summary.finish;
      last->ends_request = !o.empty_final_response;
    }
    if (o.empty_final_response) {
      Entry e;
      e.kind = Entry::Kind::kEmptyFinal;
      e.run = owned;
      e.id = run->request.id;
      e.ends_request = true;
      pending_.push_back(std::move(e));
    }
    return PumpLocked();
  }

  // Transport: the client half-closed the stream.
  Step ReadsDone() {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kOpen) state_ = State::kReadsDone;
    return PumpLocked();
  }

  Step WriteDone(bool ok) {
    std::vector<std::shared_ptr<Run>> dropped;
    std::vector<std::pair<uint64_t, GenerationBackend*>> cancels;
    Step step;
    std::optional<std::pair<std::shared_ptr<Run>, grpc::StatusCode>> ended;
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (writing_ends_ != nullptr) {
        ended.emplace(std::move(writing_ends_), ok ? writing_code_ : grpc::StatusCode::CANCELLED);
      }
      if (!ok) AbortLocked(&dropped, &cancels);
      step = PumpLocked();
      if (reads_paused_ && state_ == State::kOpen && pending_.size() < kMaxPendingResponses) {
        reads_paused_ = false;
        step.read = true;
      }
    }
    // The response that ends a request was written: count it.
    if (ended) ended->first->Account(ended->second);
    Settle(dropped, cancels);
    return step;
  }

  // Transport: the client cancelled (or the server shuts the call down).
  Step Abort() {
    std::vector<std::shared_ptr<Run>> dropped;
    std::vector<std::pair<uint64_t, GenerationBackend*>> cancels;
    Step step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      AbortLocked(&dropped, &cancels);
      step = PumpLocked();
    }
    Settle(dropped, cancels);
    return step;
  }

  // Ends the stream before any request (the token).
  Step FinishNow(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::kFinished;
    return {Step::Kind::kFinish, nullptr, status, false};
  }

  void SetBackend(GenerationBackend* backend) {
    std::lock_guard<std::mutex> lock(mu_);
    backend_ = backend;
  }

 private:
  enum class State { kOpen, kReadsDone, kAborting, kFinished };

  // One response waiting to be written.
  struct Entry {
    enum class Kind { kOutput, kError, kEmptyFinal };
    Kind kind = Kind::kOutput;
    std::shared_ptr<Run> run;  // null for a request that never ran
    std::string id;
    KserveOutput output;        // kOutput
    std::string error;          // kError
    bool empty_final = false;   // kError: triton_final_response is set
    bool ends_request = false;  // written: the run is counted
    grpc::StatusCode code = grpc::StatusCode::OK;
  };
  struct ActiveRun {
    std::shared_ptr<Run> run;
    std::optional<uint64_t> stream_id;
  };

  Entry* NewEntryLocked(const std::shared_ptr<Run>& run) {
    Entry e;
    e.run = run;
    e.id = run->request.id;
    e.output.input_tokens = run->prompt_tokens;
    pending_.push_back(std::move(e));
    return &pending_.back();
  }

  // The run's response that has not started writing, or a new one.
  Entry* OpenEntryLocked(Run* run) {
    if (!pending_.empty() && pending_.back().run.get() == run &&
        pending_.back().kind == Entry::Kind::kOutput && !pending_.back().output.finished) {
      return &pending_.back();
    }
    auto it = active_.find(run);
    return NewEntryLocked(it->second.run);
  }

  void AbortLocked(std::vector<std::shared_ptr<Run>>* dropped,
                   std::vector<std::pair<uint64_t, GenerationBackend*>>* cancels) {
    if (state_ == State::kAborting || state_ == State::kFinished) return;
    state_ = State::kAborting;
    for (Entry& e : pending_) {
      if (e.ends_request && e.run != nullptr) dropped->push_back(std::move(e.run));
    }
    pending_.clear();
    for (auto& [run, active] : active_) {
      if (active.stream_id && backend_ != nullptr)
        cancels->emplace_back(*active.stream_id, backend_);
    }
  }

  static void Settle(const std::vector<std::shared_ptr<Run>>& dropped,
                     const std::vector<std::pair<uint64_t, GenerationBackend*>>& cancels) {
    for (const auto& run : dropped) run->Account(grpc::StatusCode::CANCELLED);
    for (const auto& [id, backend] : cancels) backend->Cancel(id);
  }

  void BuildLocked(Entry& e) {
    writing_ = StreamResponse();
    inference::ModelInferResponse* r = writing_.mutable_infer_response();
    const std::string& model = service_->deps_.model_name;
    switch (e.kind) {
      case Entry::Kind::kOutput:
        ToInferResponse(e.run->request, model, e.output, r);
        if (e.run->request.options.empty_final_response) SetFinalResponseFlag(false, r);
        break;
      case Entry::Kind::kError:
        writing_.set_error_message(e.error);
        r->set_model_name(model);
        r->set_model_version(kKserveModelVersion);
        r->set_id(e.id);
        if (e.empty_final) SetFinalResponseFlag(true, r);
        break;
      case Entry::Kind::kEmptyFinal:
        r->set_model_name(model);
        r->set_model_version(kKserveModelVersion);
        r->set_id(e.id);
        SetFinalResponseFlag(true, r);
        break;
    }
    writing_ends_ = e.ends_request ? std::move(e.run) : nullptr;
    writing_code_ = e.code;
  }

  Step PumpLocked() {
    if (state_ == State::kFinished || write_in_flight_) return {};
    if (state_ == State::kAborting) {
      state_ = State::kFinished;
      return {Step::Kind::kFinish, nullptr,
              grpc::Status(grpc::StatusCode::CANCELLED, "ModelStreamInfer: cancelled"), false};
    }
    if (pending_.empty()) {
      if (state_ == State::kReadsDone && active_.empty()) {
        state_ = State::kFinished;
        return {Step::Kind::kFinish, nullptr, grpc::Status::OK, false};
      }
      return {};
    }
    BuildLocked(pending_.front());
    pending_.pop_front();
    write_in_flight_ = true;
    return {Step::Kind::kWrite, &writing_, {}, false};
  }

  StreamReactor* const reactor_;
  const KserveService* const service_;

  std::mutex mu_;
  State state_ = State::kOpen;                            // GUARDED_BY(mu_)
  bool write_in_flight_ = false;                          // GUARDED_BY(mu_)
  std::deque<Entry> pending_;                             // GUARDED_BY(mu_)
  std::map<Run*, ActiveRun> active_;                      // GUARDED_BY(mu_)
  GenerationBackend* backend_ = nullptr;                  // GUARDED_BY(mu_)
  bool reads_paused_ = false;                             // GUARDED_BY(mu_)
  StreamResponse writing_;                                // the write in flight's message
  std::shared_ptr<Run> writing_ends_;                     // GUARDED_BY(mu_)
  grpc::StatusCode writing_code_ = grpc::StatusCode::OK;  // GUARDED_BY(mu_)
};

KserveService::StreamReactor::StreamReactor(const KserveService* service,
                                            grpc::CallbackServerContext* context)
    : service_(service), context_(context), shared_(std::make_shared<Shared>(this, service)) {}

void KserveService::StreamReactor::Start() {
  if (grpc::Status s = service_->deps_.auth->Check(*context_); !s.ok()) {
    service_->deps_.metrics->OnRequest(kStreamRpc, CodeName(s.error_code()), 0);
    shared_->Apply(shared_->FinishNow(s));
    return;
  }
  StartRead(&request_);
}

void KserveService::StreamReactor::OnReadDone(bool ok) {
  if (!ok) {
    shared_->Apply(shared_->ReadsDone());
    return;
  }
  StartRequest(request_);
  shared_->Apply(shared_->ReadDone());
}

void KserveService::StreamReactor::OnWriteDone(bool ok) { shared_->Apply(shared_->WriteDone(ok)); }

void KserveService::StreamReactor::OnCancel() { shared_->Apply(shared_->Abort()); }

void KserveService::StreamReactor::StartRequest(const inference::ModelInferRequest& request) {
  const Clock::time_point start = Clock::now();
  const KserveServiceDeps& deps = service_->deps_;
  bool empty_final = false;
  if (auto it = request.parameters().find("triton_enable_empty_final_response");
      it != request.parameters().end()) {
    empty_final = it->second.bool_param();
  }
  auto fail = [&](const grpc::Status& status) {
    deps.metrics->OnRequest(kStreamRpc, CodeName(status.error_code()),
                            Seconds(Clock::now() - start));
    shared_->Apply(shared_->Fail(request.id(), empty_final, status));
  };
  std::shared_ptr<const Tokenizer> tokenizer;
  const Admission admission(deps.state, deps.auth);
  if (grpc::Status s =
          admission.CheckState(Admission::Work::kNew, Admission::Needs::kModel, &tokenizer);
      !s.ok()) {
    return fail(s);
  }
  GenerationBackend* backend = service_->backend_.load();
  if (backend == nullptr) return fail(NotAttached());
  shared_->SetBackend(backend);
  Result<KserveRequest> parsed = ParseInferRequest(request, deps.model_name);
  if (!parsed.ok()) return fail(ToGrpcStatus(parsed.status()));
  Result<GenerationRequest> converted = ToGenerationRequest(
      parsed->prompt, parsed->sampling, *tokenizer, deps.limits, backend->sampling_defaults());
  if (!converted.ok()) return fail(ToGrpcStatus(converted.status()));

  auto run = std::make_shared<Run>(service_, kStreamRpc, std::move(*parsed),
                                   static_cast<int64_t>(converted->prompt_ids.size()), start);
  if (!shared_->AddRun(run)) {
    run->Account(grpc::StatusCode::CANCELLED);
    return;
  }
  std::shared_ptr<Shared> shared = shared_;
  Run* raw = run.get();
  Result<uint64_t> id = backend->StreamGenerate(
      std::move(*converted),
      [shared, raw](std::span<const GeneratedToken> tokens) {
        shared->Apply(shared->OnTokens(raw, tokens));
      },
      [shared, raw](const Status& status, const StreamSummary& summary) {
        shared->Apply(shared->OnEnd(raw, status, summary));
      });
  if (!id.ok()) {
    shared_->Apply(shared_->OnEnd(raw, id.status(), {}));
    return;
  }
  if (shared_->SetStreamId(raw, *id)) backend->Cancel(*id);
}

grpc::ServerBidiReactor<inference::ModelInferRequest, StreamResponse>*
KserveService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  auto* reactor = new StreamReactor(this, context);
  reactor->Start();
  return reactor;
}

}  // namespace relayout::server
