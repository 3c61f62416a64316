// ServerMetrics: the Prometheus metrics of relayoutd, in one registry.
//
// The rest of the server reports through the methods below; nothing else
// touches prometheus-cpp. Names follow DESIGN.md "Observability" (base
// units, `relayout_` prefix):
//
//   conversion, labelled {device}: relayout_weights_bytes,
//     relayout_conversion_budget_bytes, relayout_conversion_predicted_peak_bytes,
//     relayout_conversion_peak_bytes (the ledger's peak, live, then the
//     report's measured_peak_bytes), relayout_conversion_scratch_peak_bytes,
//     relayout_conversion_seconds, relayout_conversion_progress_ratio;
//   labelled {strategy}: relayout_tensors_converted_total and the histograms
//     relayout_tensor_conversion_seconds, relayout_tensor_scratch_bytes;
//   serving: relayout_requests_total{rpc,code},
//     relayout_request_duration_seconds{rpc}, relayout_time_to_first_token_seconds,
//     relayout_time_per_output_token_seconds, relayout_prompt_tokens_total,
//     relayout_prefix_cache_hit_tokens_total (of those, the ones not prefilled),
//     relayout_generated_tokens_total, relayout_batch_size, relayout_queue_depth
//     (requests waiting for admission), relayout_requests_running (admitted and
//     generating), relayout_active_sessions (admitted, idle sessions too),
//     relayout_kv_cache_usage_ratio, relayout_inflight_calls{rpc} (a call left
//     behind shows as a count that never returns to 0);
//   process: relayout_process_resident_memory_bytes (read from /proc at each
//     scrape), relayout_lifecycle_state{state} (1 for the current state),
//     relayout_model_load_seconds (process start to SERVING).
//
// The model-server protocol of the Gateway API Inference Extension (its
// endpoint picker, EPP, reads these to route) names vLLM's metrics; the
// same values are exported under those names too (kVllmAliases): each alias
// is a copy, made at scrape time, of the relayout_* family it names, so
// the two names cannot disagree. vllm:cache_config_info{block_size,
// num_gpu_blocks} and vllm:lora_requests_info (no adapters: relayoutd serves
// none) exist under their protocol names only.
//
// The conversion metrics appear once OnConversionPlanned names the device.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/conversion/layout_tuner.h"
#include "engine/conversion/relayout_executor.h"
#include "server/observe/lifecycle_state.h"

namespace prometheus {
class Registry;
class Gauge;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace relayout::server {

// The relayout.v1.Generation methods, whose per-method series exist from
// the start.
inline constexpr const char* kGenerationRpcs[] = {"Prefill", "Decode",   "Generate",
                                                  "Release", "Tokenize", "Detokenize"};

// A vLLM name for a relayout_* family (same type, labels and value).
struct MetricAlias {
  const char* name;
  const char* source;
  const char* help;
};
inline constexpr MetricAlias kVllmAliases[] = {
    {"vllm:num_requests_waiting", "relayout_queue_depth",
     "Requests waiting for admission (relayout_queue_depth)"},
    {"vllm:num_requests_running", "relayout_requests_running",
     "Requests admitted and generating (relayout_requests_running)"},
    {"vllm:kv_cache_usage_perc", "relayout_kv_cache_usage_ratio",
     "Fraction (0-1) of the KV cache's blocks in use (relayout_kv_cache_usage_ratio)"},
    // The name before vLLM 0.10, which older endpoint pickers read.
    {"vllm:gpu_cache_usage_perc", "relayout_kv_cache_usage_ratio",
     "Fraction (0-1) of the KV cache's blocks in use (relayout_kv_cache_usage_ratio)"},
};

// What is known about the conversion before it starts.
struct ConversionPlanSummary {
  std::string device;
  uint64_t weights_bytes = 0;
  uint64_t budget_bytes = 0;
  uint64_t predicted_peak_bytes = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Lifecycle: relayout_lifecycle_state{state} is 1 for `state`, 0 for the rest.
  void SetLifecycleState(LifecycleState state);

