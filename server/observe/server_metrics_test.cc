#include "server/observe/server_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace relayout::server {
namespace {

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(ServerMetricsTest, LifecycleGaugeIsOneForTheCurrentStateOnly) {
  ServerMetrics m;
  std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, "relayout_lifecycle_state{state=\"loading\"} 1")) << text;
  EXPECT_TRUE(Has(text, "relayout_lifecycle_state{state=\"serving\"} 0"));
  m.SetLifecycleState(LifecycleState::kServing);
  text = m.Serialize();
  EXPECT_TRUE(Has(text, "relayout_lifecycle_state{state=\"loading\"} 0"));
  EXPECT_TRUE(Has(text, "relayout_lifecycle_state{state=\"serving\"} 1"));
}

TEST(ServerMetricsTest, ConversionMetricsAppearOncePlannedLabelledByDevice) {
  ServerMetrics m;
  EXPECT_FALSE(Has(m.Serialize(), "relayout_weights_bytes"));
  m.OnConversionPlanned({"cpu", 1000, 64, 1032});
  TensorConversionReport t;
  t.strategy = Strategy::kBlockedInPlace;
  t.seconds = 0.002;
  t.scratch_bytes = 32;
  t.bytes = 500;
  m.OnTensorConverted(t, 0.5, 532, 32);
  std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, "relayout_weights_bytes{device=\"cpu\"} 1000")) << text;
  EXPECT_TRUE(Has(text, "relayout_conversion_budget_bytes{device=\"cpu\"} 64"));
  EXPECT_TRUE(Has(text, "relayout_conversion_predicted_peak_bytes{device=\"cpu\"} 1032"));
  EXPECT_TRUE(Has(text, "relayout_conversion_peak_bytes{device=\"cpu\"} 532"));
  EXPECT_TRUE(Has(text, "relayout_conversion_progress_ratio{device=\"cpu\"} 0.5"));
  EXPECT_TRUE(Has(text, "relayout_tensors_converted_total{strategy=\"blocked_in_place\"} 1"));
  EXPECT_TRUE(Has(text, "relayout_tensors_converted_total{strategy=\"none\"} 0"));
  EXPECT_TRUE(
      Has(text, "relayout_tensor_conversion_seconds_count{strategy=\"blocked_in_place\"} 1"));
  EXPECT_TRUE(Has(text, "relayout_tensor_scratch_bytes_sum{strategy=\"blocked_in_place\"} 32"));

  RelayoutReport report;
  report.weights_bytes = 1000;
  report.budget_bytes = 64;
  report.predicted_peak_bytes = 1032;
  report.measured_peak_bytes = 1020;
  report.scratch_peak_bytes = 20;
  report.staging_peak_bytes = 33554432;
  report.host_scratch_peak_bytes = 7;
  report.seconds = 1.5;
  m.SetReport(report);
  text = m.Serialize();
  EXPECT_TRUE(Has(text, "relayout_conversion_staging_peak_bytes{device=\"cpu\"} 33554432")) << text;
  EXPECT_TRUE(Has(text, "relayout_conversion_host_scratch_peak_bytes{device=\"cpu\"} 7"));
  EXPECT_TRUE(Has(text, "relayout_conversion_peak_bytes{device=\"cpu\"} 1020"));
  EXPECT_TRUE(Has(text, "relayout_conversion_scratch_peak_bytes{device=\"cpu\"} 20"));
  EXPECT_TRUE(Has(text, "relayout_conversion_seconds{device=\"cpu\"} 1.5"));
  EXPECT_TRUE(Has(text, "relayout_conversion_progress_ratio{device=\"cpu\"} 1"));
}

