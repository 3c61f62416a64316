#include "engine/model/llama_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/model/model_test_util.h"
#include "engine/model/sampler.h"

namespace relayout {
namespace {

using testing::LoadModel;
using testing::ModelPath;
using testing::ReferencePath;

struct GoldenCase {
  std::string model;
  std::string stem;  // the reference run: logits_<stem>.f32, trace_<stem>.txt
};

const GoldenCase kGolden[] = {
    {"stories260K", "once_upon_a_time_n64"},
    {"llama2xs260K", "once_upon_a_time_n64"},
    {"aidreams260K", "i_dreamed_n64"},
};

constexpr double kLogitTolerance = 1e-4;

// Max |a - b| over a row, and where.
std::pair<double, size_t> MaxDiff(std::span<const float> a, const float* b) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double(a[i]) - b[i]);
    if (d > worst) worst = d, at = i;
  }
  return {worst, at};
}

using GoldenParam = std::tuple<GoldenCase, std::string, std::string, std::string>;
class GoldenLogitsTest : public ::testing::TestWithParam<GoldenParam> {};

// Every position's logits, from one prefill of the whole trace and from
// decoding it token by token, equal the reference's to 1e-4, on the CPU
// and through the device ABI on the host-reference plugin.
TEST_P(GoldenLogitsTest, EveryPositionMatchesTheReference) {
  const auto& [golden, file, layout, device] = GetParam();
  const std::string path = ModelPath(golden.model, file);
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  kernels::ThreadPool pool(2);
  Result<testing::LoadedModel> loaded = LoadModel(path, layout, &pool, device);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaModel& model = *loaded->model;
  if (layout != "native") {
    EXPECT_FALSE(loaded->layout_summary.empty()) << "layout not applied";
  }
  const std::vector<int32_t> inputs =
      testing::TraceInputs(ReferencePath(golden.model, "trace_" + golden.stem + ".txt"));
  const std::vector<float> expected =
      testing::ReadFloats(ReferencePath(golden.model, "logits_" + golden.stem + ".f32"));
  const int64_t vocab = model.config().vocab_size;
  ASSERT_EQ(inputs.size(), 64u);
  ASSERT_EQ(expected.size(), inputs.size() * static_cast<size_t>(vocab));

  EXPECT_EQ(model.device()->spec(), device == "cpu" ? "cpu" : device + ":0");
  auto cache = std::move(*KvCache::Create(model.kv_cache_shape(), 1 << 20, model.device()));
  // Prefill: all positions in one pass.
  const SequenceId a = cache->CreateSequence();
  BatchEntry entry{a, inputs, 0, /*all_logits=*/true};
  ASSERT_TRUE(model.Forward({&entry, 1}, cache.get()).ok());
  std::span<const float> all = model.Logits(0);
  ASSERT_EQ(all.size(), expected.size());
  for (size_t p = 0; p < inputs.size(); ++p) {
    auto [diff, at] = MaxDiff(all.subspan(p * vocab, vocab), expected.data() + p * vocab);
    ASSERT_LE(diff, kLogitTolerance) << "prefill position " << p << " token " << at;
  }
  // Decode: one token per pass.
  const SequenceId b = cache->CreateSequence();
  for (size_t p = 0; p < inputs.size(); ++p) {
    BatchEntry step{b, {&inputs[p], 1}, static_cast<int64_t>(p), false};
    ASSERT_TRUE(model.Forward({&step, 1}, cache.get()).ok());
    auto [diff, at] = MaxDiff(model.Logits(0), expected.data() + p * vocab);
    ASSERT_LE(diff, kLogitTolerance) << "decode position " << p << " token " << at;
  }
}

std::string GoldenName(const ::testing::TestParamInfo<GoldenParam>& info) {
  std::string name = std::get<0>(info.param).model + "_" + std::get<1>(info.param) + "_" +
                     std::get<2>(info.param) + "_" + std::get<3>(info.param);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, GoldenLogitsTest,
                         ::testing::Combine(::testing::ValuesIn(kGolden),
                                            ::testing::Values("model.safetensors", "model.gguf"),
                                            ::testing::Values("native", "auto", "rowgroup-g8k8",
                                                              "rowgroup-g16k16"),
                                            ::testing::Values("cpu", "hostref")),
                         GoldenName);

class LlamaModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = ModelPath("stories260K", "model.gguf");
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
    Result<testing::LoadedModel> loaded = LoadModel(path, "auto", &pool_);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = std::move(*loaded);
  }
  LlamaModel& model() { return *loaded_.model; }

  kernels::ThreadPool pool_{2};
  testing::LoadedModel loaded_;
};

// Greedy continuation of one sequence, decoding alone.
std::vector<int32_t> GreedyAlone(LlamaModel& model, KvCache* cache,
                                 const std::vector<int32_t>& prompt, int steps) {
  const SequenceId id = cache->CreateSequence();
  BatchEntry entry{id, prompt, 0, false};
  EXPECT_TRUE(model.Forward({&entry, 1}, cache).ok());
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    out.push_back(ArgMax(model.Logits(0)));
    entry = {id, {&out.back(), 1}, static_cast<int64_t>(prompt.size()) + i, false};
    EXPECT_TRUE(model.Forward({&entry, 1}, cache).ok());
  }
  cache->Release(id);
  return out;
}

