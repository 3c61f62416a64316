#include "engine/serving/serving_engine.h"

#include <algorithm>
#include <utility>

#include "engine/base/secure_random.h"
#include "engine/model/generation.h"
#include "engine/serving/batch_scheduler.h"
#include "engine/tokenizer/stop_string_filter.h"
#include "engine/tokenizer/streaming_decoder.h"

namespace relayout {
namespace {

// The same answer for a handle that never existed and one that is gone, and
// never the client's bytes: the reply tells a prober nothing.
Status SessionNotFound() {
  return Status::NotFound("session", "not found (unknown, released, finished or expired)");
}

}  // namespace

// One stream or session. Every field is read and written under mu_, except
// during a forward pass, which reads prompt ids and last_token of the
// sequences in its batch (nobody else writes them) with mu_ released. Only
// the scheduler thread (or the destructor, after it) erases a sequence.
struct ServingEngine::Sequence {
  enum class State { kWaiting, kRunning, kIdle };

  uint64_t id = 0;
  bool is_session = false;
  std::string handle;  // sessions: the unguessable name clients use
  ServingRequest request;
  int64_t kv_blocks = 0;  // the worst case, promised at admission
  State state = State::kWaiting;
  bool cancelled = false;  // Cancel, Release or expiry: reaped at the next step
  Status prefill_cancel;   // what a pending on_prefill gets when cancelled
  bool done = false;       // finished this step: erased at its end
  Clock::time_point last_used;

  SequenceId kv = 0;  // 0: not admitted
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StreamingDecoder> decoder;
  std::unique_ptr<StopStringFilter> filter;
  bool prefilled = false;
  int64_t position = 0;    // positions with K/V
  int32_t last_token = 0;  // input of the next decode
  int64_t generated = 0;

  TokensCallback on_tokens;    // stream
  EndCallback on_end;          // stream
  PrefillCallback on_prefill;  // session, until its prefill is done
  DecodeCallback on_decode;    // session, while a Decode is in flight
  int64_t decode_left = 0;
  std::vector<ServingToken> decoded;

