#include "engine/model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace relayout {
namespace {

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s(Greedy());
  std::vector<float> logits = {0.1f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.Sample(logits).id, 1);
}

TEST(SamplerTest, LogprobsAreLogSoftmax) {
  SamplingParams p = Greedy();
  p.top_logprobs = 2;
  Sampler s(p);
  std::vector<float> logits = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  SampledToken t = s.Sample(logits);
  EXPECT_EQ(t.id, 0);
  EXPECT_NEAR(t.logprob, std::log(0.5), 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].id, 0);
  EXPECT_EQ(t.top[1].id, 1);
  EXPECT_NEAR(t.top[1].logprob, std::log(0.25), 1e-6);
}

TEST(SamplerTest, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  std::vector<float> base(100);
  for (size_t i = 0; i < base.size(); ++i) base[i] = std::sin(static_cast<float>(i));
  std::vector<int32_t> a, b;
  Sampler s1(p), s2(p);
  for (int i = 0; i < 50; ++i) {
    auto l1 = base, l2 = base;
    a.push_back(s1.Sample(l1).id);
    b.push_back(s2.Sample(l2).id);
  }
  EXPECT_EQ(a, b);
  p.seed = 43;
  Sampler s3(p);
  std::vector<int32_t> c;
  for (int i = 0; i < 50; ++i) {
    auto l = base;
    c.push_back(s3.Sample(l).id);
  }
  EXPECT_NE(a, c);
}

TEST(SamplerTest, TopKAndTopPAndMinPRestrictTheSupport) {
  std::vector<float> base = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  const auto support = [&](SamplingParams p) {
    std::map<int32_t, int> seen;
    Sampler s(p);
    for (int i = 0; i < 4000; ++i) {
      auto l = base;
      ++seen[s.Sample(l).id];
    }
    return seen;
  };
  SamplingParams k;
  k.top_k = 2;
  auto seen = support(k);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_NEAR(seen[0] / 4000.0, 0.4 / 0.7, 0.03);
  SamplingParams p;
  p.top_p = 0.65f;  // 0.4 + 0.3 >= 0.65
  EXPECT_EQ(support(p).size(), 2u);
  SamplingParams m;
  m.min_p = 0.6f;  // keeps p >= 0.24
  EXPECT_EQ(support(m).size(), 2u);
  SamplingParams all;
  EXPECT_EQ(support(all).size(), 4u);
}

TEST(SamplerTest, PenaltiesLowerSeenTokens) {
  SamplingParams p = Greedy();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<int32_t> prompt = {0};
  s.ObservePrompt(prompt);
  std::vector<float> logits = {3.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.Sample(logits).id, 1);  // 3/2 = 1.5 < 2
  EXPECT_FLOAT_EQ(logits[0], 1.5f);

  SamplingParams f = Greedy();
  f.frequency_penalty = 1.0f;
  f.presence_penalty = 0.5f;
  Sampler s2(f);
  std::vector<float> l1 = {1.0f, 0.0f};
  EXPECT_EQ(s2.Sample(l1).id, 0);
  std::vector<float> l2 = {1.0f, 0.0f};
  EXPECT_EQ(s2.Sample(l2).id, 1);  // 1 - 1 - 0.5 < 0
  EXPECT_FLOAT_EQ(l2[0], -0.5f);
}

TEST(SamplerTest, ValidateNamesTheField) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_EQ(p.Validate().message(), "sampling: top_p is 0, must be in (0, 1]");
  p = {};
  p.temperature = -1;
  EXPECT_EQ(p.Validate().code(), StatusCode::kInvalidArgument);
  p = {};
  p.top_logprobs = 21;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

}  // namespace
}  // namespace relayout
