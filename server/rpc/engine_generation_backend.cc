#include "server/rpc/engine_generation_backend.h"

#include <atomic>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace relayout::server {
namespace {

GeneratedToken ToGeneratedToken(ServingToken t) {
  return GeneratedToken{t.id, std::move(t.text), t.has_logprob, t.logprob, std::move(t.top)};
}

ServingRequest ToServingRequest(GenerationRequest r) {
  ServingRequest out;
  out.prompt_ids = std::move(r.prompt_ids);
  out.sampling = r.sampling;
  if (!r.seed_given) {
    // A seed per request, so that unseeded requests differ.
    static thread_local std::mt19937_64 seeds{std::random_device{}()};
    out.sampling.seed = seeds();
  }
  out.logprobs = r.logprobs;
  out.stop_strings = std::move(r.stop_strings);
  out.stop_token_ids = std::move(r.stop_token_ids);
  out.max_new_tokens = r.max_new_tokens;
  out.ignore_eos = r.ignore_eos;
  return out;
}

}  // namespace

Result<std::unique_ptr<EngineGenerationBackend>> EngineGenerationBackend::Create(
    LoadedModel model, ServerMetrics* metrics, const EngineBackendOptions& options) {
  ServingEngineOptions engine_options;
  engine_options.limits = model.limits;
  engine_options.kv_cache_bytes = options.kv_cache_bytes;
  engine_options.max_batch_tokens = options.max_batch_tokens;
  engine_options.threads = options.threads;
  engine_options.prefix_caching = options.prefix_caching;
  // The engine copies on_stats per call: the count already added lives
  // outside it. The stats' count only grows.
  auto hits_added = std::make_shared<std::atomic<uint64_t>>(0);
  engine_options.on_stats = [metrics, hits_added](const ServingStats& s) {
    const uint64_t before = hits_added->exchange(s.prefix_cache_hit_tokens);
    if (s.prefix_cache_hit_tokens > before) {
      metrics->AddPrefixCacheHitTokens(s.prefix_cache_hit_tokens - before);
    }
    metrics->SetBatchSize(static_cast<double>(s.batch_size));
    metrics->SetQueueDepth(static_cast<double>(s.queue_depth));
    metrics->SetActiveSessions(static_cast<double>(s.active_sessions));
    metrics->SetRunningRequests(static_cast<double>(s.running_requests));
    metrics->SetKvCacheUsage(s.kv_usage_ratio());
  };
  const Checkpoint& checkpoint = model.load.checkpoint;
  const SamplingDefaults sampling_defaults = checkpoint.generation_config.sampling;
  Result<std::unique_ptr<ServingEngine>> created =
      model.load.device != nullptr
          ? ServingEngine::Create(checkpoint.config, checkpoint.naming,
                                  std::move(model.weights.on_device), std::move(model.load.device),
                                  std::move(model.ledger), std::move(model.tokenizer),
                                  std::move(engine_options))
          : ServingEngine::Create(checkpoint.config, checkpoint.naming,
                                  std::move(model.weights.host), std::move(model.ledger),
                                  std::move(model.tokenizer), std::move(engine_options));
  ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, std::move(created));
  const ServingStats stats = engine->stats();
  metrics->SetKvCacheConfig(stats.kv_block_size, stats.kv_blocks_total);
  return std::unique_ptr<EngineGenerationBackend>(
      new EngineGenerationBackend(std::move(engine), sampling_defaults));
}

uint64_t EngineGenerationBackend::StartSession(GenerationRequest request, StartCallback done) {
  auto shared_done = std::make_shared<StartCallback>(std::move(done));
  const Result<uint64_t> id = engine_->StartSession(
      ToServingRequest(std::move(request)), [shared_done](Result<SessionPrefill> r) {
        if (!r.ok()) {
          (*shared_done)(r.status());
          return;
        }
        SessionStart start;
        start.session_id = std::move(r->session);
        start.first_token = ToGeneratedToken(std::move(r->first_token));
        start.prompt_tokens = r->prompt_tokens;
        start.finish = r->finish;
        (*shared_done)(std::move(start));
      });
  if (!id.ok()) {
    (*shared_done)(id.status());
    return 0;
  }
  return *id;
}

void EngineGenerationBackend::Decode(const std::string& session_id, int64_t num_tokens,
                                     DecodeCallback done) {
  auto shared_done = std::make_shared<DecodeCallback>(std::move(done));
  const Status s = engine_->Decode(session_id, num_tokens, [shared_done](Result<SessionDecode> r) {
    if (!r.ok()) {
      (*shared_done)(r.status());
      return;
    }
    DecodeResult out;
    for (ServingToken& t : r->tokens) out.tokens.push_back(ToGeneratedToken(std::move(t)));
    out.finish = r->finish;
    out.prompt_tokens = r->prompt_tokens;
    out.generated_tokens = r->generated_tokens;
    (*shared_done)(std::move(out));
  });
  if (!s.ok()) (*shared_done)(s);
}

Status EngineGenerationBackend::Release(const std::string& session_id) {
  return engine_->Release(session_id);
}

Result<uint64_t> EngineGenerationBackend::StreamGenerate(GenerationRequest request,
                                                         TokensCallback on_tokens,
                                                         DoneCallback on_done) {
  return engine_->StartStream(
      ToServingRequest(std::move(request)),
      [on_tokens = std::move(on_tokens)](std::span<const ServingToken> tokens) {
        std::vector<GeneratedToken> out;
        out.reserve(tokens.size());
        for (const ServingToken& t : tokens) out.push_back(ToGeneratedToken(t));
        on_tokens(out);
      },
      [on_done = std::move(on_done)](const Status& status, const StreamEnd& end) {
        on_done(status, StreamSummary{end.finish, end.prompt_tokens, end.generated_tokens});
      });
}

void EngineGenerationBackend::Cancel(uint64_t stream_id) { engine_->Cancel(stream_id); }

void EngineGenerationBackend::CancelAll() { engine_->CancelAll(); }

}  // namespace relayout::server