  int64_t prompt_tokens() const { return static_cast<int64_t>(request.prompt_ids.size()); }
  bool wants_decode() const {
    return state == State::kRunning && prefilled && (!is_session || decode_left > 0);
  }
};

Result<std::unique_ptr<ServingEngine>> ServingEngine::Create(
    const ModelConfig& config, NamingScheme naming, LoadedWeights weights,
    std::unique_ptr<MemoryLedger> weights_ledger, std::shared_ptr<const Tokenizer> tokenizer,
    ServingEngineOptions options) {
  return CreateWith(config, std::move(weights_ledger), std::move(tokenizer), std::move(options),
                    [&](ServingEngine* e) {
                      return LlamaModel::Create(config, naming, std::move(weights), e->pool_.get(),
                                                e->ledger_.get());
                    });
}

Result<std::unique_ptr<ServingEngine>> ServingEngine::Create(
    const ModelConfig& config, NamingScheme naming, DeviceWeights weights,
    std::unique_ptr<Device> device, std::unique_ptr<MemoryLedger> weights_ledger,
    std::shared_ptr<const Tokenizer> tokenizer, ServingEngineOptions options) {
  // The weights' buffers must go before their device on every path (the
  // parameters' own destruction order is the compiler's): locals, device
  // first.
  std::unique_ptr<Device> owned_device = std::move(device);
  DeviceWeights owned_weights = std::move(weights);
  if (owned_device == nullptr) return Status::InvalidArgument("serving engine", "no device");
  return CreateWith(config, std::move(weights_ledger), std::move(tokenizer), std::move(options),
                    [&](ServingEngine* e) {
                      e->device_ = std::move(owned_device);
                      return LlamaModel::Create(config, naming, std::move(owned_weights),
                                                e->device_.get());
                    });
}

Result<std::unique_ptr<ServingEngine>> ServingEngine::CreateWith(
    const ModelConfig& config, std::unique_ptr<MemoryLedger> weights_ledger,
    std::shared_ptr<const Tokenizer> tokenizer, ServingEngineOptions options,
    const std::function<Result<std::unique_ptr<LlamaModel>>(ServingEngine*)>& make_model) {
  const ServingLimits& l = options.limits;
  if (l.max_prompt_tokens < 1 || l.max_new_tokens < 1 || l.max_sessions < 1 || l.max_queue < 1 ||
      l.session_idle_ttl_seconds < 1) {
    return Status::InvalidArgument("serving engine", "every limit must be at least 1");
  }
  if (options.max_batch_tokens < 1 || options.max_positions < 0 || tokenizer == nullptr) {
    return Status::InvalidArgument("serving engine",
                                   "max_batch_tokens must be >= 1, max_positions >= 0, and a "
                                   "tokenizer given");
  }
  if (weights_ledger == nullptr) weights_ledger = std::make_unique<MemoryLedger>();
  std::unique_ptr<ServingEngine> e(
      new ServingEngine(std::move(weights_ledger), std::move(tokenizer), std::move(options)));
  e->pool_ = std::make_unique<kernels::ThreadPool>(e->options_.threads);
  ASSIGN_OR_RETURN(e->model_, make_model(e.get()));
  ASSIGN_OR_RETURN(e->cache_, KvCache::Create(e->model_->kv_cache_shape(e->options_.kv_block_size),
                                              e->options_.kv_cache_bytes, e->model_->device()));
  e->max_positions_ =
      e->options_.max_positions > 0 ? e->options_.max_positions : config.context_length;
  GenerationOptions stops;
  stops.stop_at_bos = e->options_.stop_at_bos;
  e->stop_ids_ = StopTokenIds(*e->tokenizer_, config, stops);
  e->logits_.resize(static_cast<size_t>(config.vocab_size));
  e->cache_->EnablePrefixCaching(e->options_.prefix_caching);
  e->stats_.kv_blocks_total = e->cache_->total_blocks();
  e->stats_.kv_block_size = e->cache_->block_size();
  e->thread_ = std::thread([engine = e.get()] { engine->Loop(); });
  return e;
}

ServingEngine::ServingEngine(std::unique_ptr<MemoryLedger> ledger,
                             std::shared_ptr<const Tokenizer> tokenizer,
                             ServingEngineOptions options)
    : ledger_(std::move(ledger)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {}

ServingEngine::~ServingEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  Calls calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, s] : sequences_) {
      if (s->on_end) {
        calls.push_back([cb = std::move(s->on_end),
                         end = StreamEnd{FinishReason::kCancelled, s->prompt_tokens(),
                                         s->generated}] { cb(Status::OK(), end); });
      }
      const Status gone = Status::Unavailable("serving engine", "shutting down");
      if (s->on_prefill) calls.push_back([cb = std::move(s->on_prefill), gone] { cb(gone); });
      if (s->on_decode) calls.push_back([cb = std::move(s->on_decode), gone] { cb(gone); });
    }
    sequences_.clear();
    handles_.clear();
    if (relayout_ != nullptr) {
      EndRelayout(Status::Cancelled("relayout", "the serving engine is shutting down"), &calls);
    }
  }
  for (auto& call : calls) call();
}

Result<std::unique_ptr<ServingEngine::Sequence>> ServingEngine::NewSequence(ServingRequest request,
                                                                            bool is_session) {
  const ServingLimits& limits = options_.limits;
  if (draining_) return Status::Unavailable("serving engine", "draining");
  const ServingRequestBounds bounds{limits, config().vocab_size, max_positions_,
                                    cache_->block_size(), cache_->total_blocks()};
  ASSIGN_OR_RETURN(const int64_t blocks, CheckServingRequest(&request, bounds));
  // Past max_sessions a request waits (admission counts the sessions);
  // only a full queue refuses it.
  if (static_cast<int64_t>(waiting_.size()) >= limits.max_queue) {
    return Status::ResourceExhausted(
        "queue",
        StrCat(waiting_.size(), " requests waiting, the limit max_queue = ", limits.max_queue));
  }
  auto s = std::make_unique<Sequence>();
  s->id = next_id_++;
  s->is_session = is_session;
  s->request = std::move(request);
  s->kv_blocks = blocks;
  return s;
}

Result<uint64_t> ServingEngine::StartStream(ServingRequest request, TokensCallback on_tokens,
                                            EndCallback on_end) {
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::unique_ptr<Sequence> s, NewSequence(std::move(request), false));
    s->on_tokens = std::move(on_tokens);
    s->on_end = std::move(on_end);
    id = s->id;
    waiting_.push_back(id);
    sequences_.emplace(id, std::move(s));
    kicked_ = true;
  }
  wake_.notify_all();
  return id;
}

