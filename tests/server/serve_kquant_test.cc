// `relayoutd serve` and `relayoutd generate` on every GGUF quantization mix
// real downloads use (../shared/models/synthetic-kquant: one random Llama
// quantized by llama-quantize into each): the server starts, streams a greedy
// continuation, and its text is the command line's, byte for byte. How close
// both are to llama.cpp is tests/kquant_parity_test.cc's subject.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/server/serve_test_util.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

using namespace relayout::testing;  // NOLINT: test helpers

constexpr const char* kMixes[] = {"f16",  "Q8_0",   "Q4_0",   "Q5_0",   "Q5_1", "IQ4_NL",
                                  "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};

class ServeKQuantTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ServeKQuantTest, ServedGreedyTextEqualsGenerate) {
  const std::string model =
      kShared + "/models/synthetic-kquant/kq-" + std::string(GetParam()) + ".gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model;
  const std::string prompt = "Once upon a time";
  constexpr int kTokens = 24;

  const ProcessResult cli =
      RunProcess({RELAYOUTD_BINARY, "generate", "--model", model, "--prompt", prompt,
                  "--max-tokens", std::to_string(kTokens), "--temperature", "0"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;

  std::unique_ptr<ServerProcess> server = StartServer({"--model", model});
  ASSERT_NE(server, nullptr);
  std::shared_ptr<grpc::Channel> channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));
  std::unique_ptr<v1::Generation::Stub> stub = v1::Generation::NewStub(channel);
  const StreamResult r = Generate(stub.get(), GreedyRequest(prompt, kTokens));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.usage.prompt_tokens(), 5u);  // BOS + the four tokens of the prompt
  EXPECT_GT(r.ids.size(), 0u);
  EXPECT_EQ(prompt + r.text + "\n", cli.out);
}

INSTANTIATE_TEST_SUITE_P(Mixes, ServeKQuantTest, ::testing::ValuesIn(kMixes),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace relayout
