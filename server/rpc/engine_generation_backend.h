// EngineGenerationBackend: the GenerationBackend of `relayoutd serve`, a
// thin adapter over the continuous-batching ServingEngine (engine/
// serving_engine.h). It converts the service's requests and callbacks to
// the engine's, names sessions with opaque strings ("s-<n>"), maps the
// engine's finish reasons to FinishReason, picks a seed when the client
// gave none, and forwards the engine's gauges (batch size, queue depth,
// active sessions, KV-cache usage) to ServerMetrics.
//
// Thread safety: as GenerationBackend (every method concurrently).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/serving/serving_engine.h"
#include "server/observe/server_metrics.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/loaded_model.h"

namespace relayout::server {

// The engine's knobs that are not ServingLimits; see ServingEngineOptions.
struct EngineBackendOptions {
  uint64_t kv_cache_bytes = uint64_t{1} << 30;
  int64_t max_batch_tokens = 512;
  bool prefix_caching = true;  // ServingEngineOptions::prefix_caching
  int threads = 0;             // 0: one per hardware thread
};

class EngineGenerationBackend final : public GenerationBackend {
 public:
  // Builds the engine from the converted model (taking its weights, ledger
  // and tokenizer); metrics (not owned) must outlive the backend. Errors:
  // ServingEngine::Create's.
  static Result<std::unique_ptr<EngineGenerationBackend>> Create(
      LoadedModel model, ServerMetrics* metrics, const EngineBackendOptions& options);

  uint64_t StartSession(GenerationRequest request, StartCallback done) override;
  void Decode(const std::string& session_id, int64_t num_tokens, DecodeCallback done) override;
  Status Release(const std::string& session_id) override;
  Result<uint64_t> StreamGenerate(GenerationRequest request, TokensCallback on_tokens,
                                  DoneCallback on_done) override;
  void Cancel(uint64_t stream_id) override;
  void CancelAll() override;
  SamplingDefaults sampling_defaults() const override { return sampling_defaults_; }
  Result<LiveRelayoutPlan> StartRelayout(RelayoutJobOptions options) override {
    return engine_->StartRelayout(std::move(options));
  }
  void CancelRelayout() override { engine_->CancelRelayout(); }

  ServingEngine& engine() { return *engine_; }

 private:
  EngineGenerationBackend(std::unique_ptr<ServingEngine> engine, SamplingDefaults sampling_defaults)
      : engine_(std::move(engine)), sampling_defaults_(sampling_defaults) {}

  std::unique_ptr<ServingEngine> engine_;
  const SamplingDefaults sampling_defaults_;
};

}  // namespace relayout::server
