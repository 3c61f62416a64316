// `relayoutd serve` and `relayoutd generate` on every GGUF quantization mix
// real downloads use (../shared/models/synthetic-kquant: one random Llama
// quantized by llama-quantize into each): the server starts, streams a greedy
// continuation, and its text is the command line's, byte for byte; and the
// same on SmolLM2 requantized to Q4_K_M (tools/requantize_default_model.sh),
// which also answers a question correctly. How close both are to llama.cpp is
// tests/kquant_parity_test.cc's and tests/llamacpp_parity_test.cc's subject.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/server/serve_test_util.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

using namespace relayout::testing;  // NOLINT: test helpers

constexpr const char* kMixes[] = {"f16",  "Q8_0",   "Q4_0",   "Q5_0",   "Q5_1", "IQ4_NL",
                                  "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};

// The served greedy text of `prompt` equals `relayoutd generate`'s; returns it.
std::string ExpectServedEqualsGenerate(const std::string& model, const std::string& prompt,
                                       int tokens) {
  const ProcessResult cli =
      RunProcess({RELAYOUTD_BINARY, "generate", "--model", model, "--prompt", prompt,
                  "--max-tokens", std::to_string(tokens), "--temperature", "0"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  std::unique_ptr<ServerProcess> server = StartServer({"--model", model});
  if (server == nullptr) {
    ADD_FAILURE() << "no server on " << model;
    return "";
  }
  std::shared_ptr<grpc::Channel> channel = Insecure(*server);
  EXPECT_TRUE(WaitServing(channel, 60));
  std::unique_ptr<v1::Generation::Stub> stub = v1::Generation::NewStub(channel);
  const StreamResult r = Generate(stub.get(), GreedyRequest(prompt, tokens));
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_GT(r.ids.size(), 0u);
  EXPECT_EQ(prompt + r.text + "\n", cli.out);
  return r.text;
}

class ServeKQuantTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ServeKQuantTest, ServedGreedyTextEqualsGenerate) {
  const std::string model =
      kShared + "/models/synthetic-kquant/kq-" + std::string(GetParam()) + ".gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model;
  ExpectServedEqualsGenerate(model, "Once upon a time", 24);
}

TEST(ServeKQuantSmolLm2Test, Q4KMAnswersTheCapitalOfFrance) {
  const char* model = std::getenv("RELAYOUT_SMOLLM2_Q4_K_M_GGUF");
  if (model == nullptr || !std::filesystem::exists(model)) {
    GTEST_SKIP() << "RELAYOUT_SMOLLM2_Q4_K_M_GGUF not set (tools/test.sh sets it)";
  }
  const std::string text = ExpectServedEqualsGenerate(model, "The capital of France is", 8);
  EXPECT_NE(text.find("Paris"), std::string::npos) << text;
}

INSTANTIATE_TEST_SUITE_P(Mixes, ServeKQuantTest, ::testing::ValuesIn(kMixes),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace relayout
