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

Result<OnDevice> LoadOnHostref() {
  LoadOptions options;
  options.model_path = kStories;
  options.device = "hostref";
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

}  // namespace
}  // namespace relayout