TEST_F(LlamaModelTest, BatchedDecodeOfDifferentLengthsEqualsDecodingAlone) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(model().kv_cache_shape(4), 1 << 20, &ledger));
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 403, 407, 261, 378}, {1}, {1, 346, 306, 414, 263, 304, 341, 13, 40, 41, 42}};
  const int steps = 20;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(GreedyAlone(model(), cache.get(), p, steps));
  ASSERT_EQ(cache->free_blocks(), cache->total_blocks());

  // All prompts prefilled in one pass, then every step decodes all three.
  std::vector<SequenceId> ids;
  std::vector<BatchEntry> batch;
  for (const auto& p : prompts) {
    ids.push_back(cache->CreateSequence());
    batch.push_back({ids.back(), p, 0, false});
  }
  ASSERT_TRUE(model().Forward(batch, cache.get()).ok());
  std::vector<std::vector<int32_t>> together(prompts.size());
  for (int i = 0; i < steps; ++i) {
    for (size_t s = 0; s < prompts.size(); ++s) together[s].push_back(ArgMax(model().Logits(s)));
    batch.clear();
    for (size_t s = 0; s < prompts.size(); ++s) {
      batch.push_back(
          {ids[s], {&together[s].back(), 1}, static_cast<int64_t>(prompts[s].size()) + i, false});
    }
    ASSERT_TRUE(model().Forward(batch, cache.get()).ok());
  }
  EXPECT_EQ(together, alone);
  for (SequenceId id : ids) cache->Release(id);
  EXPECT_EQ(cache->free_blocks(), cache->total_blocks());
}

TEST_F(LlamaModelTest, RunningOutOfKvBlocksIsResourceExhaustedAndChangesNothing) {
  MemoryLedger ledger;
  const KvCacheShape shape = model().kv_cache_shape(16);
  auto cache = std::move(*KvCache::Create(shape, 2 * shape.BlockBytes(), &ledger));
  const SequenceId a = cache->CreateSequence();
  const SequenceId b = cache->CreateSequence();
  std::vector<int32_t> tokens(20, 300);
  BatchEntry first{a, tokens, 0, false};
  ASSERT_TRUE(model().Forward({&first, 1}, cache.get()).ok());  // 2 blocks
  EXPECT_EQ(cache->free_blocks(), 0);
  BatchEntry batch[] = {{a, {&tokens[0], 1}, 20, false}, {b, {&tokens[0], 1}, 0, false}};
  Status s = model().Forward(batch, cache.get());
  EXPECT_TRUE(s.IsResourceExhausted()) << s;
  EXPECT_NE(s.message().find("kv cache"), std::string::npos) << s;
  EXPECT_EQ(cache->length(a), 20);
  EXPECT_EQ(cache->length(b), 0);
  EXPECT_EQ(cache->block_table(a).size(), 2u);
  EXPECT_TRUE(cache->block_table(b).empty());
  cache->Release(a);
  EXPECT_EQ(cache->free_blocks(), 2);
  // With a's blocks back, b runs.
  BatchEntry second{b, tokens, 0, false};
  EXPECT_TRUE(model().Forward({&second, 1}, cache.get()).ok());
}

TEST_F(LlamaModelTest, InvalidBatchesAreRefused) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(model().kv_cache_shape(), 1 << 20, &ledger));
  const SequenceId a = cache->CreateSequence();
  const std::vector<int32_t> ok = {1, 2};
  const std::vector<int32_t> bad = {1, 512};
  BatchEntry e{a, bad, 0, false};
  Status s = model().Forward({&e, 1}, cache.get());
  EXPECT_TRUE(s.IsInvalidArgument()) << s;
  EXPECT_NE(s.message().find("token 512 is outside the vocabulary"), std::string::npos) << s;
  e = {a, ok, 5, false};
  s = model().Forward({&e, 1}, cache.get());
  EXPECT_TRUE(s.IsInvalidArgument()) << s;
  EXPECT_NE(s.message().find("start position 5"), std::string::npos) << s;
  e = {a + 100, ok, 0, false};
  EXPECT_TRUE(model().Forward({&e, 1}, cache.get()).IsNotFound());
  BatchEntry twice[] = {{a, ok, 0, false}, {a, ok, 0, false}};
  EXPECT_TRUE(model().Forward(twice, cache.get()).IsInvalidArgument());
  EXPECT_TRUE(model().Forward({}, cache.get()).IsInvalidArgument());
  EXPECT_EQ(cache->free_blocks(), cache->total_blocks());
}

TEST(MatmulWeightForTest, MapsEachLayoutAndRefusesTransposed) {
  MemoryLedger ledger;
  LoadedTensor t;
  t.name = "blk.0.attn_q";
  t.dtype = DType::kF32;
  t.shape = {16, 32};
  t.buffer = std::move(*HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, 16 * 32 * 4));
  t.layout = Layout::RowGroupInterleave(8, 8);
  Result<kernels::MatmulWeight> w = MatmulWeightFor(t);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->layout, kernels::WeightLayout::kRowGroup);
  EXPECT_EQ(w->group_rows, 8);
  EXPECT_EQ(w->k_block, 8);
  EXPECT_EQ(w->rows, 16);
  EXPECT_EQ(w->cols, 32);
  t.layout = Layout::Transposed();
  Status s = MatmulWeightFor(t).status();
  EXPECT_TRUE(s.IsUnimplemented()) << s;
  EXPECT_NE(s.message().find("blk.0.attn_q: the transposed layout"), std::string::npos) << s;
  t.dtype = DType::kQ6_K;
  t.layout = Layout::GgufBlocks();
  EXPECT_TRUE(MatmulWeightFor(t).status().IsUnimplemented());
}

}  // namespace
}  // namespace relayout
