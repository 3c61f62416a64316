#include "engine/model/generation.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/model/model_test_util.h"

namespace relayout {
namespace {

using testing::LoadModel;
using testing::ModelPath;
using testing::ReferencePath;

struct TextCase {
  std::string model;
  std::string prompt;
  int64_t positions;  // llama2.c's -n
  std::string reference;
};

const TextCase kTexts[] = {
    {"stories260K", "Once upon a time", 64, "greedy_once_upon_a_time_n64.txt"},
    {"stories260K", "", 256, "greedy_noprompt_n256.txt"},
    {"llama2xs260K", "Once upon a time", 64, "greedy_once_upon_a_time_n64.txt"},
    {"llama2xs260K", "", 256, "greedy_noprompt_n256.txt"},
    {"aidreams260K", "I dreamed", 64, "greedy_i_dreamed_n64.txt"},
    {"aidreams260K", "", 128, "greedy_noprompt_n128.txt"},
};

class GreedyTextTest : public ::testing::TestWithParam<std::tuple<TextCase, std::string>> {};

// Greedy text, printed as llama2.c prints it (prompt, text, newline), equals
// the reference; the streamed pieces add up to the same text.
TEST_P(GreedyTextTest, EqualsLlama2cOutput) {
  const auto& [c, file] = GetParam();
  const std::string path = ModelPath(c.model, file);
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  kernels::ThreadPool pool(2);
  Result<testing::LoadedModel> loaded = LoadModel(path, "auto", &pool);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Result<std::vector<int32_t>> prompt = loaded->tokenizer->Encode(c.prompt, EncodeOptions{});
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  GenerationOptions options;
  options.sampling.temperature = 0;
  options.max_new_tokens = c.positions - static_cast<int64_t>(prompt->size()) + 1;
  options.max_positions = c.positions;  // the GGUF copies declare a shorter context
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(loaded->model->kv_cache_shape(), 1 << 20, &ledger));
  std::string streamed;
  Result<GenerationResult> result =
      GenerateFromIds(loaded->model.get(), cache.get(), *loaded->tokenizer, *prompt, options,
                      [&](std::string_view piece) { streamed += piece; });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(c.prompt + result->text + "\n", testing::ReadText(ReferencePath(c.model, c.reference)));
  EXPECT_EQ(streamed, result->text);
  EXPECT_EQ(result->finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(result->timings.generated_tokens, options.max_new_tokens);
  EXPECT_EQ(result->timings.decode_steps, options.max_new_tokens - 1);
  EXPECT_EQ(cache->free_blocks(), cache->total_blocks());
}

INSTANTIATE_TEST_SUITE_P(SharedModels, GreedyTextTest,
                         ::testing::Combine(::testing::ValuesIn(kTexts),
                                            ::testing::Values("model.safetensors", "model.gguf")),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param).model + "_" +
                                              std::get<0>(info.param).reference + "_" +
                                              std::get<1>(info.param);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = ModelPath("stories260K", "model.safetensors");
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
    Result<testing::LoadedModel> loaded = LoadModel(path, "native", &pool_);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = std::move(*loaded);
    cache_ = std::move(*KvCache::Create(loaded_.model->kv_cache_shape(), 1 << 20, &ledger_));
  }
  Result<GenerationResult> Run(std::string_view prompt, const GenerationOptions& options,
                               const TextCallback& on_text = {}) {
    return Generate(loaded_.model.get(), cache_.get(), *loaded_.tokenizer, prompt, options,
                    on_text);
  }

  kernels::ThreadPool pool_{2};
  testing::LoadedModel loaded_;
  MemoryLedger ledger_;
  std::unique_ptr<KvCache> cache_;
};

TEST_F(GenerationTest, StopStringEndsTheTextBeforeIt) {
  GenerationOptions options;
  options.sampling.temperature = 0;
  options.max_new_tokens = 60;
  options.stop_strings = {"Lily."};
  std::string streamed;
  Result<GenerationResult> r =
      Run("Once upon a time", options, [&](std::string_view p) { streamed += p; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kStopString);
  EXPECT_EQ(r->text, ", there was a little girl named ");
  EXPECT_EQ(streamed, r->text);  // nothing of the stop string was streamed
  EXPECT_EQ(cache_->free_blocks(), cache_->total_blocks());
}

TEST_F(GenerationTest, MaxTokensAndContextWindowBoundTheLength) {
  GenerationOptions options;
  options.sampling.temperature = 0;
  options.max_new_tokens = 3;
  Result<GenerationResult> r = Run("Once upon a time", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ids.size(), 3u);
  EXPECT_EQ(r->finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(r->prompt_ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));

  options.max_new_tokens = 100;
  options.max_positions = 8;  // 5 prompt positions, then 3 runs: 4 tokens
  r = Run("Once upon a time", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kContextFull);
  EXPECT_EQ(r->ids.size(), 4u);

  options.max_positions = 5;
  EXPECT_TRUE(Run("Once upon a time", options).status().IsInvalidArgument());
}

TEST_F(GenerationTest, StopIdsAreEosAndBosUnlessBosIsAllowed) {
  GenerationOptions options;
  std::vector<int32_t> ids = StopTokenIds(*loaded_.tokenizer, loaded_.model->config(), options);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 2), ids.end());  // </s>
  EXPECT_NE(std::find(ids.begin(), ids.end(), 1), ids.end());  // <s>, llama2.c's rule
  options.stop_at_bos = false;
  ids = StopTokenIds(*loaded_.tokenizer, loaded_.model->config(), options);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), 1), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), 2), ids.end());
}

TEST_F(GenerationTest, SameSeedSameText) {
  GenerationOptions options;
  options.sampling.temperature = 1.0f;
  options.sampling.top_p = 0.9f;
  options.sampling.seed = 42;
  options.max_new_tokens = 30;
  Result<GenerationResult> a = Run("Once upon a time", options);
  Result<GenerationResult> b = Run("Once upon a time", options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_EQ(a->text, b->text);
}

TEST_F(GenerationTest, KvCacheTooSmallIsResourceExhaustedAndReleased) {
  auto small = std::move(*KvCache::Create(
      loaded_.model->kv_cache_shape(16), loaded_.model->kv_cache_shape(16).BlockBytes(), &ledger_));
  GenerationOptions options;
  options.sampling.temperature = 0;
  options.max_new_tokens = 40;
  Result<GenerationResult> r =
      Generate(loaded_.model.get(), small.get(), *loaded_.tokenizer, "Once upon a time", options);
  EXPECT_TRUE(r.status().IsResourceExhausted()) << r.status();
  EXPECT_EQ(small->free_blocks(), 1);
  EXPECT_EQ(small->num_sequences(), 0);
}

TEST_F(GenerationTest, InvalidOptionsAreRefused) {
  GenerationOptions options;
  options.max_new_tokens = 0;
  EXPECT_TRUE(Run("x", options).status().IsInvalidArgument());
  options.max_new_tokens = 1;
  options.sampling.temperature = -1;
  EXPECT_TRUE(Run("x", options).status().IsInvalidArgument());
  options.sampling.temperature = 0;
  options.add_bos = false;
  EXPECT_TRUE(Run("", options).status().IsInvalidArgument());
}

TEST(FinishReasonTest, Names) {
  EXPECT_EQ(FinishReasonName(FinishReason::kEndOfGeneration), "eos");
  EXPECT_EQ(FinishReasonName(FinishReason::kStopString), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kMaxTokens), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kContextFull), "context");
}

}  // namespace
}  // namespace relayout
