#include "kernels/cuda/host/metadata.h"

#include <gtest/gtest.h>

#include <climits>
#include <vector>

namespace relayout::cuda {
namespace {

rl_attention_params Params() {
  rl_attention_params p{};
  p.num_heads = 8;
  p.num_kv_heads = 2;
  p.head_dim = 64;
  p.block_size = 16;
  p.scale = 0.125f;
  p.kv_dtype = RL_KV_F16;
  p.pool_blocks = 10;
  return p;
}

TEST(MetadataTest, TokensInsideTheVocabulary) {
  const int32_t ok[3] = {0, 5, 99};
  EXPECT_EQ(CheckTokens(ok, 3, 100), "");
  EXPECT_EQ(CheckTokens(nullptr, 0, 100), "");
  const int32_t bad[2] = {3, 100};
  EXPECT_EQ(CheckTokens(bad, 2, 100), "token 1 is 100, outside the vocabulary [0, 100)");
  const int32_t negative[1] = {-1};
  EXPECT_NE(CheckTokens(negative, 1, 100), "");
  EXPECT_NE(CheckTokens(nullptr, 1, 100), "");
  EXPECT_NE(CheckTokens(ok, -1, 100), "");
}

TEST(MetadataTest, PositionsNonNegativeAndInsideInt32) {
  const int32_t ok[2] = {0, 7};
  EXPECT_EQ(CheckPositions(ok, 2), "");
  const int32_t bad[2] = {0, -3};
  EXPECT_EQ(CheckPositions(bad, 2), "position 1 is -3, outside [0, 2147483647)");
  const int32_t top[1] = {INT32_MAX};
  EXPECT_NE(CheckPositions(top, 1), "");
  EXPECT_NE(CheckPositions(nullptr, 1), "");
}

TEST(MetadataTest, AttentionParams) {
  rl_attention_params p = Params();
  EXPECT_EQ(CheckAttentionParams(&p), "");
  p.num_kv_heads = 3;
  EXPECT_NE(CheckAttentionParams(&p), "");
  p = Params();
  p.kv_dtype = 7;
  EXPECT_NE(CheckAttentionParams(&p), "");
  p = Params();
  p.block_size = 0;
  EXPECT_NE(CheckAttentionParams(&p), "");
  EXPECT_NE(CheckAttentionParams(nullptr), "");
}

TEST(MetadataTest, SpansSummarizedAndTablesChecked) {
  const rl_attention_params p = Params();
  const int32_t t0[3] = {4, 5, 6};  // 33 positions: 3 blocks
  const int32_t t1[1] = {9};
  const rl_attention_span spans[3] = {
      {0, 1, 32, t0}, {1, 16, 0, t1}, {17, 0, 1000, nullptr}};  // the last is empty
  SpanSummary s;
  ASSERT_EQ(CheckSpans(&p, spans, 3, &s), "");
  EXPECT_EQ(s.rows, 17);
  EXPECT_EQ(s.longest_context, 33);
  EXPECT_EQ(s.max_blocks, 3);
  EXPECT_EQ(s.max_span_rows, 16);
  EXPECT_EQ(s.total_rows, 17);
  EXPECT_EQ(SpanBlocks(spans[0], 16), 3);
  EXPECT_EQ(SpanBlocks(spans[1], 16), 1);
  EXPECT_EQ(SpanBlocks(spans[2], 16), 0);

  const int32_t out_of_pool[3] = {4, 10, 6};
  const rl_attention_span bad[1] = {{0, 1, 32, out_of_pool}};
  EXPECT_EQ(CheckSpans(&p, bad, 1, &s), "span 0: block_table[1] is 10, outside the pool's [0, 10)");
  const rl_attention_span no_table[1] = {{0, 1, 0, nullptr}};
  EXPECT_NE(CheckSpans(&p, no_table, 1, &s), "");
  const rl_attention_span negative[1] = {{0, 1, -1, t0}};
  EXPECT_NE(CheckSpans(&p, negative, 1, &s), "");
  const rl_attention_span huge[1] = {{0, 2, INT32_MAX - 1, t0}};
  EXPECT_NE(CheckSpans(&p, huge, 1, &s), "");
  EXPECT_NE(CheckSpans(&p, nullptr, 1, &s), "");
  EXPECT_EQ(CheckSpans(&p, nullptr, 0, &s), "");
  EXPECT_EQ(s.rows, 0);
}

TEST(MetadataTest, FlattensTablesWithPadding) {
  const int32_t t0[3] = {4, 5, 6};
  const int32_t t1[1] = {9};
  const rl_attention_span spans[3] = {{0, 1, 32, t0}, {1, 16, 0, t1}, {17, 0, 0, nullptr}};
  std::vector<int32_t> flat(12, -1);
  FlattenBlockTables(spans, 3, 16, 4, flat.data());
  EXPECT_EQ(flat, (std::vector<int32_t>{4, 5, 6, 0, 9, 0, 0, 0, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace relayout::cuda
