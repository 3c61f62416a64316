#include "server/observe/server_metrics.h"

#include <array>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "engine/conversion/strategy.h"
#include "engine/memory/process_memory.h"

namespace relayout::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

const Histogram::BucketBoundaries kTensorSecondsBuckets = {1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05,
                                                           0.1,  0.5,  1,    5,    10,   30};
const Histogram::BucketBoundaries kScratchBytesBuckets = {
    0, 4096, 65536, 1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 4.0 * (1 << 30)};
const Histogram::BucketBoundaries kRequestSecondsBuckets = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
const Histogram::BucketBoundaries kFirstTokenBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                        0.5,   1,    2.5,   5,    10,  30};
const Histogram::BucketBoundaries kPerTokenBuckets = {0.001, 0.0025, 0.005, 0.01, 0.02,
                                                      0.05,  0.1,    0.25,  0.5,  1};

}  // namespace

// The series labelled by device or strategy, which exist once the device is
// known.
struct ServerMetrics::Conversion {
  prometheus::Gauge* weights_bytes;
  prometheus::Gauge* budget_bytes;
  prometheus::Gauge* predicted_peak_bytes;
  prometheus::Gauge* peak_bytes;
  prometheus::Gauge* scratch_peak_bytes;
  prometheus::Gauge* staging_peak_bytes;
  prometheus::Gauge* host_scratch_peak_bytes;
  prometheus::Gauge* seconds;
  prometheus::Gauge* progress_ratio;
  std::array<prometheus::Counter*, kNumStrategies> converted;
  std::array<prometheus::Histogram*, kNumStrategies> tensor_seconds;
  std::array<prometheus::Histogram*, kNumStrategies> tensor_scratch;
};

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  lifecycle_family_ = &BuildGauge()
                           .Name("relayout_lifecycle_state")
                           .Help("1 for the server's current lifecycle state, 0 for the others")
                           .Register(r);
  for (LifecycleState s : kAllLifecycleStates) {
    lifecycle_family_->Add({{"state", std::string(LifecycleStateName(s))}})
        .Set(s == LifecycleState::kLoading ? 1 : 0);
  }
  requests_family_ = &BuildCounter()
                          .Name("relayout_requests_total")
                          .Help("Requests finished (gRPC and HTTP), by method and code")
                          .Register(r);
  request_duration_family_ = &BuildHistogram()
                                  .Name("relayout_request_duration_seconds")
                                  .Help("Wall-clock duration of gRPC requests, by method")
                                  .Register(r);
  ttft_ = &BuildHistogram()
               .Name("relayout_time_to_first_token_seconds")
               .Help("Seconds from a request's arrival to its first generated token")
               .Register(r)
               .Add({}, kFirstTokenBuckets);
  tpot_ = &BuildHistogram()
               .Name("relayout_time_per_output_token_seconds")
               .Help("Seconds between consecutive generated tokens of one sequence")
               .Register(r)
               .Add({}, kPerTokenBuckets);
  prompt_tokens_ = &BuildCounter()
                        .Name("relayout_prompt_tokens_total")
                        .Help("Prompt tokens prefilled")
                        .Register(r)
                        .Add({});
  prefix_cache_hit_tokens_ = &BuildCounter()
                                  .Name("relayout_prefix_cache_hit_tokens_total")
                                  .Help("Prompt tokens whose KV came from the prefix cache")
                                  .Register(r)
                                  .Add({});
  generated_tokens_ = &BuildCounter()
                           .Name("relayout_generated_tokens_total")
                           .Help("Tokens generated")
                           .Register(r)
                           .Add({});
  batch_size_ = &BuildGauge()
                     .Name("relayout_batch_size")
                     .Help("Sequences in the last batched forward pass")
                     .Register(r)
                     .Add({});
  queue_depth_ = &BuildGauge()
                      .Name("relayout_queue_depth")
                      .Help("Requests waiting for admission")
                      .Register(r)
                      .Add({});
  active_sessions_ = &BuildGauge()
                          .Name("relayout_active_sessions")
                          .Help("Sessions holding a KV cache, streams included")
                          .Register(r)
                          .Add({});
  running_requests_ = &BuildGauge()
                           .Name("relayout_requests_running")
                           .Help(
                               "Requests admitted and generating: streams, and sessions with "
                               "a prefill or Decode in flight")
                           .Register(r)
                           .Add({});
  kv_cache_usage_ = &BuildGauge()
                         .Name("relayout_kv_cache_usage_ratio")
                         .Help("Fraction of the KV cache's blocks in use")
                         .Register(r)
                         .Add({});
  inflight_family_ = &BuildGauge()
                          .Name("relayout_inflight_calls")
                          .Help("Calls started and not yet finished (gRPC and HTTP), by method")
                          .Register(r);
  for (const char* rpc : kGenerationRpcs) inflight_family_->Add({{"rpc", rpc}}).Set(0);
  model_load_seconds_ = &BuildGauge()
                             .Name("relayout_model_load_seconds")
                             .Help(
                                 "Seconds from process start to SERVING: fetch, load, "
                                 "conversion and the engine's set-up (0 until then)")
                             .Register(r)
                             .Add({});
  cache_config_family_ = &BuildGauge()
                              .Name("vllm:cache_config_info")
                              .Help(
                                  "The KV cache's configuration in labels: block_size "
                                  "(tokens per block), num_gpu_blocks (blocks in the pool)")
                              .Register(r);
  // No LoRA adapters: the series the endpoint picker's LoRA scrape finds
  // (it reads the labels; the value is when the series was made, as vLLM's).
  BuildGauge()
      .Name("vllm:lora_requests_info")
      .Help("LoRA adapters running and waiting, and the most loaded at once: none in relayoutd")
      .Register(r)
      .Add({{"max_lora", "0"}, {"running_lora_adapters", ""}, {"waiting_lora_adapters", ""}})
      .Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
               .count());
  resident_memory_ = &BuildGauge()
                          .Name("relayout_process_resident_memory_bytes")
                          .Help("Resident memory of the process (VmRSS), read at scrape time")
                          .Register(r)
                          .Add({});
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetLifecycleState(LifecycleState state) {
  for (LifecycleState s : kAllLifecycleStates) {
    lifecycle_family_->Add({{"state", std::string(LifecycleStateName(s))}}).Set(s == state ? 1 : 0);
  }
}