TEST(ServerMetricsTest, RequestsAreCountedByRpcAndCode) {
  ServerMetrics m;
  m.OnRequest("Tokenize", "OK", 0.001);
  m.OnRequest("Tokenize", "OK", 0.002);
  m.OnRequest("Generate", "UNAVAILABLE", 0.0);
  const std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, "relayout_requests_total{code=\"OK\",rpc=\"Tokenize\"} 2")) << text;
  EXPECT_TRUE(Has(text, "relayout_requests_total{code=\"UNAVAILABLE\",rpc=\"Generate\"} 1"));
  EXPECT_TRUE(Has(text, "relayout_request_duration_seconds_count{rpc=\"Tokenize\"} 2"));
}

TEST(ServerMetricsTest, ServingMetricsExistFromTheStart) {
  ServerMetrics m;
  const std::string text = m.Serialize();
  for (const char* name :
       {"relayout_time_to_first_token_seconds_bucket",
        "relayout_time_per_output_token_seconds_count", "relayout_prompt_tokens_total 0",
        "relayout_generated_tokens_total 0", "relayout_prefix_cache_hit_tokens_total 0",
        "relayout_batch_size 0", "relayout_queue_depth 0", "relayout_active_sessions 0",
        "relayout_kv_cache_usage_ratio 0", "relayout_requests_running 0",
        "relayout_model_load_seconds 0", "relayout_process_resident_memory_bytes "}) {
    EXPECT_TRUE(Has(text, name)) << name;
  }
}

TEST(ServerMetricsTest, PrefixCacheHitsAccumulate) {
  ServerMetrics m;
  m.AddPrefixCacheHitTokens(32);
  m.AddPrefixCacheHitTokens(16);
  EXPECT_TRUE(Has(m.Serialize(), "relayout_prefix_cache_hit_tokens_total 48"));
}

// The value of the one series of `name` (no labels) in a text exposition;
// -1 when absent.
double ValueOf(const std::string& text, const std::string& name) {
  const std::string line = "\n" + name + " ";
  const size_t at = text.find(line);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line.size()));
}

