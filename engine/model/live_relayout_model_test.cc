// The property a live relayout rests on: a model whose weights are moved,
// in place, from any layout to any other gives the same logits, bit for
// bit, as before the move, for every layout of F32 and the quantized types
// (Q8_0, Q4_0; the Q6_K head of the Q4_0 model has no preferred layout and
// stays): their matmuls sum in an order no layout changes (matmul.h). F16
// (and BF16, which shares its kernels' float accumulation; no BF16 model is
// in the shared set) sums in the layout's K-block order: row-group K16 gives
// the native bits on an AVX-512 CPU, K8 and K4 differ, within 1e-4 of the
// largest logit (2e-5 measured). Each chain starts from the native layout,
// visits every layout that applies, and comes back (bit for bit again),
// converting A -> B directly (through the common layout inside
// ConvertResidentTensor).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/conversion/layout_policy.h"
#include "engine/conversion/live_relayout.h"
#include "engine/model/llama_model.h"
#include "engine/model/model_test_util.h"

namespace relayout {
namespace {

using testing::ModelPath;

// All rows' logits of a prompt, from position 0 of a fresh sequence.
std::vector<float> PromptLogits(LlamaModel* model, KvCache* cache,
                                const std::vector<int32_t>& prompt) {
  const SequenceId seq = cache->CreateSequence();
  BatchEntry entry{seq, prompt, 0, true};
  const Status status = model->Forward(std::span(&entry, 1), cache);
  EXPECT_TRUE(status.ok()) << status;
  std::vector<float> out;
  if (status.ok()) {
    const std::span<const float> logits = model->Logits(0);
    out.assign(logits.begin(), logits.end());
  }
  cache->Release(seq);
  return out;
}

// Moves every matmul weight into `layout_name` (native: the common layout)
// where it applies; the number of tensors moved.
size_t RelayoutTo(LlamaModel* model, const std::string& layout_name, MemoryLedger* ledger) {
  Result<LayoutPolicy> policy =
      LayoutPolicy::Create(DeviceCaps{kernels::DetectCpuFeatures()}, layout_name);
  EXPECT_TRUE(policy.ok()) << policy.status();
  if (!policy.ok()) return 0;
  const std::vector<ResidentTensor> tensors = model->ResidentTensors();
  Result<LiveRelayoutPlan> plan = PlanLiveRelayout(
      tensors,
      [&](DType d, TensorRole r, std::span<const int64_t> s) { return policy->Choose(d, r, s); },
      uint64_t{1} << 20);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return 0;
  EXPECT_LE(plan->max_scratch_bytes, plan->budget_bytes);
  for (const LiveRelayoutStep& step : plan->steps) {
    Layout now;
    const Status converted = ConvertResidentTensor(step, tensors[step.tensor].data, model->device(),
                                                   ledger, &now, nullptr);
    EXPECT_TRUE(converted.ok()) << converted;
    EXPECT_EQ(now, step.to);
    const Status bound = model->SetWeightLayout(step.tensor, now);
    EXPECT_TRUE(bound.ok()) << bound;
  }
  for (const ResidentTensor& t : model->ResidentTensors()) {
    EXPECT_EQ(t.layout, policy->Choose(t.dtype, t.ref.role, t.shape)) << t.name;
  }
  EXPECT_LE(ledger->peak(MemoryCategory::kScratch), plan->budget_bytes);
  return plan->steps.size();
}

struct Case {
  std::string name;
  std::string path;
  std::vector<std::string> layouts;  // visited in order, then back to native
  bool bit_exact = true;             // in every layout, or only back in native
};

class LiveRelayoutModelTest : public ::testing::TestWithParam<Case> {};

TEST_P(LiveRelayoutModelTest, EveryLayoutGivesTheNativeLogits) {
  const Case& c = GetParam();
  if (!std::filesystem::exists(c.path)) GTEST_SKIP() << c.path;
  kernels::ThreadPool pool(2);
  Result<testing::LoadedModel> loaded = testing::LoadModel(c.path, "native", &pool);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaModel* model = loaded->model.get();
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(model->kv_cache_shape(), 1 << 22, &ledger));
  const std::vector<int32_t> prompt =
      *loaded->tokenizer->Encode("Once upon a time, there was", EncodeOptions{});
  const std::vector<float> native = PromptLogits(model, cache.get(), prompt);
  ASSERT_FALSE(native.empty());
  std::vector<std::string> chain = c.layouts;
  chain.push_back("native");
  for (const std::string& layout : chain) {
    SCOPED_TRACE(layout);
    MemoryLedger scratch;
    EXPECT_GT(RelayoutTo(model, layout, &scratch), 0u);
    const std::vector<float> logits = PromptLogits(model, cache.get(), prompt);
    ASSERT_EQ(logits.size(), native.size());
    float max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < native.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(logits[i] - native[i]));
      max_abs = std::max(max_abs, std::abs(native[i]));
    }
    if (c.bit_exact || layout == "native") {
      // Back in the native layout the bytes are the native bytes again.
      EXPECT_EQ(0, std::memcmp(logits.data(), native.data(), native.size() * sizeof(float)))
          << "max |diff| " << max_diff << " of max |logit| " << max_abs;
    } else {
      // Float accumulation in the layout's K-block order (matmul.h): the
      // matmul's bound, seen end to end as 2e-5 of the largest logit.
      EXPECT_LE(max_diff, 1e-4f * max_abs);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, LiveRelayoutModelTest,
    ::testing::Values(Case{"F32",
                           ModelPath("stories260K", "model.safetensors"),
                           {"rowgroup-g8k8", "rowgroup-g16k16", "rowgroup-g4k8", "auto"}},
                      Case{"F16",
                           ModelPath("synthetic-kquant", "kq-f16.gguf"),
                           {"rowgroup-g8k8", "rowgroup-g16k16", "rowgroup-g4k8", "auto"},
                           false},
                      Case{"Q8_0",
                           ModelPath("synthetic-kquant", "kq-Q8_0.gguf"),
                           {"q-rowgroup-g8", "q-rowgroup-g4", "auto"}},
                      Case{"Q4_0",
                           ModelPath("synthetic-kquant", "kq-Q4_0.gguf"),
                           {"q-rowgroup-g8", "q-rowgroup-g4", "auto"}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// What the forward pass cannot read is refused before anything moves.
TEST(LiveRelayoutModel, RefusesEmbeddingsAndNormsOutOfTheirCommonLayout) {
  const std::string path = ModelPath("stories260K", "model.safetensors");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  Result<testing::LoadedModel> loaded = testing::LoadModel(path, "native", nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<ResidentTensor> tensors = loaded->model->ResidentTensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Status s = loaded->model->CheckWeightLayout(i, Layout::RowGroupInterleave(8, 8));
    if (IsMatmulWeight(tensors[i].ref.role) && tensors[i].ref.role != TensorRole::kTokenEmbd) {
      EXPECT_TRUE(s.ok()) << tensors[i].name << ": " << s;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << tensors[i].name;
      EXPECT_NE(s.message().find(tensors[i].name), std::string::npos) << s;
    }
  }
  EXPECT_TRUE(
      loaded->model->CheckWeightLayout(tensors.size(), Layout::RowMajor()).IsInvalidArgument());
}

}  // namespace
}  // namespace relayout
