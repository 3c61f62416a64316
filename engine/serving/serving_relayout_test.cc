// Live relayout inside the serving engine: streams served while the
// weights move between layouts get the tokens and log-probabilities of an
// undisturbed run on a fixed layout; one relayout at a time; none while
// draining; a cancelled one leaves a model that still serves the same.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>

#include "engine/conversion/layout_policy.h"
#include "engine/model/model_test_util.h"
#include "engine/serving/serving_engine.h"
#include "engine/serving/serving_test_util.h"

namespace relayout {
namespace {

const std::string kStories = testing::ModelPath("stories260K", "model.safetensors");
const std::string kQ4 = testing::ModelPath("synthetic-kquant", "kq-Q4_0.gguf");

Result<std::unique_ptr<ServingEngine>> LoadNative(const std::string& path) {
  return testing::LoadServingEngine(path, "native");
}

LayoutChooser Policy(const std::string& name) {
  Result<LayoutPolicy> policy =
      LayoutPolicy::Create(DeviceCaps{kernels::DetectCpuFeatures()}, name);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return [p = *policy](DType d, TensorRole r, std::span<const int64_t> s) {
    return p.Choose(d, r, s);
  };
}

struct Stream {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  Status status;
  std::promise<void> done;
};

std::vector<std::shared_ptr<Stream>> StartStreams(ServingEngine* engine, int n, int64_t tokens) {
  static const char* kPrompts[] = {"Once upon a time", "One day",       "Lily and Tom",
                                   "The big dog",      "She was happy", "Tim had a ball"};
  std::vector<std::shared_ptr<Stream>> out;
  for (int i = 0; i < n; ++i) {
    auto s = std::make_shared<Stream>();
    ServingRequest r;
    r.prompt_ids = *engine->tokenizer().Encode(kPrompts[i % 6], EncodeOptions{});
    r.sampling.temperature = 0;
    r.max_new_tokens = tokens;
    r.ignore_eos = true;
    r.logprobs = true;
    const Result<uint64_t> id = engine->StartStream(
        std::move(r),
        [s](std::span<const ServingToken> tokens) {
          for (const ServingToken& t : tokens) {
            s->ids.push_back(t.id);
            s->logprobs.push_back(t.logprob);
          }
        },
        [s](const Status& status, const StreamEnd&) {
          s->status = status;
          s->done.set_value();
        });
    EXPECT_TRUE(id.ok()) << id.status();
    out.push_back(s);
  }
  return out;
}

// Counts tensors, and those converted while requests were running.
class CountingObserver : public ConversionObserver {
 public:
  explicit CountingObserver(ServingEngine* engine) : engine_(engine) {}
  void OnTensorConverted(const TensorConversionReport&, size_t done, size_t total,
                         const MemoryLedgerSnapshot&) override {
    ++tensors;
    if (engine_->stats().running_requests > 0) ++while_serving;
    last_done = done;
    last_total = total;
  }
  std::atomic<int> tensors{0}, while_serving{0};
  size_t last_done = 0, last_total = 0;

 private:
  ServingEngine* engine_;
};

Status RunRelayout(ServingEngine* engine, const std::string& layout,
                   std::shared_ptr<ConversionObserver> observer, RelayoutReport* report) {
  std::promise<Status> done;
  RelayoutJobOptions job;
  job.choose = Policy(layout);
  job.budget_bytes = 1 << 20;
  job.step_time_fraction = 1e-6;  // one tensor per step while serving
  job.observer = std::move(observer);
  job.on_done = [&](const Status& s, const RelayoutReport& r) {
    *report = r;
    done.set_value(s);
  };
  Result<LiveRelayoutPlan> plan = engine->StartRelayout(std::move(job));
  if (!plan.ok()) return plan.status();
  return done.get_future().get();
}

class ServingRelayoutTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(GetParam())) GTEST_SKIP() << GetParam();
  }
};