void ServerMetrics::OnConversionPlanned(const ConversionPlanSummary& plan) {
  std::lock_guard<std::mutex> lock(conversion_mu_);
  if (conversion_ != nullptr) {
    // A later conversion of the served weights (a live relayout): the same
    // series, on the device first named, start over.
    conversion_->budget_bytes->Set(static_cast<double>(plan.budget_bytes));
    conversion_->predicted_peak_bytes->Set(static_cast<double>(plan.predicted_peak_bytes));
    conversion_->progress_ratio->Set(0);
    return;
  }
  prometheus::Registry& r = *registry_;
  const prometheus::Labels device = {{"device", plan.device}};
  const auto gauge = [&](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(r).Add(device);
  };
  auto c = std::make_unique<Conversion>();
  c->weights_bytes =
      gauge("relayout_weights_bytes", "Bytes of the weights in their target layouts");
  c->budget_bytes = gauge("relayout_conversion_budget_bytes",
                          "Scratch bytes the conversion may use above the weights");
  c->predicted_peak_bytes = gauge("relayout_conversion_predicted_peak_bytes",
                                  "The planner's predicted peak of weights plus scratch");
  c->peak_bytes = gauge("relayout_conversion_peak_bytes",
                        "The memory ledger's measured peak of weights plus scratch");
  c->scratch_peak_bytes = gauge("relayout_conversion_scratch_peak_bytes",
                                "The memory ledger's measured peak of scratch alone");
  c->staging_peak_bytes =
      gauge("relayout_conversion_staging_peak_bytes",
            "Peak host memory staging the weights on their way to a plugin device (0 on the CPU)");
  c->host_scratch_peak_bytes =
      gauge("relayout_conversion_host_scratch_peak_bytes",
            "Peak host scratch of tensors converted before their upload to a plugin device");
  c->seconds = gauge("relayout_conversion_seconds", "Wall-clock seconds of the conversion");
  c->progress_ratio =
      gauge("relayout_conversion_progress_ratio", "Fraction of the weight bytes converted");
  c->weights_bytes->Set(static_cast<double>(plan.weights_bytes));
  c->budget_bytes->Set(static_cast<double>(plan.budget_bytes));
  c->predicted_peak_bytes->Set(static_cast<double>(plan.predicted_peak_bytes));
  auto& converted = BuildCounter()
                        .Name("relayout_tensors_converted_total")
                        .Help("Tensors converted, by strategy")
                        .Register(r);
  auto& seconds = BuildHistogram()
                      .Name("relayout_tensor_conversion_seconds")
                      .Help("Seconds to read and convert one tensor, by strategy")
                      .Register(r);
  auto& scratch = BuildHistogram()
                      .Name("relayout_tensor_scratch_bytes")
                      .Help("Scratch bytes of one tensor's conversion, by strategy")
                      .Register(r);
  for (int i = 0; i < kNumStrategies; ++i) {
    const prometheus::Labels labels = {
        {"strategy", std::string(StrategyName(static_cast<Strategy>(i)))}};
    c->converted[static_cast<size_t>(i)] = &converted.Add(labels);
    c->tensor_seconds[static_cast<size_t>(i)] = &seconds.Add(labels, kTensorSecondsBuckets);
    c->tensor_scratch[static_cast<size_t>(i)] = &scratch.Add(labels, kScratchBytesBuckets);
  }
  conversion_ = std::move(c);
}

