// SmolLM2-135M-Instruct against llama.cpp on the same GGUF: perplexity over
// tests/data/perplexity_text.txt within 1%, in the native and the preferred
// layouts, on the Q4_1 file and on its requantizations to Q4_K_M and Q6_K; on
// Q4_1 also greedy continuations equal for at least the first 32 tokens. The
// reference numbers are tests/data/smollm2_*llamacpp_reference.json, made by
// tools/llamacpp_reference.py (its header has the command; each JSON records
// the commands that made it and its GGUF).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/model/generation.h"
#include "engine/model/model_test_util.h"
#include "engine/text/json.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

const std::string kData = std::string(RELAYOUT_SOURCE_DIR) + "/tests/data";

double Number(const JsonValue* v) {
  if (v == nullptr) return NAN;
  return v->is_string() ? std::strtod(v->as_string().c_str(), nullptr) : v->as_double();
}

std::string String(const JsonValue* v) {
  return v != nullptr && v->is_string() ? v->as_string() : "";
}

std::vector<int32_t> Ids(const JsonValue& array) {
  std::vector<int32_t> ids;
  for (const JsonValue& v : array.as_array()) ids.push_back(static_cast<int32_t>(*v.as_int64()));
  return ids;
}

std::string Sha256(const std::string& path) {
  const testing::ProcessResult r = testing::RunProcess({"/usr/bin/env", "sha256sum", path});
  return r.exit_code == 0 ? r.out.substr(0, r.out.find(' ')) : "sha256sum failed: " + r.err;
}

// Loads the GGUF of a file type ("Q4_1", the downloaded file, in
// $RELAYOUT_SMOLLM2_GGUF; a requantization such as "Q4_K_M" in
// $RELAYOUT_SMOLLM2_Q4_K_M_GGUF, as tools/test.sh sets them) with its
// reference, tests/data/smollm2_llamacpp_reference.json for Q4_1 and
// smollm2_<type>_llamacpp_reference.json for the others.
class LlamaCppFixture : public ::testing::Test {
 protected:
  void Load(const std::string& type, const std::string& layout, const std::string& device) {
    std::string lower = type;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string env =
        type == "Q4_1" ? "RELAYOUT_SMOLLM2_GGUF" : "RELAYOUT_SMOLLM2_" + type + "_GGUF";
    const std::string reference =
        kData + (type == "Q4_1" ? "/smollm2_llamacpp_reference.json"
                                : "/smollm2_" + lower + "_llamacpp_reference.json");
    const char* path = std::getenv(env.c_str());
    if (path == nullptr || !std::filesystem::exists(path)) GTEST_SKIP() << env << " not set";
    Result<JsonValue> json = ParseJson(testing::ReadText(reference));
    ASSERT_TRUE(json.ok()) << reference << ": " << json.status();
    ref_ = std::move(*json);
    // Our quantizer makes the requantized files: when it changes, their bytes
    // do, and the reference no longer describes them.
    const std::string made_by = String(ref_.Find("model_made_by"));
    ASSERT_EQ(Sha256(path), String(ref_.Find("model_sha256")))
        << path << " is not the file " << reference
        << " was computed on; if it changed on purpose, make the reference again: " << made_by
        << (made_by.empty() ? "" : ", then ") << String(ref_.Find("command"));
    Result<testing::LoadedModel> loaded = testing::LoadModel(path, layout, &pool_, device);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = std::move(*loaded);
    if (layout != "native") {
      ASSERT_FALSE(loaded_.layout_summary.empty());
    }
  }

  kernels::ThreadPool pool_{0};
  JsonValue ref_;
  testing::LoadedModel loaded_;
};

// (layout, device) on Q4_1: the CPU, and the host-reference plugin through the
// device ABI.
class LlamaCppParityTest
    : public LlamaCppFixture,
      public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    const auto& [layout, device] = GetParam();
    Load("Q4_1", layout, device);
  }
};

// (file type, layout, device). Perplexity runs 8 windows of 512 tokens: on
// the host-reference plugin (scalar kernels, about 2 minutes on 2 cores) only
// for Q4_1 in the preferred layouts.
class LlamaCppPerplexityTest
    : public LlamaCppFixture,
      public ::testing::WithParamInterface<std::tuple<std::string, std::string, std::string>> {
 protected:
  void SetUp() override {
    const auto& [type, layout, device] = GetParam();
    Load(type, layout, device);
  }
};