void ServingEngine::Cancel(uint64_t stream_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sequences_.find(stream_id);
    if (it == sequences_.end() || it->second->done || it->second->cancelled) return;
    Sequence* s = it->second.get();
    // A session is cancelled only while its prefill is pending (its caller
    // left); once prefilled it belongs to whoever holds its handle.
    if (s->is_session && !s->on_prefill) return;
    s->prefill_cancel = Status::Cancelled("session", "cancelled before its prefill ran");
    s->cancelled = true;
    reap_ = true;
  }
  wake_.notify_all();
}

Result<uint64_t> ServingEngine::StartSession(ServingRequest request, PrefillCallback done) {
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::unique_ptr<Sequence> s, NewSequence(std::move(request), true));
    // 128 bits from the OS: a client cannot reach another's session by
    // guessing or counting.
    ASSIGN_OR_RETURN(s->handle, SecureRandomHex(16));
    s->on_prefill = std::move(done);
    handles_.emplace(s->handle, s->id);
    id = s->id;
    waiting_.push_back(id);
    sequences_.emplace(id, std::move(s));
    kicked_ = true;
  }
  wake_.notify_all();
  return id;
}

ServingEngine::Sequence* ServingEngine::FindSession(std::string_view handle) {
  auto h = handles_.find(handle);
  if (h == handles_.end()) return nullptr;
  auto it = sequences_.find(h->second);
  if (it == sequences_.end()) return nullptr;
  Sequence* s = it->second.get();
  if (!s->is_session || s->cancelled || s->done || !s->prefilled) return nullptr;
  return s;
}

Status ServingEngine::Decode(std::string_view session, int64_t num_tokens, DecodeCallback done) {
  if (num_tokens < 1) return Status::InvalidArgument("num_tokens", "must be at least 1");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_all_) return Status::Unavailable("serving engine", "draining: work cancelled");
    Sequence* s = FindSession(session);
    if (s == nullptr) return SessionNotFound();
    if (s->state != Sequence::State::kIdle) {
      return Status::FailedPrecondition("session", "a Decode of it is in flight");
    }
    s->state = Sequence::State::kRunning;
    s->decode_left = num_tokens;
    s->decoded.clear();
    s->on_decode = std::move(done);
    kicked_ = true;
  }
  wake_.notify_all();
  return Status::OK();
}

Status ServingEngine::Release(std::string_view session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Sequence* s = FindSession(session);
    if (s == nullptr) return SessionNotFound();
    s->cancelled = true;
    reap_ = true;
  }
  wake_.notify_all();
  return Status::OK();
}

void ServingEngine::CancelAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Sticky: nothing new starts after it, so a shutdown that follows has
    // nothing to wait for.
    cancelled_all_ = true;
    draining_ = true;
    for (auto& [id, s] : sequences_) {
      if (s->done || s->cancelled) continue;
      if (s->is_session && s->state == Sequence::State::kIdle) continue;
      s->prefill_cancel =
          Status::Unavailable("serving engine", "draining: cancelled before its prefill ran");
      s->cancelled = true;
      reap_ = true;
    }
  }
  wake_.notify_all();
}

void ServingEngine::ExpireIdleSessions(Clock::time_point now) {
  bool expired = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto ttl = std::chrono::seconds(options_.limits.session_idle_ttl_seconds);
    for (auto& [id, s] : sequences_) {
      if (s->is_session && s->state == Sequence::State::kIdle && !s->cancelled &&
          s->last_used + ttl <= now) {
        s->cancelled = true;
        expired = true;
      }
    }
    reap_ = reap_ || expired;
  }
  if (expired) wake_.notify_all();
}

struct ServingEngine::RelayoutJob {
  RelayoutJobOptions options;
  LiveRelayoutPlan plan;
  std::vector<ResidentTensor> tensors;  // as planned; their bytes do not move
  size_t next = 0;                      // into plan.steps
  uint64_t bytes_done = 0;
  bool cancel = false;  // GUARDED_BY(mu_)
  ConversionWindow window;
  RelayoutReport report;
};

