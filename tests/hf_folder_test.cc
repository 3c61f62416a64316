// A Hugging Face folder as published (sharded BF16 safetensors,
// tokenizer.json, tokenizer_config.json, generation_config.json) runs like
// the GGUF it was made from (tests/hf_fixture.h): the same prompt ids, the
// same greedy text from `relayoutd generate` over the first tokens, and
// logits that agree up to the BF16 rounding of the weights over 32 steps. Needs the SmolLM2 GGUF
// and the .venv; skips without.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "engine/model/model_test_util.h"
#include "tests/hf_fixture.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

using testing::LoadModel;
using testing::ProcessResult;
using testing::RunProcess;

const char* const kPrompts[] = {"The capital of France is", "Once upon a time, there was",
                                "def fibonacci(n):"};
constexpr int kSteps = 32;
// Greedy text is compared over a few tokens only: past them the two runs
// meet near ties (top two within the bound below) and may part, as they do
// after 4 to 25 tokens on these prompts.
constexpr int kTextSteps = 4;

class HfFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gguf_ = testing::SmolLm2Gguf();
    if (gguf_.empty()) GTEST_SKIP() << "no SmolLM2 GGUF (RELAYOUT_SMOLLM2_GGUF)";
    folder_ = testing::SmolLm2HfFolder();
    if (folder_.empty()) GTEST_SKIP() << "no " << RELAYOUT_PYTHON;
  }
  std::string gguf_;
  std::string folder_;
};

ProcessResult Generate(const std::string& model, const std::string& prompt) {
  return RunProcess({RELAYOUTD_BINARY, "generate", "--model", model, "--prompt", prompt,
                     "--max-tokens", std::to_string(kTextSteps), "--temperature", "0", "--threads",
                     "2"});
}

TEST_F(HfFolderTest, GreedyTextEqualsTheGguf) {
  for (const char* prompt : kPrompts) {
    const ProcessResult a = Generate(gguf_, prompt);
    const ProcessResult b = Generate(folder_, prompt);
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_GT(b.out.size(), std::string(prompt).size() + 1) << prompt;
    EXPECT_EQ(b.out, a.out) << prompt;
  }
}

// The side files reach the loaded model: the chat template and special
// tokens of tokenizer_config.json, the stop ids of generation_config.json.
TEST_F(HfFolderTest, SideFilesAreRead) {
  Result<Checkpoint> hf = OpenCheckpoint(Env::Default(), folder_);
  Result<Checkpoint> gg = OpenCheckpoint(Env::Default(), gguf_);
  ASSERT_TRUE(hf.ok()) << hf.status();
  ASSERT_TRUE(gg.ok()) << gg.status();
  EXPECT_EQ(hf->source->paths().size(), 2u);
  ASSERT_NE(hf->tokenizer_config.FindChatTemplate(), nullptr);
  EXPECT_EQ(hf->tokenizer_config.FindChatTemplate()->source,
            gg->tokenizer_config.FindChatTemplate()->source);
  EXPECT_EQ(hf->tokenizer_config.eos_token, "<|im_end|>");
  EXPECT_EQ(hf->config.eos_token_ids, gg->config.eos_token_ids);
  EXPECT_TRUE(hf->config.tie_word_embeddings);
}

// Logits along the GGUF's greedy path (both models are fed the GGUF's
// choice, so one near tie cannot send them down different texts). The
// folder's weights are the GGUF's dequantized values rounded to BF16 (8
// significant bits: each weight moves by at most u = 2^-9 of itself, with
// independent signs). The GGUF side quantizes activations to 8 bits for its
// Q4_1 matmuls (2^-8 of each 32-value block's maximum), the larger term. A
// logit is a sum over the residual stream that every layer renormalizes, so
// both errors reach it in proportion to the logits' own scale: the bound
// is 16 * 2^-8 of the step's logit range. A wrong q/k row order or a missed
// tensor moves logits by the range itself. Rankings are compared only where
// they are decided by more than the bound: the argmax whenever the GGUF's
// margin between its first two exceeds twice the bound, and at the first
// step, every GGUF top-5 token that leads its 6th by that much.
TEST_F(HfFolderTest, LogitsAgreeUpToBf16Rounding) {
  kernels::ThreadPool pool(2);
  Result<testing::LoadedModel> a = LoadModel(gguf_, "auto", &pool);
  Result<testing::LoadedModel> b = LoadModel(folder_, "auto", &pool);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const int64_t vocab = a->model->config().vocab_size;
  ASSERT_EQ(b->model->config().vocab_size, vocab);
  auto cache_a =
      std::move(*KvCache::Create(a->model->kv_cache_shape(), 64 << 20, a->model->device()));
  auto cache_b =
      std::move(*KvCache::Create(b->model->kv_cache_shape(), 64 << 20, b->model->device()));
  const auto ranked = [vocab](std::span<const float> l, int n) {
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [&](int32_t x, int32_t y) { return l[x] > l[y]; });
    order.resize(static_cast<size_t>(n));
    return order;
  };
  double worst = 0;
  int decided = 0;
  for (const char* prompt : kPrompts) {
    Result<std::vector<int32_t>> ids_a = a->tokenizer->Encode(prompt, EncodeOptions{});
    Result<std::vector<int32_t>> ids_b = b->tokenizer->Encode(prompt, EncodeOptions{});
    ASSERT_TRUE(ids_a.ok() && ids_b.ok());
    ASSERT_EQ(*ids_a, *ids_b) << prompt;
    const SequenceId seq_a = cache_a->CreateSequence();
    const SequenceId seq_b = cache_b->CreateSequence();
    std::vector<int32_t> next = *ids_a;
    int64_t position = 0;
    for (int step = 0; step < kSteps; ++step) {
      BatchEntry ea{seq_a, next, position, false};
      BatchEntry eb{seq_b, next, position, false};
      ASSERT_TRUE(a->model->Forward({&ea, 1}, cache_a.get()).ok());
      ASSERT_TRUE(b->model->Forward({&eb, 1}, cache_b.get()).ok());
      const std::span<const float> la = a->model->Logits(0);
      const std::span<const float> lb = b->model->Logits(0);
      const auto [lo, hi] = std::minmax_element(la.begin(), la.end());
      const double bound = 16.0 / 256.0 * (*hi - *lo);
      double diff = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        diff = std::max(diff, std::fabs(static_cast<double>(la[v]) - lb[v]));
      }
      EXPECT_LE(diff, bound) << prompt << " step " << step;
      worst = std::max(worst, diff / (*hi - *lo));
      const std::vector<int32_t> top_a = ranked(la, 6);
      const std::vector<int32_t> top_b = ranked(lb, 5);
      if (la[top_a[0]] - la[top_a[1]] > 2 * bound) {
        ++decided;
        EXPECT_EQ(top_b[0], top_a[0]) << prompt << " step " << step;
      }
      for (int i = 0; step == 0 && i < 5; ++i) {
        if (la[top_a[i]] - la[top_a[5]] <= 2 * bound) continue;
        EXPECT_NE(std::find(top_b.begin(), top_b.end(), top_a[i]), top_b.end())
            << prompt << ": GGUF top-5 token " << top_a[i];
      }
      position += static_cast<int64_t>(next.size());
      next = {top_a[0]};
    }
    cache_a->Release(seq_a);
    cache_b->Release(seq_b);
  }
  // The bound must leave some steps decided, or the argmax check is empty.
  EXPECT_GT(decided, 0);
  std::printf("largest logit difference: %.4f of the range; %d of %d argmaxes decided\n", worst,
              decided, kSteps * 3);
}

}  // namespace
}  // namespace relayout