// The method of the reference: the text without BOS, non-overlapping windows
// of 512 tokens (the partial last one dropped), each from an empty cache, the
// logits at positions 0..510 scoring tokens 1..511.
TEST_P(LlamaCppPerplexityTest, PerplexityWithinOnePercentOfLlamaCpp) {
  const JsonValue& ppl = *ref_.Find("perplexity");
  const int64_t window = 512;
  EncodeOptions no_bos;
  no_bos.add_bos = false;
  Result<std::vector<int32_t>> ids =
      loaded_.tokenizer->Encode(testing::ReadText(kData + "/perplexity_text.txt"), no_bos);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(static_cast<double>(ids->size()), Number(ppl.Find("text_tokens")));
  LlamaModel& model = *loaded_.model;
  const int64_t vocab = model.config().vocab_size;
  auto cache = std::move(*KvCache::Create(model.kv_cache_shape(), 64ull << 20, model.device()));
  double nll = 0;
  int64_t scored = 0;
  for (size_t start = 0; start + window <= ids->size(); start += window) {
    const SequenceId seq = cache->CreateSequence();
    const std::span<const int32_t> tokens(ids->data() + start, window);
    BatchEntry entry{seq, tokens, 0, /*all_logits=*/true};
    ASSERT_TRUE(model.Forward({&entry, 1}, cache.get()).ok());
    const std::span<const float> logits = model.Logits(0);
    for (int64_t p = 0; p + 1 < window; ++p) {
      const float* row = logits.data() + p * vocab;
      double max = row[0];
      for (int64_t v = 1; v < vocab; ++v) max = std::max<double>(max, row[v]);
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
      nll -= row[tokens[static_cast<size_t>(p + 1)]] - max - std::log(sum);
      ++scored;
    }
    cache->Release(seq);
  }
  EXPECT_EQ(static_cast<double>(scored), Number(ppl.Find("scored_tokens")));
  const double ours = std::exp(nll / static_cast<double>(scored));
  const double theirs = Number(ppl.Find("perplexity"));
  std::printf("perplexity: relayoutd %.4f, llama.cpp %.4f (%+.3f%%)\n", ours, theirs,
              100 * (ours - theirs) / theirs);
  EXPECT_NEAR(ours, theirs, 0.01 * theirs);
}

// Greedy continuations equal llama.cpp's for their first 32 tokens. Both
// engines round differently (llama.cpp feeds attention F16 queries and F16
// softmax weights, quantizes activations with F16 scales and sums in its own
// orders), and over 30 layers that moves some logits by up to about 0.3, so
// where llama.cpp's own top-2 gap is that small the two may pick different
// tokens: a continuation may part from llama.cpp's only at such a step (gap
// below kNearTie, as recorded in the reference), and at least 5 of the 8 must
// not part at all. (Which near ties flip also depends on the compiler and the
// ISA: clang builds on AVX-512 match 6, g++ builds 5.)
TEST_P(LlamaCppParityTest, GreedyContinuationsEqualLlamaCppForTheFirst32Tokens) {
  constexpr double kNearTie = 0.35;  // logits
  const JsonValue& greedy = *ref_.Find("greedy");
  const std::vector<int32_t> eog = Ids(*greedy.Find("end_of_generation_ids"));
  int compared = 0, whole = 0;
  for (const JsonValue& c : greedy.Find("continuations")->as_array()) {
    const std::string name = c.Find("name")->as_string();
    const std::vector<int32_t> prompt = Ids(*c.Find("prompt_ids"));
    std::vector<int32_t> expected = Ids(*c.Find("generated_ids"));
    // llama.cpp's list ends with the end-of-generation token it sampled;
    // Generate stops at it without returning it.
    if (!expected.empty() && std::find(eog.begin(), eog.end(), expected.back()) != eog.end()) {
      expected.pop_back();
    }
    const JsonValue* gaps = c.Find("top2_logit_gaps");
    ASSERT_TRUE(gaps != nullptr && gaps->is_array()) << name;
    GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size());
    options.sampling.temperature = 0;
    options.add_bos = false;
    options.stop_at_bos = false;
    auto cache = std::move(
        *KvCache::Create(loaded_.model->kv_cache_shape(), 16ull << 20, loaded_.model->device()));
    Result<GenerationResult> r =
        GenerateFromIds(loaded_.model.get(), cache.get(), *loaded_.tokenizer, prompt, options);
    ASSERT_TRUE(r.ok()) << r.status();
    const size_t n = std::min<size_t>(32, expected.size());
    size_t same = 0;
    while (same < std::min(r->ids.size(), expected.size()) && r->ids[same] == expected[same])
      ++same;
    std::printf("%s: %zu of %zu tokens equal\n", name.c_str(), same, expected.size());
    ++compared;
    if (same >= n) {
      ++whole;
      continue;
    }
    const double gap = Number(&gaps->as_array()[same]);
    EXPECT_LT(gap, kNearTie) << name << " parts from llama.cpp at token " << same
                             << " where llama.cpp's top-2 gap is " << gap << ": \"" << r->text
                             << "\"";
  }
  EXPECT_EQ(compared, 8);
  EXPECT_GE(whole, 5) << "too few continuations equal llama.cpp's first 32 tokens";
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param);
}

std::string PerplexityParamName(
    const ::testing::TestParamInfo<std::tuple<std::string, std::string, std::string>>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" + std::get<2>(info.param);
}

INSTANTIATE_TEST_SUITE_P(Layouts, LlamaCppParityTest,
                         ::testing::Combine(::testing::Values("native", "auto"),
                                            ::testing::Values("cpu", "hostref")),
                         ParamName);
INSTANTIATE_TEST_SUITE_P(
    Layouts, LlamaCppPerplexityTest,
    ::testing::Values(std::tuple{"Q4_1", "native", "cpu"}, std::tuple{"Q4_1", "auto", "cpu"},
                      std::tuple{"Q4_1", "auto", "hostref"}, std::tuple{"Q4_K_M", "native", "cpu"},
                      std::tuple{"Q4_K_M", "auto", "cpu"}, std::tuple{"Q6_K", "native", "cpu"},
                      std::tuple{"Q6_K", "auto", "cpu"}),
    PerplexityParamName);

}  // namespace
}  // namespace relayout