  // Conversion. OnConversionPlanned first (it creates the device-labelled
  // gauges and one series per strategy); the others before it are ignored.
  // A later call (a live relayout of the served weights) sets the budget
  // and predicted peak again and the progress to 0 on the same series.
  void OnConversionPlanned(const ConversionPlanSummary& plan);
  // One tensor done: its strategy's counter and histograms, the progress
  // ratio and the ledger's live peaks.
  void OnTensorConverted(const TensorConversionReport& tensor, double progress_ratio,
                         uint64_t ledger_peak_bytes, uint64_t scratch_peak_bytes);
  // The final report: peaks and seconds as measured, progress 1.
  void SetReport(const RelayoutReport& report);

  // Serving. rpc is the method name ("Generate") or the OpenAI endpoint
  // ("openai.chat.completions", server/http/openai_api.h), code the gRPC
  // status code name ("OK", "INVALID_ARGUMENT").
  void OnRequest(std::string_view rpc, std::string_view code, double seconds);
  void OnTimeToFirstToken(double seconds);
  void OnTimePerOutputToken(double seconds);
  void AddPromptTokens(uint64_t tokens);
  void AddPrefixCacheHitTokens(uint64_t tokens);
  void AddGeneratedTokens(uint64_t tokens);
  void SetBatchSize(double sequences);
  void SetQueueDepth(double requests);
  void SetActiveSessions(double sessions);
  void SetRunningRequests(double requests);
  void SetKvCacheUsage(double ratio);
  // vllm:cache_config_info{block_size,num_gpu_blocks} 1 (tokens per block,
  // blocks in the pool); a change replaces the series.
  void SetKvCacheConfig(int64_t block_size, int64_t blocks);
  // --layout tuned: relayout_layout_kernel_seconds{class,dtype,layout,phase}
  // (phase "decode" or "prefill": the best seconds of one matmul of the
  // class's representative tensor; measured candidates only) and
  // relayout_layout_chosen{class,dtype,layout} 1 for each (class, dtype)'s
  // layout. A later call replaces every series.
  void SetLayoutTuning(const LayoutTuningReport& report);
  // relayout_model_load_seconds: process start to SERVING.
  void SetModelLoadSeconds(double seconds);
  // relayout_inflight_calls{rpc}: calls of `rpc` running (InflightCalls'
  // listener). The Generation RPCs start at 0 so the series always exist.
  void SetInflightCalls(std::string_view rpc, int64_t calls);

  // The Prometheus text exposition (format 0.0.4) of every metric, with the
  // process's resident memory read now and the vLLM aliases appended.
  std::string Serialize();

  // The registry, for tests and for adding metrics the lead's engine exports.
  prometheus::Registry& registry() { return *registry_; }

 private:
  struct Conversion;  // the device-labelled series, created when planned

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>* lifecycle_family_;
  prometheus::Family<prometheus::Counter>* requests_family_;
  prometheus::Family<prometheus::Histogram>* request_duration_family_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* tpot_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* prefix_cache_hit_tokens_ = nullptr;
  prometheus::Counter* generated_tokens_;
  prometheus::Gauge* batch_size_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* active_sessions_;
  prometheus::Gauge* running_requests_;
  prometheus::Gauge* kv_cache_usage_;
  prometheus::Gauge* model_load_seconds_;
  prometheus::Family<prometheus::Gauge>* cache_config_family_;
  prometheus::Gauge* cache_config_ = nullptr;  // under cache_config_mu_
  std::mutex cache_config_mu_;
  prometheus::Family<prometheus::Gauge>* inflight_family_;
  prometheus::Gauge* resident_memory_;
  // --layout tuned's families and series, created at the first
  // SetLayoutTuning; under layout_tuning_mu_.
  prometheus::Family<prometheus::Gauge>* layout_kernel_seconds_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* layout_chosen_family_ = nullptr;
  std::vector<prometheus::Gauge*> layout_kernel_seconds_;
  std::vector<prometheus::Gauge*> layout_chosen_;
  std::mutex layout_tuning_mu_;
  std::unique_ptr<Conversion> conversion_;  // set once, under conversion_mu_
  mutable std::mutex conversion_mu_;
};

}  // namespace relayout::server