void ServerMetrics::OnTensorConverted(const TensorConversionReport& tensor, double progress_ratio,
                                      uint64_t ledger_peak_bytes, uint64_t scratch_peak_bytes) {
  std::lock_guard<std::mutex> lock(conversion_mu_);
  if (conversion_ == nullptr) return;
  const auto i = static_cast<size_t>(tensor.strategy);
  if (i < static_cast<size_t>(kNumStrategies)) {
    conversion_->converted[i]->Increment();
    conversion_->tensor_seconds[i]->Observe(tensor.seconds);
    conversion_->tensor_scratch[i]->Observe(static_cast<double>(tensor.scratch_bytes));
  }
  conversion_->progress_ratio->Set(progress_ratio);
  conversion_->peak_bytes->Set(static_cast<double>(ledger_peak_bytes));
  conversion_->scratch_peak_bytes->Set(static_cast<double>(scratch_peak_bytes));
}

void ServerMetrics::SetReport(const RelayoutReport& report) {
  std::lock_guard<std::mutex> lock(conversion_mu_);
  if (conversion_ == nullptr) return;
  conversion_->weights_bytes->Set(static_cast<double>(report.weights_bytes));
  conversion_->budget_bytes->Set(static_cast<double>(report.budget_bytes));
  conversion_->predicted_peak_bytes->Set(static_cast<double>(report.predicted_peak_bytes));
  conversion_->peak_bytes->Set(static_cast<double>(report.measured_peak_bytes));
  conversion_->scratch_peak_bytes->Set(static_cast<double>(report.scratch_peak_bytes));
  conversion_->staging_peak_bytes->Set(static_cast<double>(report.staging_peak_bytes));
  conversion_->host_scratch_peak_bytes->Set(static_cast<double>(report.host_scratch_peak_bytes));
  conversion_->seconds->Set(report.seconds);
  conversion_->progress_ratio->Set(1.0);
}

void ServerMetrics::OnRequest(std::string_view rpc, std::string_view code, double seconds) {
  requests_family_->Add({{"rpc", std::string(rpc)}, {"code", std::string(code)}}).Increment();
  request_duration_family_->Add({{"rpc", std::string(rpc)}}, kRequestSecondsBuckets)
      .Observe(seconds);
}

void ServerMetrics::OnTimeToFirstToken(double seconds) { ttft_->Observe(seconds); }
void ServerMetrics::OnTimePerOutputToken(double seconds) { tpot_->Observe(seconds); }
void ServerMetrics::AddPromptTokens(uint64_t tokens) {
  prompt_tokens_->Increment(static_cast<double>(tokens));
}
void ServerMetrics::AddGeneratedTokens(uint64_t tokens) {
  generated_tokens_->Increment(static_cast<double>(tokens));
}
void ServerMetrics::SetBatchSize(double sequences) { batch_size_->Set(sequences); }
void ServerMetrics::SetQueueDepth(double requests) { queue_depth_->Set(requests); }
void ServerMetrics::SetActiveSessions(double sessions) { active_sessions_->Set(sessions); }
void ServerMetrics::SetRunningRequests(double requests) { running_requests_->Set(requests); }
void ServerMetrics::SetModelLoadSeconds(double seconds) { model_load_seconds_->Set(seconds); }

