#include "kernels/cuda/host/step_recorder.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace relayout::cuda {
namespace {

StepSignature Shape(std::initializer_list<uint64_t> words) {
  StepSignature s;
  for (uint64_t w : words) s.Add(w);
  return s;
}

TEST(StepSignatureTest, EqualWordsEqualSignatures) {
  EXPECT_EQ(Shape({1, 2, 3}), Shape({1, 2, 3}));
  EXPECT_EQ(Shape({1, 2, 3}).hash(), Shape({1, 2, 3}).hash());
  EXPECT_FALSE(Shape({1, 2, 3}) == Shape({1, 3, 2}));
  EXPECT_NE(Shape({1, 2, 3}).hash(), Shape({1, 3, 2}).hash());
  EXPECT_FALSE(Shape({1, 2}) == Shape({1, 2, 0}));
  StepSignature s = Shape({4});
  s.Clear();
  EXPECT_EQ(s, StepSignature());
  StepSignature f;
  f.AddFloat(0.5f);
  EXPECT_EQ(f.words().front(), 0x3f000000u);
}

TEST(MetadataArenaTest, OffsetsAreAlignedZeroedAndFollowFromTheSizesAlone) {
  MetadataArena a;
  const int32_t ids[3] = {7, 8, 9};
  EXPECT_EQ(a.Append(ids, sizeof ids), 0u);
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a.Reserve(5), 16u);  // 16-byte alignment by default
  EXPECT_EQ(a.at(16)[4], 0);
  EXPECT_EQ(a.Reserve(1, 256), 256u);
  EXPECT_EQ(a.Append(nullptr, 0), 272u);
  EXPECT_EQ(a.size(), 272u);
  int32_t back[3];
  std::memcpy(back, a.at(0), sizeof back);
  EXPECT_EQ(back[2], 9);
  // Another sequence of the same sizes lands at the same offsets.
  MetadataArena b;
  const int32_t other[3] = {1, 2, 3};
  EXPECT_EQ(b.Append(other, sizeof other), 0u);
  EXPECT_EQ(b.Reserve(5), 16u);
  EXPECT_EQ(b.Reserve(1, 256), 256u);
  a.Clear();
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.Reserve(4), 0u);
  EXPECT_EQ(a.at(0)[0], 0);  // zeroed again after a clear
}

TEST(MetadataArenaTest, SharedArraysAreStoredOncePerTagAndContent) {
  MetadataArena a;
  const int32_t pos[2] = {40, 41};
  const int32_t other[2] = {40, 42};
  const uint64_t p0 = a.AppendShared(1, pos, sizeof pos);
  EXPECT_EQ(a.AppendShared(1, pos, sizeof pos), p0);
  EXPECT_NE(a.AppendShared(1, other, sizeof other), p0);  // other bytes
  EXPECT_NE(a.AppendShared(2, pos, sizeof pos), p0);      // another tag
  EXPECT_NE(a.AppendShared(1, pos, 4), p0);               // another size
  EXPECT_NE(a.Append(pos, sizeof pos), p0);               // not shared
  const uint64_t size = a.size();
  EXPECT_EQ(a.AppendShared(1, other, sizeof other), 16u);
  EXPECT_EQ(a.size(), size);
  a.Clear();
  EXPECT_EQ(a.AppendShared(1, other, sizeof other), 0u);  // forgotten with the bytes
  EXPECT_EQ(a.AppendShared(1, pos, sizeof pos), 16u);
}

TEST(StepRecorderTest, RecordsOpsInOrderAndEndsWithTheirSignatureAndNeeds) {
  StepRecorder r;
  EXPECT_FALSE(r.active());
  RecordedStep step;
  EXPECT_FALSE(r.End(&step));
  ASSERT_TRUE(r.Begin());
  EXPECT_FALSE(r.Begin());  // steps do not nest
  EXPECT_TRUE(r.active());
  std::vector<int> ran;
  const int32_t tokens[2] = {5, 6};
  const uint64_t off = r.metadata().Append(tokens, sizeof tokens);
  WorkspaceNeeds a{};
  a[static_cast<int>(Workspace::kQuantActivations)] = 100;
  a[static_cast<int>(Workspace::kAttention)] = 7;
  r.Record(1, Shape({10, off}), a, [&](const unsigned char* meta) {
    int32_t t[2];
    std::memcpy(t, meta + off, sizeof t);
    ran.push_back(t[1]);
    return 0;
  });
  WorkspaceNeeds b{};
  b[static_cast<int>(Workspace::kQuantActivations)] = 50;
  b[static_cast<int>(Workspace::kDequant)] = 9;
  r.Record(2, Shape({20}), b, [&](const unsigned char*) {
    ran.push_back(-1);
    return 3;
  });
  ASSERT_TRUE(r.End(&step));
  EXPECT_FALSE(r.active());
  EXPECT_FALSE(step.incomplete);
  ASSERT_EQ(step.ops.size(), 2u);
  EXPECT_EQ(step.needs[static_cast<int>(Workspace::kQuantActivations)], 100u);
  EXPECT_EQ(step.needs[static_cast<int>(Workspace::kAttention)], 7u);
  EXPECT_EQ(step.needs[static_cast<int>(Workspace::kDequant)], 9u);
  // The metadata is still there for the plugin to copy.
  EXPECT_EQ(r.metadata().size(), 8u);
  EXPECT_EQ(step.ops[0](r.metadata().data()), 0);
  EXPECT_EQ(step.ops[1](r.metadata().data()), 3);
  EXPECT_EQ(ran, (std::vector<int>{6, -1}));
}