// The model-server protocol of the Gateway API Inference Extension: the
// endpoint picker reads these names by default (or relayout_* ones through
// its flags); each vLLM name carries its relayout_* family's value.
TEST(ServerMetricsTest, InferenceGatewayNamesCarryTheSameValues) {
  ServerMetrics m;
  std::string text = m.Serialize();
  EXPECT_EQ(ValueOf(text, "vllm:num_requests_waiting"), 0) << text;
  EXPECT_EQ(ValueOf(text, "vllm:num_requests_running"), 0);
  EXPECT_EQ(ValueOf(text, "relayout_requests_running"), 0);
  EXPECT_EQ(ValueOf(text, "vllm:kv_cache_usage_perc"), 0);
  EXPECT_EQ(ValueOf(text, "relayout_model_load_seconds"), 0);

  m.SetQueueDepth(3);
  m.SetRunningRequests(5);
  m.SetActiveSessions(7);
  m.SetKvCacheUsage(0.25);
  m.SetModelLoadSeconds(12.5);
  text = m.Serialize();
  EXPECT_EQ(ValueOf(text, "relayout_queue_depth"), 3) << text;
  EXPECT_EQ(ValueOf(text, "vllm:num_requests_waiting"), 3);
  EXPECT_EQ(ValueOf(text, "relayout_requests_running"), 5);
  EXPECT_EQ(ValueOf(text, "vllm:num_requests_running"), 5);
  EXPECT_EQ(ValueOf(text, "relayout_active_sessions"), 7);  // idle sessions too: not "running"
  EXPECT_EQ(ValueOf(text, "relayout_kv_cache_usage_ratio"), 0.25);
  EXPECT_EQ(ValueOf(text, "vllm:kv_cache_usage_perc"), 0.25);  // a 0-1 ratio, as vLLM's
  EXPECT_EQ(ValueOf(text, "vllm:gpu_cache_usage_perc"), 0.25);
  EXPECT_EQ(ValueOf(text, "relayout_model_load_seconds"), 12.5);
  // Gauges, which the endpoint picker reads the gauge value of.
  for (const char* name :
       {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc", "relayout_requests_running", "relayout_model_load_seconds"}) {
    EXPECT_TRUE(Has(text, std::string("# TYPE ") + name + " gauge\n")) << name;
  }
  // Each name once: one family per name.
  EXPECT_EQ(text.find("# TYPE vllm:num_requests_waiting "),
            text.rfind("# TYPE vllm:num_requests_waiting "));
}

TEST(ServerMetricsTest, KvCacheConfigAndLoraInfoUseTheProtocolLabels) {
  ServerMetrics m;
  std::string text = m.Serialize();
  EXPECT_FALSE(Has(text, "vllm:cache_config_info"));  // no engine yet
  EXPECT_TRUE(Has(text,
                  "vllm:lora_requests_info{max_lora=\"0\",running_lora_adapters=\"\","
                  "waiting_lora_adapters=\"\"} "));
  m.SetKvCacheConfig(16, 1024);
  m.SetKvCacheConfig(16, 1024);
  text = m.Serialize();
  EXPECT_TRUE(Has(text, "# TYPE vllm:cache_config_info gauge")) << text;
  EXPECT_TRUE(Has(text, "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"1024\"} 1"))
      << text;
  m.SetKvCacheConfig(32, 512);  // replaces the series
  text = m.Serialize();
  EXPECT_FALSE(Has(text, "num_gpu_blocks=\"1024\"")) << text;
  EXPECT_TRUE(Has(text, "vllm:cache_config_info{block_size=\"32\",num_gpu_blocks=\"512\"} 1"));
}

TEST(ServerMetricsTest, LayoutTuningGaugesCarryEachTimingAndTheChoice) {
  ServerMetrics m;
  EXPECT_FALSE(Has(m.Serialize(), "relayout_layout_chosen"));
  LayoutTuningReport report;
  ClassTuning c;
  c.tensor_class = TensorClass::kFfnDown;
  c.dtype = DType::kQ4_1;
  c.measured = true;
  c.chosen = "q-rowgroup-g8";
  c.candidates = {{"native", 0.002, 0.03}, {"q-rowgroup-g8", 0.001, 0.02}};
  report.classes.push_back(c);
  ClassTuning unmeasured;
  unmeasured.tensor_class = TensorClass::kOutput;
  unmeasured.dtype = DType::kQ8_0;
  unmeasured.chosen = "native";
  unmeasured.candidates = {{"native"}};
  report.classes.push_back(unmeasured);
  m.SetLayoutTuning(report);
  std::string text = m.Serialize();
  EXPECT_TRUE(
      Has(text,
          "relayout_layout_kernel_seconds{class=\"ffn_down\",dtype=\"Q4_1\",layout=\"native\","
          "phase=\"decode\"} 0.002"))
      << text;
  EXPECT_TRUE(Has(text,
                  "relayout_layout_kernel_seconds{class=\"ffn_down\",dtype=\"Q4_1\",layout=\"q-"
                  "rowgroup-g8\",phase=\"prefill\"} 0.02"));
  EXPECT_TRUE(Has(text,
                  "relayout_layout_chosen{class=\"ffn_down\",dtype=\"Q4_1\",layout=\"q-rowgroup-"
                  "g8\"} 1"));
  EXPECT_TRUE(
      Has(text, "relayout_layout_chosen{class=\"output\",dtype=\"Q8_0\",layout=\"native\"} 1"));
  EXPECT_FALSE(Has(text, "relayout_layout_kernel_seconds{class=\"output\""));
  // A second report replaces the series.
  report.classes.pop_back();
  report.classes[0].chosen = "native";
  m.SetLayoutTuning(report);
  text = m.Serialize();
  EXPECT_FALSE(Has(text, "class=\"output\""));
  EXPECT_FALSE(Has(text, "layout=\"q-rowgroup-g8\"} 1"));
  EXPECT_TRUE(
      Has(text, "relayout_layout_chosen{class=\"ffn_down\",dtype=\"Q4_1\",layout=\"native\"} 1"));
}

}  // namespace
}  // namespace relayout::server