void ServerMetrics::SetLayoutTuning(const LayoutTuningReport& report) {
  std::lock_guard<std::mutex> lock(layout_tuning_mu_);
  if (layout_kernel_seconds_family_ == nullptr) {
    layout_kernel_seconds_family_ =
        &BuildGauge()
             .Name("relayout_layout_kernel_seconds")
             .Help(
                 "--layout tuned: best seconds of one matmul of the class's representative "
                 "tensor in this layout, at 1 token (decode) or 64 (prefill)")
             .Register(*registry_);
    layout_chosen_family_ =
        &BuildGauge()
             .Name("relayout_layout_chosen")
             .Help("--layout tuned: 1 for the layout chosen for each tensor class and dtype")
             .Register(*registry_);
  }
  for (prometheus::Gauge* g : layout_kernel_seconds_) layout_kernel_seconds_family_->Remove(g);
  for (prometheus::Gauge* g : layout_chosen_) layout_chosen_family_->Remove(g);
  layout_kernel_seconds_.clear();
  layout_chosen_.clear();
  for (const ClassTuning& c : report.classes) {
    const std::string tensor_class(TensorClassName(c.tensor_class));
    const std::string dtype(DTypeName(c.dtype));
    for (const CandidateTiming& t : c.candidates) {
      for (const auto& [phase, seconds] :
           {std::pair{"decode", t.decode_seconds}, std::pair{"prefill", t.prefill_seconds}}) {
        if (seconds <= 0) continue;  // not measured (a candidate given up on: its prefill)
        prometheus::Gauge* g = &layout_kernel_seconds_family_->Add(
            {{"class", tensor_class}, {"dtype", dtype}, {"layout", t.layout}, {"phase", phase}});
        g->Set(seconds);
        layout_kernel_seconds_.push_back(g);
      }
    }
    prometheus::Gauge* chosen = &layout_chosen_family_->Add(
        {{"class", tensor_class}, {"dtype", dtype}, {"layout", c.chosen}});
    chosen->Set(1);
    layout_chosen_.push_back(chosen);
  }
}

void ServerMetrics::SetKvCacheConfig(int64_t block_size, int64_t blocks) {
  const prometheus::Labels labels = {{"block_size", std::to_string(block_size)},
                                     {"num_gpu_blocks", std::to_string(blocks)}};
  std::lock_guard<std::mutex> lock(cache_config_mu_);
  prometheus::Gauge* next = &cache_config_family_->Add(labels);
  if (cache_config_ != nullptr && cache_config_ != next)
    cache_config_family_->Remove(cache_config_);
  cache_config_ = next;
  cache_config_->Set(1);
}
void ServerMetrics::AddPrefixCacheHitTokens(uint64_t tokens) {
  prefix_cache_hit_tokens_->Increment(static_cast<double>(tokens));
}

void ServerMetrics::SetKvCacheUsage(double ratio) { kv_cache_usage_->Set(ratio); }
void ServerMetrics::SetInflightCalls(std::string_view rpc, int64_t calls) {
  inflight_family_->Add({{"rpc", std::string(rpc)}}).Set(static_cast<double>(calls));
}

std::string ServerMetrics::Serialize() {
  if (Result<uint64_t> rss = ReadResidentBytes(); rss.ok()) {
    resident_memory_->Set(static_cast<double>(*rss));
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  const size_t own = families.size();
  for (const MetricAlias& alias : kVllmAliases) {
    for (size_t i = 0; i < own; ++i) {
      if (families[i].name != alias.source) continue;
      prometheus::MetricFamily copy = families[i];
      copy.name = alias.name;
      copy.help = alias.help;
      families.push_back(std::move(copy));
      break;
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace relayout::server