// Steps with the same ops, shapes and metadata sizes share a signature
// whatever the metadata's values; any difference in shape splits them.
TEST(StepRecorderTest, SignatureIgnoresMetadataValuesButNotShapes) {
  auto record = [](std::vector<int32_t> tokens, uint64_t operand, uint32_t second_kind) {
    StepRecorder r;
    EXPECT_TRUE(r.Begin());
    const uint64_t off = r.metadata().Append(tokens.data(), tokens.size() * 4);
    r.Record(1, Shape({operand, tokens.size(), off}), {}, [](const unsigned char*) { return 0; });
    r.Record(second_kind, Shape({operand}), {}, [](const unsigned char*) { return 0; });
    RecordedStep step;
    EXPECT_TRUE(r.End(&step));
    return step.signature;
  };
  const StepSignature base = record({1, 2}, 0x1000, 2);
  EXPECT_EQ(record({9, 3}, 0x1000, 2), base);
  EXPECT_FALSE(record({1, 2, 3}, 0x1000, 2) == base);  // another batch
  EXPECT_FALSE(record({1, 2}, 0x2000, 2) == base);     // another operand
  EXPECT_FALSE(record({1, 2}, 0x1000, 3) == base);     // another op
}

// An op's words cannot run into the next op's: (kind 1, {2, 3}) then
// (kind 4, {}) differs from (kind 1, {2}) then (kind 3, ...).
TEST(StepRecorderTest, OpBoundariesAreInTheSignature) {
  auto sig = [](std::vector<std::pair<uint32_t, StepSignature>> ops) {
    StepRecorder r;
    EXPECT_TRUE(r.Begin());
    for (auto& [kind, shape] : ops) r.Record(kind, shape, {}, nullptr);
    RecordedStep step;
    EXPECT_TRUE(r.End(&step));
    return step.signature;
  };
  EXPECT_FALSE(sig({{1, Shape({2, 3})}, {4, Shape({})}}) ==
               sig({{1, Shape({2})}, {3, Shape({4})}}));
}

TEST(StepRecorderTest, IncompleteAndAbandonedSteps) {
  StepRecorder r;
  ASSERT_TRUE(r.Begin());
  r.Record(1, Shape({1}), {}, nullptr);
  r.MarkIncomplete();
  RecordedStep step;
  ASSERT_TRUE(r.End(&step));
  EXPECT_TRUE(step.incomplete);
  // A new step starts clean.
  ASSERT_TRUE(r.Begin());
  r.metadata().Reserve(4);
  r.Abandon();
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.metadata().size(), 0u);
  ASSERT_TRUE(r.Begin());
  ASSERT_TRUE(r.End(&step));
  EXPECT_FALSE(step.incomplete);
  EXPECT_TRUE(step.ops.empty());
}

TEST(GraphCacheTest, FindsInsertsAndEvictsTheLeastRecentlyUsed) {
  std::vector<int> destroyed;
  GraphCache<int> cache(2, [&](int& v) { destroyed.push_back(v); });
  EXPECT_EQ(cache.Find(Shape({1})), nullptr);
  cache.Insert(Shape({1}), 10);
  cache.Insert(Shape({2}), 20);
  ASSERT_NE(cache.Find(Shape({1})), nullptr);  // 1 is now the most recent
  EXPECT_EQ(*cache.Find(Shape({1})), 10);
  cache.Insert(Shape({3}), 30);  // evicts 2
  EXPECT_EQ(destroyed, (std::vector<int>{20}));
  EXPECT_EQ(cache.Find(Shape({2})), nullptr);
  EXPECT_EQ(*cache.Find(Shape({3})), 30);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
  // Replacing destroys the old value.
  cache.Insert(Shape({3}), 31);
  EXPECT_EQ(destroyed, (std::vector<int>{20, 30}));
  EXPECT_EQ(*cache.Find(Shape({3})), 31);
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(destroyed.size(), 4u);
  EXPECT_EQ(cache.Find(Shape({1})), nullptr);
}

TEST(GraphCacheTest, DestructionDestroysWhatIsLeft) {
  int destroyed = 0;
  {
    GraphCache<int> cache(8, [&](int&) { ++destroyed; });
    for (uint64_t i = 0; i < 5; ++i) cache.Insert(Shape({i}), static_cast<int>(i));
  }
  EXPECT_EQ(destroyed, 5);
}

// Keys whose hashes collide still find their own values.
TEST(GraphCacheTest, ComparesWholeSignatures) {
  GraphCache<int> cache(4, [](int&) {});
  StepSignature a = Shape({1, 2});
  StepSignature b = Shape({2, 1});
  cache.Insert(a, 1);
  cache.Insert(b, 2);
  EXPECT_EQ(*cache.Find(a), 1);
  EXPECT_EQ(*cache.Find(b), 2);
}

TEST(ContextBucketTest, PowersOfTwoFrom256) {
  EXPECT_EQ(ContextBucket(0), 256);
  EXPECT_EQ(ContextBucket(1), 256);
  EXPECT_EQ(ContextBucket(256), 256);
  EXPECT_EQ(ContextBucket(257), 512);
  EXPECT_EQ(ContextBucket(4096), 4096);
  EXPECT_EQ(ContextBucket(4097), 8192);
  EXPECT_EQ(ContextBucket(int64_t{1} << 31), int64_t{1} << 31);
}

TEST(GraphsEnabledByEnvTest, OnUnlessTurnedOff) {
  EXPECT_TRUE(GraphsEnabledByEnv(nullptr));
  EXPECT_TRUE(GraphsEnabledByEnv("1"));
  EXPECT_TRUE(GraphsEnabledByEnv(""));
  EXPECT_FALSE(GraphsEnabledByEnv("0"));
  EXPECT_FALSE(GraphsEnabledByEnv("off"));
  EXPECT_FALSE(GraphsEnabledByEnv("false"));
}

}  // namespace
}  // namespace relayout::cuda