Result<LiveRelayoutPlan> ServingEngine::StartRelayout(RelayoutJobOptions options) {
  if (!options.choose) return Status::InvalidArgument("relayout", "no target layouts");
  if (!(options.step_time_fraction > 0)) {
    return Status::InvalidArgument("relayout", "step_time_fraction must be > 0");
  }
  Calls calls;
  LiveRelayoutPlan result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ || cancelled_all_) return Status::Unavailable("serving engine", "draining");
    if (relayout_ != nullptr) {
      return Status::FailedPrecondition(
          "relayout", StrCat("another relayout is running (", relayout_->next, " of ",
                             relayout_->plan.steps.size(), " tensors done)"));
    }
    // No relayout runs, so no layout changes under this read.
    auto job = std::make_unique<RelayoutJob>();
    job->tensors = model_->ResidentTensors();
    ASSIGN_OR_RETURN(job->plan,
                     PlanLiveRelayout(job->tensors, options.choose, options.budget_bytes));
    for (const LiveRelayoutStep& step : job->plan.steps) {
      RETURN_IF_ERROR(model_->CheckWeightLayout(step.tensor, step.to));
    }
    job->options = std::move(options);
    RelayoutReport& r = job->report;
    r.device = model_->device()->spec();
    r.weights_bytes = job->plan.weight_bytes;
    r.budget_bytes = job->plan.budget_bytes;
    r.predicted_peak_bytes = job->plan.predicted_peak_bytes();
    // The peaks below are this relayout's.
    ledger_->ResetPeaks();
    result = job->plan;
    if (job->options.on_start) job->options.on_start(job->plan);
    relayout_ = std::move(job);
    if (relayout_->plan.steps.empty()) EndRelayout(Status::OK(), &calls);
    kicked_ = true;
  }
  for (auto& call : calls) call();
  wake_.notify_all();
  return result;
}

void ServingEngine::CancelRelayout() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (relayout_ == nullptr) return;
    relayout_->cancel = true;
    kicked_ = true;
  }
  wake_.notify_all();
}

RelayoutStatus ServingEngine::relayout_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (relayout_ == nullptr) return {};
  return {true, relayout_->next, relayout_->plan.steps.size(), relayout_->bytes_done,
          relayout_->plan.bytes_to_convert};
}

void ServingEngine::EndRelayout(const Status& status, Calls* calls) {
  std::unique_ptr<RelayoutJob> job = std::move(relayout_);
  RelayoutReport report = std::move(job->report);
  if (status.ok()) {
    report.scratch_peak_bytes = ledger_->peak(MemoryCategory::kScratch);
    report.staging_peak_bytes = ledger_->peak(MemoryCategory::kStaging);
    // In place: the resident bytes do not change; scratch comes and goes.
    report.measured_peak_bytes = report.weights_bytes + report.scratch_peak_bytes;
    job->window.Finish(job->plan.bytes_to_convert, &report);
  }
  if (job->options.on_layouts) {
    // Read here, under mu_ and with the job ended: no layout moves now.
    calls->push_back([cb = std::move(job->options.on_layouts),
                      tensors = model_->ResidentTensors()] { cb(tensors); });
  }
  if (job->options.on_done) {
    calls->push_back([cb = std::move(job->options.on_done), status, report = std::move(report)] {
      cb(status, report);
    });
  }
  // The observer is released with the job, outside the lock.
  calls->push_back([job = std::shared_ptr<RelayoutJob>(std::move(job))] {});
}

MemoryLedgerSnapshot ServingEngine::ConversionView(uint64_t weight_bytes) const {
  MemoryLedgerSnapshot s = ledger_->Snapshot();
  const auto at = [](MemoryCategory c) { return static_cast<size_t>(c); };
  s.total_current_bytes = weight_bytes + s.current_bytes[at(MemoryCategory::kScratch)];
  s.total_peak_bytes = weight_bytes + s.peak_bytes[at(MemoryCategory::kScratch)];
  return s;
}

void ServingEngine::RelayoutSlice(std::unique_lock<std::mutex>& lock, bool busy, Calls* calls) {
  RelayoutJob& job = *relayout_;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                         busy ? job.options.step_time_fraction * step_seconds_ : 0.0));
  Status status;
  do {
    if (job.cancel) {
      EndRelayout(Status::Cancelled("relayout", StrCat("cancelled after ", job.next, " of ",
                                                       job.plan.steps.size(), " tensors")),
                  calls);
      return;
    }
    const LiveRelayoutStep& step = job.plan.steps[job.next];
    lock.unlock();
    // Between steps: no Forward reads this tensor while its bytes move.
    Layout now;
    TensorConversionReport tensor;
    status = ConvertResidentTensor(step, job.tensors[step.tensor].data, model_->device(),
                                   ledger_.get(), &now, &tensor);
    // Whatever layout the bytes are in, the model reads them as that.
    const Status bound = model_->SetWeightLayout(step.tensor, now);
    if (status.ok()) status = bound;
    if (status.ok()) {
      job.report.tensors.push_back(tensor);
      if (job.options.observer != nullptr) {
        job.options.observer->OnTensorConverted(tensor, job.next + 1, job.plan.steps.size(),
                                                ConversionView(job.plan.weight_bytes));
      }
    }
    lock.lock();
    if (!status.ok()) break;
    job.bytes_done += step.bytes;
    if (++job.next == job.plan.steps.size()) break;
  } while (Clock::now() < deadline);
  if (!status.ok() || job.next == job.plan.steps.size()) EndRelayout(status, calls);
}

