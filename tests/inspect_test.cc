// `relayoutd inspect` run as a user runs it: on every shared model in every
// container, and on malformed files made here from valid ones.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/text/json.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
using testing::CountLines;
using testing::ProcessResult;
using testing::RunProcess;

const std::string kShared = RELAYOUT_SHARED_DIR;
const std::string kModels = kShared + "/models";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

ProcessResult Inspect(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RELAYOUTD_BINARY, "inspect"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

JsonValue InspectJson(const std::string& path) {
  ProcessResult r = Inspect({"--model", path, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  Result<JsonValue> json = ParseJson(r.out);
  EXPECT_TRUE(json.ok()) << json.status() << "\n" << r.out;
  return json.ok() ? *json : JsonValue();
}

uint64_t SafetensorsDataBytes(const std::string& path) {
  const std::string bytes = ReadFile(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  return bytes.size() - 8 - header;
}

class InspectSharedModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(kModels)) GTEST_SKIP() << "no shared models at " << kModels;
  }
};

TEST_P(InspectSharedModelTest, SafetensorsFileDirectoryAndGgufAgree) {
  const std::string dir = kModels + "/" + GetParam();
  const JsonValue file = InspectJson(dir + "/model.safetensors");
  const JsonValue directory = InspectJson(dir);
  const JsonValue gguf = InspectJson(dir + "/model.gguf");
  ASSERT_TRUE(file.is_object() && directory.is_object() && gguf.is_object());

  EXPECT_EQ(file.Find("format")->as_string(), "safetensors");
  EXPECT_EQ(gguf.Find("format")->as_string(), "gguf");
  // The totals are the data section's size: every byte belongs to a tensor.
  const uint64_t data_bytes = SafetensorsDataBytes(dir + "/model.safetensors");
  EXPECT_EQ(*file.Find("totals")->Find("bytes")->as_uint64(), data_bytes);
  EXPECT_EQ(*directory.Find("totals")->Find("bytes")->as_uint64(), data_bytes);
  EXPECT_EQ(*file.Find("totals")->Find("parameters")->as_uint64(), data_bytes / 4);  // all F32

  const JsonValue& sc = *file.Find("config");
  const JsonValue& gc = *gguf.Find("config");
  for (const char* key : {"hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                          "ffn_size", "vocab_size", "rope_dim", "bos_token_id"}) {
    EXPECT_EQ(*sc.Find(key)->as_int64(), *gc.Find(key)->as_int64()) << key;
  }
  EXPECT_NEAR(sc.Find("rms_eps")->as_double(), gc.Find("rms_eps")->as_double(), 1e-12);
  EXPECT_DOUBLE_EQ(sc.Find("rope_theta")->as_double(), gc.Find("rope_theta")->as_double());

  // The GGUF copies carry the (tied) head explicitly: one more tensor, the
  // embedding's bytes again.
  const uint64_t layers = *sc.Find("num_layers")->as_uint64();
  EXPECT_EQ(file.Find("tensors")->as_array().size(), 9 * layers + 2);
  EXPECT_EQ(gguf.Find("tensors")->as_array().size(), 9 * layers + 3);
  const uint64_t embd_bytes =
      4ull * *sc.Find("vocab_size")->as_uint64() * *sc.Find("hidden_size")->as_uint64();
  EXPECT_EQ(*gguf.Find("totals")->Find("bytes")->as_uint64(), data_bytes + embd_bytes);
}

TEST_P(InspectSharedModelTest, TextOutputListsEveryTensorWithRoleAndTotal) {
  const std::string dir = kModels + "/" + GetParam();
  ProcessResult r = Inspect({"--model", dir + "/model.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("format        gguf"), std::string::npos);
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(r.out.find("blk.0.attn_q "), std::string::npos);  // the role column
  EXPECT_NE(r.out.find("total         "), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Models, InspectSharedModelTest,
                         ::testing::Values("stories260K", "llama2xs260K", "aidreams260K"));

TEST(InspectTest, StoriesTotalsAreExact) {
  if (!fs::exists(kModels)) GTEST_SKIP();
  const JsonValue j = InspectJson(kModels + "/stories260K/model.safetensors");
  // 512x64 embedding, 5 layers of (2x64 norms, 64x64 q and o, 2x 32x64 k/v,
  // 3x 172x64 mlp), final norm: 260,032 parameters of 4 bytes.
  EXPECT_EQ(*j.Find("totals")->Find("parameters")->as_uint64(), 260032u);
  EXPECT_EQ(*j.Find("totals")->Find("bytes")->as_uint64(), 1040128u);
  EXPECT_EQ(*j.Find("totals")->Find("tensors")->as_uint64(), 47u);
}

// The device line: which device would run the model, and why; an
// explicit plugin device is named with its plugin; a bad spec is exit 2.
TEST(InspectTest, PrintsTheDeviceAndWhy) {
  const std::string path = kModels + "/stories260K/model.gguf";
  if (!fs::exists(path)) GTEST_SKIP();
  const JsonValue cpu = InspectJson(path);
  ASSERT_NE(cpu.Find("device"), nullptr);
  EXPECT_EQ(cpu.Find("device")->Find("spec")->as_string(), "cpu");  // no GPU plugin here
  EXPECT_TRUE(cpu.Find("device")->Find("runs_forward_pass")->as_bool());
  const ProcessResult hostref = Inspect({"--model", path, "--device", "hostref"});
  ASSERT_EQ(hostref.exit_code, 0) << hostref.err;
  EXPECT_EQ(hostref.out.rfind("device        hostref:0 (host reference, ", 0), 0u) << hostref.out;
  const ProcessResult bad = Inspect({"--model", path, "--device", "tpu"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--device"), std::string::npos) << bad.err;
}

TEST(InspectTest, TinyRandomF16Gguf) {
  const std::string path = kModels + "/tiny-random/llama-2-tiny-random.gguf";
  if (!fs::exists(path)) GTEST_SKIP();
  const JsonValue j = InspectJson(path);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(*j.Find("config")->Find("vocab_size")->as_int64(), 32000);
  EXPECT_EQ(*j.Find("config")->Find("hidden_size")->as_int64(), 8);
  EXPECT_EQ(j.Find("totals")->Find("by_dtype")->Find("F16") != nullptr, true);
}

TEST(InspectTest, SmolLM2Q4_1) {
  const char* path = std::getenv("RELAYOUT_SMOLLM2_GGUF");
  if (path == nullptr || !fs::exists(path)) GTEST_SKIP() << "RELAYOUT_SMOLLM2_GGUF not set";
  const JsonValue j = InspectJson(path);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(*j.Find("totals")->Find("tensors")->as_uint64(), 272u);
  EXPECT_EQ(*j.Find("totals")->Find("by_dtype")->Find("Q4_1")->Find("tensors")->as_uint64(), 210u);
  EXPECT_EQ(*j.Find("totals")->Find("by_dtype")->Find("Q8_0")->Find("tensors")->as_uint64(), 1u);
  EXPECT_EQ(*j.Find("config")->Find("num_kv_heads")->as_int64(), 3);
  EXPECT_TRUE(j.Find("config")->Find("tie_word_embeddings")->as_bool());
}

// ---------------------------------------------------------------------------
// Malformed input: exit 2, exactly one line on stderr naming the problem.

struct Malformed {
  std::string name;
  std::string source;  // file under the stories260K folder
  std::function<std::string(std::string)> mutate;
  std::string expect;  // a part of the error line
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

std::string SetU64(std::string bytes, size_t at, uint64_t v) {
  std::memcpy(bytes.data() + at, &v, 8);
  return bytes;
}

std::vector<Malformed> MalformedCases() {
  return {
      {"st_truncated_in_length", "model.safetensors", [](std::string b) { return b.substr(0, 4); },
       "model.safetensors"},
      {"st_truncated_in_header", "model.safetensors",
       [](std::string b) { return b.substr(0, 200); }, "model.safetensors"},
      {"st_truncated_in_data", "model.safetensors",
       [](std::string b) { return b.substr(0, b.size() - 100); }, "model.safetensors"},
      {"st_header_length_huge", "model.safetensors",
       [](std::string b) { return SetU64(b, 0, 1ull << 62); }, "model.safetensors"},
      {"st_bad_json", "model.safetensors",
       [](std::string b) {
         b[8] = 'x';
         return b;
       },
       "JSON"},
      {"st_wrong_dtype_size", "model.safetensors",
       [](std::string b) {
         const auto pos = b.find("\"shape\":[512,64]");
         b.replace(pos, 16, "\"shape\":[512,32]");
         return b;
       },
       "model.embed_tokens.weight"},
      {"gguf_truncated_in_counts", "model.gguf", [](std::string b) { return b.substr(0, 12); },
       "model.gguf"},
      {"gguf_truncated_in_metadata", "model.gguf", [](std::string b) { return b.substr(0, 100); },
       "model.gguf"},
      {"gguf_truncated_in_data", "model.gguf",
       [](std::string b) { return b.substr(0, b.size() - 100); }, "model.gguf"},
      {"gguf_bad_magic", "model.gguf",
       [](std::string b) {
         b[0] = 'X';
         return b;
       },
       "model.gguf"},
      {"gguf_huge_tensor_count", "model.gguf",
       [](std::string b) { return SetU64(b, 8, 1ull << 60); }, "model.gguf"},
      {"gguf_huge_kv_count", "model.gguf", [](std::string b) { return SetU64(b, 16, 1ull << 60); },
       "model.gguf"},
      {"gguf_huge_key_length", "model.gguf",
       [](std::string b) { return SetU64(b, 24, 1ull << 62); }, "model.gguf"},
  };
}

class InspectMalformedTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(InspectMalformedTest, ExitsTwoWithOneLine) {
  const Malformed& m = GetParam();
  const std::string src = kModels + "/stories260K/" + m.source;
  if (!fs::exists(src)) GTEST_SKIP();
  const std::string dir = ::testing::TempDir() + "/inspect_" + m.name;
  fs::create_directories(dir);
  fs::copy_file(kModels + "/stories260K/config.json", dir + "/config.json",
                fs::copy_options::overwrite_existing);
  const std::string path = dir + "/" + m.source;
  WriteFile(path, m.mutate(ReadFile(src)));
  for (bool json : {false, true}) {
    ProcessResult r = json ? Inspect({"--model", path, "--json"}) : Inspect({"--model", path});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(CountLines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(m.expect), std::string::npos) << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, InspectMalformedTest, ::testing::ValuesIn(MalformedCases()),
                         [](const auto& info) { return info.param.name; });

TEST(InspectTest, UsageErrorsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--model"},
      {"--bogus"},
      {"--model", "/nonexistent/model.gguf"},
      {"--model", ::testing::TempDir()},
  };
  for (const auto& args : cases) {
    ProcessResult r = Inspect(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(CountLines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("relayoutd: ", 0), 0u) << r.err;
  }
}

TEST(InspectTest, SafetensorsWithoutConfigIsNamed) {
  const std::string src = kModels + "/stories260K/model.safetensors";
  if (!fs::exists(src)) GTEST_SKIP();
  const std::string dir = ::testing::TempDir() + "/inspect_noconfig";
  fs::create_directories(dir);
  fs::copy_file(src, dir + "/model.safetensors", fs::copy_options::overwrite_existing);
  ProcessResult r = Inspect({"--model", dir + "/model.safetensors"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("config.json: missing"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace relayout
