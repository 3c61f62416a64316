// The serving engine over a plugin device (the host-reference plugin): it
// serves the same greedy text as on the CPU, and a refused creation frees
// the weights before the device that holds them, whatever the order the
// compiler destroys arguments in (the sanitized twin checks it).
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "engine/model/model_placement.h"
#include "engine/model/model_test_util.h"
#include "engine/serving/serving_engine.h"

namespace relayout {
namespace {

const std::string kStories = testing::ModelPath("stories260K", "model.gguf");

struct OnDevice {
  PreparedLoad load;
  std::unique_ptr<Tokenizer> tokenizer;
  PlacedWeights weights;
};

Result<OnDevice> LoadOnHostref(const std::string& path = kStories,
                               const std::string& layout = "auto") {
  LoadOptions options;
  options.model_path = path;
  options.device = "hostref";
  options.layout = layout;
  OnDevice out;
  ASSIGN_OR_RETURN(out.load, PrepareLoad(Env::Default(), options));
  ASSIGN_OR_RETURN(out.tokenizer, LoadCheckpointTokenizer(Env::Default(), out.load.checkpoint));
  MemoryLedger staging;
  ASSIGN_OR_RETURN(out.weights, ConvertForLoad(out.load, &staging, nullptr, nullptr, nullptr));
  return out;
}

Result<std::unique_ptr<ServingEngine>> Create(OnDevice& m, ServingEngineOptions options) {
  return ServingEngine::Create(m.load.checkpoint.config, m.load.checkpoint.naming,
                               std::move(m.weights.on_device), std::move(m.load.device),
                               std::make_unique<MemoryLedger>(), std::move(m.tokenizer),
                               std::move(options));
}

TEST(ServingOnDeviceTest, ARefusedCreationFreesTheWeightsBeforeTheirDevice) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories;
  Result<OnDevice> m = LoadOnHostref();
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_NE(m->load.device, nullptr);
  ServingEngineOptions options;
  options.max_batch_tokens = 0;  // refused before the model is built
  const Result<std::unique_ptr<ServingEngine>> engine = Create(*m, std::move(options));
  EXPECT_TRUE(engine.status().IsInvalidArgument()) << engine.status();
}

TEST(ServingOnDeviceTest, GreedyStreamEqualsTheCpuEngines) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories;
  Result<OnDevice> m = LoadOnHostref();
  ASSERT_TRUE(m.ok()) << m.status();
  ServingEngineOptions options;
  options.threads = 1;
  Result<std::unique_ptr<ServingEngine>> engine = Create(*m, std::move(options));
  ASSERT_TRUE(engine.ok()) << engine.status();
  ServingRequest request;
  request.prompt_ids = *(*engine)->tokenizer().Encode("Once upon a time", EncodeOptions{});
  request.max_new_tokens = 60;
  request.sampling.temperature = 0;
  std::promise<std::string> text;
  auto streamed = std::make_shared<std::string>();
  const Result<uint64_t> id = (*engine)->StartStream(
      std::move(request),
      [streamed](std::span<const ServingToken> tokens) {
        for (const ServingToken& t : tokens) *streamed += t.text;
      },
      [&text, streamed](const Status& s, const StreamEnd&) {
        text.set_value(s.ok() ? *streamed : "error: " + s.ToString());
      });
  ASSERT_TRUE(id.ok()) << id.status();
  const std::string reference =
      testing::ReadText(testing::ReferencePath("stories260K", "greedy_once_upon_a_time_n64.txt"));
  EXPECT_EQ("Once upon a time" + text.get_future().get() + "\n", reference);
}

// A live relayout on a device that does not take host memory: each tensor
// goes down to host staging, is converted and goes back up between steps;
// a stream served across native -> q-rowgroup-g8 -> native gives the tokens
// of one served on the fixed native layout.
TEST(ServingOnDeviceTest, AStreamAcrossLiveRelayoutsOnTheDeviceKeepsItsText) {
  const std::string path = testing::ModelPath("synthetic-kquant", "kq-Q4_0.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  Result<OnDevice> m = LoadOnHostref(path, "native");
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<int32_t> prompt = *m->tokenizer->Encode("Once upon a time", EncodeOptions{});
  ServingEngineOptions engine_options;
  engine_options.threads = 1;
  Result<std::unique_ptr<ServingEngine>> engine = Create(*m, std::move(engine_options));
  ASSERT_TRUE(engine.ok()) << engine.status();

  auto run = [&](bool relayout) {
    ServingRequest request;
    request.prompt_ids = prompt;
    request.max_new_tokens = 40;
    request.sampling.temperature = 0;
    request.ignore_eos = true;
    auto ids = std::make_shared<std::vector<int32_t>>();
    std::promise<void> done;
    const Result<uint64_t> id = (*engine)->StartStream(
        std::move(request),
        [ids](std::span<const ServingToken> tokens) {
          for (const ServingToken& t : tokens) ids->push_back(t.id);
        },
        [&done](const Status&, const StreamEnd&) { done.set_value(); });
    EXPECT_TRUE(id.ok()) << id.status();
    if (relayout) {
      for (const Layout& to : {Layout::QuantRowGroupInterleave(8), Layout::GgufBlocks()}) {
        std::promise<Status> moved;
        RelayoutJobOptions job;
        job.choose = [to](DType dtype, TensorRole role, std::span<const int64_t> shape) {
          return IsMatmulWeight(role) && role != TensorRole::kTokenEmbd &&
                         CheckLayoutApplies(to, dtype, shape).ok()
                     ? to
                     : CommonLayoutFor(dtype);
        };
        job.step_time_fraction = 1e-6;
        job.on_done = [&moved](const Status& s, const RelayoutReport& r) {
          EXPECT_TRUE(r.bound_held() || !s.ok());
          moved.set_value(s);
        };
        const Result<LiveRelayoutPlan> plan = (*engine)->StartRelayout(std::move(job));
        EXPECT_TRUE(plan.ok()) << plan.status();
        if (plan.ok()) {
          EXPECT_GT(plan->steps.size(), 0u);
          const Status s = moved.get_future().get();
          EXPECT_TRUE(s.ok()) << s;
        }
      }
    }
    done.get_future().wait();
    return *ids;
  };
  const std::vector<int32_t> fixed = run(false);
  EXPECT_EQ(fixed.size(), 40u);
  EXPECT_EQ(run(true), fixed);
}

}  // namespace
}  // namespace relayout