void ServingEngine::Drain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

ServingStats ServingEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ServingEngine::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    ExpireIdleSessions(Clock::now());
    lock.lock();
    Calls calls;
    const bool worked = Step(lock, &calls);
    if (!calls.empty()) {
      lock.unlock();
      for (auto& call : calls) call();
      // Destroyed outside the lock: the calls own their callers' state.
      calls.clear();
      lock.lock();
    }
    if (relayout_ != nullptr) {
      RelayoutSlice(lock, worked, &calls);
      if (!calls.empty()) {
        lock.unlock();
        for (auto& call : calls) call();
        calls.clear();
        lock.lock();
      }
      continue;
    }
    if (worked || reap_) continue;
    // Sleep until new work, or until the first idle session expires.
    Clock::time_point wake_at = Clock::now() + std::chrono::hours(1);
    const auto ttl = std::chrono::seconds(options_.limits.session_idle_ttl_seconds);
    for (const auto& [id, s] : sequences_) {
      if (s->is_session && s->state == Sequence::State::kIdle) {
        wake_at = std::min(wake_at, s->last_used + ttl);
      }
    }
    wake_.wait_until(lock, wake_at, [this] { return stop_ || reap_ || kicked_; });
  }
}

void ServingEngine::Reap(Calls* calls) {
  if (!reap_) return;
  reap_ = false;
  for (auto it = sequences_.begin(); it != sequences_.end();) {
    Sequence* s = it->second.get();
    if (!s->cancelled) {
      ++it;
      continue;
    }
    if (s->on_end) {
      calls->push_back(
          [cb = std::move(s->on_end), end = StreamEnd{FinishReason::kCancelled, s->prompt_tokens(),
                                                      s->generated}] { cb(Status::OK(), end); });
    }
    if (s->on_decode) {
      SessionDecode out{std::move(s->decoded), FinishReason::kCancelled, s->prompt_tokens(),
                        s->generated};
      calls->push_back(
          [cb = std::move(s->on_decode), out = std::move(out)]() mutable { cb(std::move(out)); });
    }
    if (s->on_prefill) {
      calls->push_back([cb = std::move(s->on_prefill), status = s->prefill_cancel] { cb(status); });
    }
    if (s->state == Sequence::State::kWaiting) {
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), s->id));
    }
    if (s->kv != 0) cache_->Release(s->kv);
    handles_.erase(s->handle);
    it = sequences_.erase(it);
  }
  PublishStats(calls);
}

void ServingEngine::Admit(Sequence* s) {
  s->kv = cache_->CreateSequence();
  s->sampler = std::make_unique<Sampler>(s->request.sampling);
  s->sampler->ObservePrompt(s->request.prompt_ids);
  s->decoder = std::make_unique<StreamingDecoder>(tokenizer_.get(), s->request.prompt_ids.back());
  s->filter = std::make_unique<StopStringFilter>(s->request.stop_strings);
  s->state = Sequence::State::kRunning;
}

