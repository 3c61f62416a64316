// `relayoutd generate` on the shared models: greedy text byte for byte equal
// to llama2.c's (prompt, generated text, newline) for both containers and
// every layout that applies; timings on stderr and in the JSON file only.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/text/json.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::RunProcess;

const std::string kShared = RELAYOUT_SHARED_DIR;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TextCase {
  std::string model;
  std::string prompt;
  int max_tokens;  // llama2.c's -n minus the prompt's tokens (BOS counted) plus one
  std::string reference;
};

const TextCase kTexts[] = {
    {"stories260K", "Once upon a time", 60, "greedy_once_upon_a_time_n64.txt"},
    {"stories260K", "", 256, "greedy_noprompt_n256.txt"},
    {"llama2xs260K", "Once upon a time", 60, "greedy_once_upon_a_time_n64.txt"},
    {"llama2xs260K", "", 256, "greedy_noprompt_n256.txt"},
    {"aidreams260K", "I dreamed", 58, "greedy_i_dreamed_n64.txt"},  // 7 prompt tokens
    {"aidreams260K", "", 128, "greedy_noprompt_n128.txt"},
};

ProcessResult Generate(const std::string& model, const std::string& prompt, int max_tokens,
                       const std::string& layout, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {
      RELAYOUTD_BINARY, "generate", "--model",      model,
      "--prompt",       prompt,     "--max-tokens", std::to_string(max_tokens),
      "--temperature",  "0",        "--layout",     layout,
      "--threads",      "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv);
}

class GenerateGoldenTest
    : public ::testing::TestWithParam<std::tuple<TextCase, std::string, std::string, std::string>> {
};

// On the CPU and, through the device ABI, on the host-reference plugin.
TEST_P(GenerateGoldenTest, GreedyTextEqualsTheReference) {
  const auto& [c, file, layout, device] = GetParam();
  const std::string model = kShared + "/models/" + c.model + "/" + file;
  if (!fs::exists(model)) GTEST_SKIP() << model;
  const ProcessResult r = Generate(model, c.prompt, c.max_tokens, layout, {"--device", device});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ReadText(kShared + "/reference/" + c.model + "/" + c.reference));
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, GenerateGoldenTest,
                         ::testing::Combine(::testing::ValuesIn(kTexts),
                                            ::testing::Values("model.safetensors", "model.gguf"),
                                            ::testing::Values("native", "auto", "rowgroup-g8k8",
                                                              "rowgroup-g16k16"),
                                            ::testing::Values("cpu", "hostref")),
                         [](const auto& info) {
                           std::string name =
                               std::get<0>(info.param).model + "_" +
                               std::get<0>(info.param).reference + "_" + std::get<1>(info.param) +
                               "_" + std::get<2>(info.param) + "_" + std::get<3>(info.param);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(GenerateCommandTest, TransposedLayoutIsRefusedWithAClearError) {
  const std::string model = kShared + "/models/stories260K/model.gguf";
  if (!fs::exists(model)) GTEST_SKIP();
  const ProcessResult r = Generate(model, "Once", 5, "transposed");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("generate: --layout transposed: no inference kernel reads the transposed "
                       "layout"),
            std::string::npos)
      << r.err;
}

TEST(GenerateCommandTest, TimingsJsonHasEveryField) {
  const std::string model = kShared + "/models/stories260K/model.safetensors";
  if (!fs::exists(model)) GTEST_SKIP();
  const std::string json_path = ::testing::TempDir() + "/generate_timings.json";
  const ProcessResult r =
      Generate(model, "Once upon a time", 10, "auto", {"--timings-json", json_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<JsonValue> json = ParseJson(ReadText(json_path));
  ASSERT_TRUE(json.ok()) << json.status();
  for (const char* key : {"prompt_tokens", "generated_tokens", "prefill_seconds", "decode_seconds",
                          "prefill_tokens_per_second", "decode_tokens_per_second", "load_seconds",
                          "peak_rss_bytes", "ready_peak_rss_bytes"}) {
    EXPECT_NE(json->Find(key), nullptr) << key;
  }
  EXPECT_EQ(json->Find("prompt_tokens")->as_int64(), 5);
  EXPECT_EQ(json->Find("generated_tokens")->as_int64(), 10);
  EXPECT_GT(json->Find("peak_rss_bytes")->as_double(), 0);
  // VmHWM only grows: the peak at ready is at most the peak at the end.
  EXPECT_GT(json->Find("ready_peak_rss_bytes")->as_double(), 0);
  EXPECT_LE(json->Find("ready_peak_rss_bytes")->as_double(),
            json->Find("peak_rss_bytes")->as_double());
}

// The default model (Q4_1 and Q8_0 weights, byte-level BPE, no BOS): greedy
// text is the same from the quantized row-group layout and from native.
TEST(GenerateCommandTest, SmolLm2AnswersTheCapitalOfFranceInBothLayouts) {
  const char* model = std::getenv("RELAYOUT_SMOLLM2_GGUF");
  if (model == nullptr || !fs::exists(model)) GTEST_SKIP() << "RELAYOUT_SMOLLM2_GGUF unset";
  const ProcessResult a = Generate(model, "The capital of France is", 3, "auto");
  const ProcessResult b = Generate(model, "The capital of France is", 3, "native");
  const ProcessResult c =
      Generate(model, "The capital of France is", 3, "auto", {"--device", "hostref"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(a.out.rfind("The capital of France is Paris", 0), 0u) << a.out;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out, c.out);
}

// Out of device memory at any allocation of a load or a request: exit 1
// with one line naming what did not fit, nothing on stdout but the prompt.
TEST(GenerateCommandTest, DeviceOutOfMemoryIsOneLineNamingWhatDidNotFit) {
  const std::string model = kShared + "/models/stories260K/model.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model;
  const ProcessResult ok = Generate(model, "Once", 5, "auto", {"--device", "hostref"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  for (int at : {1, 20, 40}) {
    setenv("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", std::to_string(at).c_str(), 1);
    const ProcessResult r = Generate(model, "Once", 5, "auto", {"--device", "hostref"});
    unsetenv("RELAYOUT_HOSTREF_FAIL_ALLOC_AT");
    EXPECT_NE(r.exit_code, 0) << at;
    EXPECT_NE(r.err.find("fault injection"), std::string::npos) << at << ": " << r.err;
    EXPECT_EQ(r.err.find("Aborted"), std::string::npos) << r.err;
  }
}

TEST(GenerateCommandTest, MissingModelIsAnErrorLine) {
  const ProcessResult r = Generate("/nonexistent/model.gguf", "x", 5, "auto");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("relayoutd: "), std::string::npos);
}

}  // namespace
}  // namespace relayout