TEST_P(ServingRelayoutTest, StreamsAcrossRelayoutsEqualAnUndisturbedRun) {
  Result<std::unique_ptr<ServingEngine>> fixed = LoadNative(GetParam());
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  auto want = StartStreams(fixed->get(), 6, 120);
  for (auto& s : want) s->done.get_future().wait();

  Result<std::unique_ptr<ServingEngine>> live = LoadNative(GetParam());
  ASSERT_TRUE(live.ok()) << live.status();
  ServingEngine* engine = live->get();
  auto got = StartStreams(engine, 6, 120);
  auto observer = std::make_shared<CountingObserver>(engine);
  // native -> auto -> a forced layout -> native, while the streams run.
  const bool quantized = GetParam() == kQ4;
  for (const std::string& layout :
       {std::string("auto"), std::string(quantized ? "q-rowgroup-g4" : "rowgroup-g4k8"),
        std::string("native")}) {
    RelayoutReport report;
    const Status s = RunRelayout(engine, layout, observer, &report);
    ASSERT_TRUE(s.ok()) << layout << ": " << s;
    EXPECT_GT(report.tensors.size(), 0u) << layout;
    EXPECT_EQ(observer->last_done, observer->last_total);
    EXPECT_TRUE(report.bound_held()) << report.measured_peak_bytes << " > " << report.weights_bytes
                                     << " + " << report.budget_bytes;
    EXPECT_EQ(engine->relayout_status().running, false);
  }
  for (size_t i = 0; i < got.size(); ++i) {
    got[i]->done.get_future().wait();
    EXPECT_TRUE(got[i]->status.ok()) << got[i]->status;
    EXPECT_EQ(got[i]->ids, want[i]->ids) << "stream " << i;
    ASSERT_EQ(got[i]->logprobs.size(), want[i]->logprobs.size());
    EXPECT_EQ(0, std::memcmp(got[i]->logprobs.data(), want[i]->logprobs.data(),
                             want[i]->logprobs.size() * sizeof(float)))
        << "stream " << i;
  }
  EXPECT_GT(observer->while_serving.load(), 0);  // the moves overlapped the streams
}

INSTANTIATE_TEST_SUITE_P(Models, ServingRelayoutTest, ::testing::Values(kStories, kQ4),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == kQ4 ? std::string("Q4_0") : std::string("F32");
                         });

// Holds each tensor's report until released, so a relayout is known to be
// running.
class GateObserver : public ConversionObserver {
 public:
  void OnTensorConverted(const TensorConversionReport&, size_t, size_t,
                         const MemoryLedgerSnapshot&) override {
    std::unique_lock<std::mutex> lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return entered_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, open_ = false;
};

TEST(ServingRelayout, OneAtATimeCancellableAndNoneWhileDraining) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories;
  Result<std::unique_ptr<ServingEngine>> e = LoadNative(kStories);
  ASSERT_TRUE(e.ok()) << e.status();
  ServingEngine* engine = e->get();
  auto gate = std::make_shared<GateObserver>();
  std::promise<Status> first_done;
  RelayoutJobOptions job;
  job.choose = Policy("rowgroup-g8k8");
  job.observer = gate;
  job.on_done = [&](const Status& s, const RelayoutReport&) { first_done.set_value(s); };
  size_t moved = 0, resident = 0;
  job.on_layouts = [&](std::span<const ResidentTensor> tensors) {
    resident = tensors.size();
    for (const ResidentTensor& t : tensors) moved += t.layout.IsCommon() ? 0 : 1;
  };
  Result<LiveRelayoutPlan> plan = engine->StartRelayout(std::move(job));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_GT(plan->steps.size(), 1u);
  gate->WaitEntered();
  EXPECT_TRUE(engine->relayout_status().running);

  RelayoutJobOptions second;
  second.choose = Policy("native");
  const Result<LiveRelayoutPlan> refused = engine->StartRelayout(std::move(second));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("another relayout"), std::string::npos);

  engine->CancelRelayout();
  gate->Open();
  const Status first = first_done.get_future().get();
  EXPECT_EQ(first.code(), StatusCode::kCancelled) << first;
  EXPECT_FALSE(engine->relayout_status().running);
  // Stopped after the tensor in hand: it keeps its new layout, the rest
  // theirs (on_layouts ran before on_done).
  EXPECT_EQ(moved, 1u);
  EXPECT_GT(resident, plan->steps.size());

  // Mixed layouts now; the streams still equal an undisturbed run.
  Result<std::unique_ptr<ServingEngine>> fixed = LoadNative(kStories);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  auto want = StartStreams(fixed->get(), 2, 40);
  auto got = StartStreams(engine, 2, 40);
  for (size_t i = 0; i < got.size(); ++i) {
    want[i]->done.get_future().wait();
    got[i]->done.get_future().wait();
    EXPECT_EQ(got[i]->ids, want[i]->ids);
  }

  engine->Drain();
  RelayoutJobOptions draining;
  draining.choose = Policy("auto");
  EXPECT_EQ(engine->StartRelayout(std::move(draining)).status().code(), StatusCode::kUnavailable);
}

TEST(ServingRelayout, ATooSmallBudgetIsRefusedBeforeAnythingMoves) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories;
  Result<std::unique_ptr<ServingEngine>> e = LoadNative(kStories);
  ASSERT_TRUE(e.ok()) << e.status();
  RelayoutJobOptions job;
  job.choose = Policy("rowgroup-g8k8");
  job.budget_bytes = 16;
  bool called = false;
  job.on_done = [&](const Status&, const RelayoutReport&) { called = true; };
  const Result<LiveRelayoutPlan> plan = (*e)->StartRelayout(std::move(job));
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted) << plan.status();
  EXPECT_FALSE(called);
  EXPECT_FALSE((*e)->relayout_status().running);
}

}  // namespace
}  // namespace relayout