bool ServingEngine::Step(std::unique_lock<std::mutex>& lock, Calls* calls) {
  kicked_ = false;
  Reap(calls);
  // Blocks promised to admitted sequences but not yet taken are not free.
  int64_t free_blocks = cache_->free_blocks();
  std::vector<uint64_t> decoding;
  int64_t admitted = 0;
  for (const auto& [id, s] : sequences_) {
    if (s->kv != 0) {
      ++admitted;
      free_blocks -= std::max<int64_t>(
          0, s->kv_blocks - static_cast<int64_t>(cache_->block_table(s->kv).size()));
    }
    if (s->wants_decode() && !s->cancelled) decoding.push_back(id);
  }
  std::sort(decoding.begin(), decoding.end());
  std::vector<WaitingRequest> waiting;
  waiting.reserve(waiting_.size());
  int64_t waiting_tokens = 0;
  for (uint64_t id : waiting_) {
    const Sequence& s = *sequences_.at(id);
    // The token budget counts what the prefill computes: the prompt less
    // its cached prefix.
    const int64_t tokens = s.prompt_tokens() - cache_->MatchPrefix(s.request.prompt_ids);
    waiting.push_back({id, tokens, s.kv_blocks});
    // Admission is FIFO within the step's token budget: requests past it
    // cannot start this step, so their prefixes are not looked up.
    waiting_tokens += tokens;
    if (waiting_tokens >= options_.max_batch_tokens) break;
  }
  const Batch batch = ScheduleStep({waiting, decoding, free_blocks, options_.max_batch_tokens,
                                    options_.limits.max_sessions - admitted});
  if (batch.empty()) {
    stats_.batch_size = 0;
    stats_.batch_tokens = 0;
    PublishStats(calls);
    return false;
  }

  std::vector<Sequence*> members;
  std::vector<BatchEntry> entries;
  for (uint64_t id : batch.decodes) {
    Sequence* s = sequences_.at(id).get();
    members.push_back(s);
    entries.push_back({s->kv, {&s->last_token, 1}, s->position, false});
  }
  for (uint64_t id : batch.prefills) {
    waiting_.pop_front();  // the admitted prefills are the queue's head
    Sequence* s = sequences_.at(id).get();
    Admit(s);
    members.push_back(s);
    const std::span<const int32_t> prompt = s->request.prompt_ids;
    Result<int64_t> cached = cache_->AttachPrefix(s->kv, prompt);
    const int64_t skip = cached.ok() ? *cached : 0;  // a fresh sequence: always ok
    stats_.prefix_cache_hit_tokens += static_cast<uint64_t>(skip);
    entries.push_back({s->kv, prompt.subspan(static_cast<size_t>(skip)), skip, false});
  }
  stats_.batch_size = static_cast<int64_t>(entries.size());
  stats_.batch_tokens = batch.tokens;
  PublishStats(calls);

  lock.unlock();
  for (auto& call : *calls) call();
  calls->clear();
  const Clock::time_point forward_start = Clock::now();
  const Status status = model_->Forward(entries, cache_.get());
  const double forward_seconds =
      std::chrono::duration<double>(Clock::now() - forward_start).count();
  step_seconds_ =
      step_seconds_ == 0 ? forward_seconds : 0.8 * step_seconds_ + 0.2 * forward_seconds;
  lock.lock();

  ++stats_.steps;
  if (!status.ok()) {
    FailBatch(members, status, calls);
  } else {
    for (size_t i = 0; i < members.size(); ++i) {
      Sequence* s = members[i];
      if (s->cancelled) continue;  // reaped next step
      s->position = cache_->length(s->kv);
      s->prefilled = true;
      const std::span<const float> row = model_->Logits(i);
      std::copy(row.begin(), row.end(), logits_.begin());
      OnToken(s, logits_, calls);
    }
  }
  for (Sequence* s : members) {
    if (!s->done) continue;
    cache_->Release(s->kv);
    handles_.erase(s->handle);
    sequences_.erase(s->id);
  }
  PublishStats(calls);
  return true;
}

void ServingEngine::OnToken(Sequence* s, std::span<float> logits, Calls* calls) {
  SampledToken sampled = s->sampler->Sample(logits);
  const ServingRequest& r = s->request;
  FinishReason finish = FinishReason::kNone;
  ServingToken token;
  token.id = sampled.id;
  const bool end_of_generation =
      !r.ignore_eos && std::find(stop_ids_.begin(), stop_ids_.end(), sampled.id) != stop_ids_.end();
  if (end_of_generation) {
    finish = FinishReason::kEndOfGeneration;
  } else {
    ++s->generated;
    s->last_token = sampled.id;
    if (r.logprobs) {
      token.has_logprob = true;
      token.logprob = sampled.logprob;
      token.top = std::move(sampled.top);
    }
    bool stopped = false;
    token.text = s->filter->Append(s->decoder->Next(sampled.id), &stopped);
    if (stopped) {
      finish = FinishReason::kStopString;
    } else if (std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), sampled.id) !=
               r.stop_token_ids.end()) {
      finish = FinishReason::kStopToken;
    } else if (s->generated >= r.max_new_tokens) {
      finish = FinishReason::kMaxTokens;
    } else if (s->position >= max_positions_) {
      finish = FinishReason::kContextFull;
    }
    if (finish != FinishReason::kNone && finish != FinishReason::kStopString) {
      // The end: release what the decoder and the filter held back.
      token.text += s->filter->Append(s->decoder->Flush(), &stopped);
      if (stopped) finish = FinishReason::kStopString;
      token.text += s->filter->Finish();
    }
  }

  if (!s->is_session) {
    if (!end_of_generation) {
      calls->push_back([cb = s->on_tokens, token = std::move(token)] { cb({&token, 1}); });
    }
  } else if (s->on_prefill) {
    SessionPrefill out{s->handle, std::move(token), s->prompt_tokens(), finish};
    calls->push_back(
        [cb = std::move(s->on_prefill), out = std::move(out)]() mutable { cb(std::move(out)); });
    s->on_prefill = nullptr;
    s->state = Sequence::State::kIdle;
  } else {
    if (!end_of_generation) s->decoded.push_back(std::move(token));
    if (--s->decode_left == 0 && finish == FinishReason::kNone) {
      SessionDecode out{std::move(s->decoded), finish, s->prompt_tokens(), s->generated};
      calls->push_back(
          [cb = std::move(s->on_decode), out = std::move(out)]() mutable { cb(std::move(out)); });
      s->on_decode = nullptr;
      s->decoded.clear();
      s->state = Sequence::State::kIdle;
    }
  }
  s->last_used = Clock::now();
  if (finish != FinishReason::kNone) Finish(s, finish, calls);
}

void ServingEngine::Finish(Sequence* s, FinishReason finish, Calls* calls) {
  s->done = true;
  if (s->on_end) {
    calls->push_back(
        [cb = std::move(s->on_end), end = StreamEnd{finish, s->prompt_tokens(), s->generated}] {
          cb(Status::OK(), end);
        });
    s->on_end = nullptr;
  }
  if (s->on_decode) {
    SessionDecode out{std::move(s->decoded), finish, s->prompt_tokens(), s->generated};
    calls->push_back(
        [cb = std::move(s->on_decode), out = std::move(out)]() mutable { cb(std::move(out)); });
    s->on_decode = nullptr;
  }
}

void ServingEngine::FailBatch(std::span<Sequence* const> batch, const Status& status,
                              Calls* calls) {
  const Status failed = status.WithPrefix("serving engine");
  for (Sequence* s : batch) {
    s->done = true;
    if (s->on_end) {
      calls->push_back([cb = std::move(s->on_end), failed] { cb(failed, StreamEnd{}); });
      s->on_end = nullptr;
    }
    if (s->on_prefill) {
      calls->push_back([cb = std::move(s->on_prefill), failed] { cb(failed); });
      s->on_prefill = nullptr;
    }
    if (s->on_decode) {
      calls->push_back([cb = std::move(s->on_decode), failed] { cb(failed); });
      s->on_decode = nullptr;
    }
  }
}

void ServingEngine::PublishStats(Calls* calls) {
  stats_.queue_depth = static_cast<int64_t>(waiting_.size());
  int64_t active = 0;
  int64_t running = 0;
  for (const auto& [id, s] : sequences_) {
    if (s->kv == 0 || s->done) continue;
    ++active;
    running += s->state == Sequence::State::kRunning ? 1 : 0;
  }
  stats_.active_sessions = active;
  stats_.running_requests = running;
  stats_.kv_blocks_used = cache_->total_blocks() - cache_->free_blocks();
  stats_.kv_blocks_total = cache_->total_blocks();
  const ServingStats& before = published_;
  const bool changed = before.batch_size != stats_.batch_size ||
                       before.batch_tokens != stats_.batch_tokens ||
                       before.queue_depth != stats_.queue_depth ||
                       before.active_sessions != stats_.active_sessions ||
                       before.running_requests != stats_.running_requests ||
                       before.kv_blocks_used != stats_.kv_blocks_used ||
                       before.prefix_cache_hit_tokens != stats_.prefix_cache_hit_tokens;
  published_ = stats_;
  if (changed && options_.on_stats) {
    calls->push_back([cb = options_.on_stats, stats = stats_] { cb(stats); });
  }
}

}  // namespace relayout
