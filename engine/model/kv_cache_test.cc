#include "engine/model/kv_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <span>
#include <vector>

namespace relayout {
namespace {

const KvCacheShape kShape{.num_layers = 2, .num_kv_heads = 3, .head_dim = 4, .block_size = 16};

TEST(KvCacheTest, PoolIsSizedByTheBudgetAndDrawnFromTheLedger) {
  MemoryLedger ledger;
  EXPECT_EQ(kShape.BlockBytes(), 2u * 2 * 16 * 12 * 4);
  Result<std::unique_ptr<KvCache>> cache =
      KvCache::Create(kShape, 5 * kShape.BlockBytes() + 100, &ledger);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->total_blocks(), 5);
  EXPECT_EQ((*cache)->free_blocks(), 5);
  EXPECT_EQ(ledger.current(MemoryCategory::kKvCache), 5 * kShape.BlockBytes());
  cache->reset();
  EXPECT_EQ(ledger.current(MemoryCategory::kKvCache), 0u);
}

TEST(KvCacheTest, BudgetBelowOneBlockIsInvalidArgument) {
  MemoryLedger ledger;
  Result<std::unique_ptr<KvCache>> cache =
      KvCache::Create(kShape, kShape.BlockBytes() - 1, &ledger);
  ASSERT_FALSE(cache.ok());
  EXPECT_TRUE(cache.status().IsInvalidArgument());
  EXPECT_NE(cache.status().message().find("holds no block"), std::string::npos);
}

TEST(KvCacheTest, LedgerCapacityRefusalIsResourceExhausted) {
  MemoryLedger ledger(kShape.BlockBytes() * 2);
  Result<std::unique_ptr<KvCache>> cache =
      KvCache::Create(kShape, kShape.BlockBytes() * 3, &ledger);
  ASSERT_FALSE(cache.ok());
  EXPECT_TRUE(cache.status().IsResourceExhausted()) << cache.status();
}

TEST(KvCacheTest, ReserveTakesWholeBlocksAndRunningOutChangesNothing) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 4 * kShape.BlockBytes(), &ledger));
  const SequenceId a = cache->CreateSequence();
  const SequenceId b = cache->CreateSequence();
  EXPECT_NE(a, b);
  ASSERT_TRUE(cache->Reserve(a, 17).ok());  // 2 blocks
  EXPECT_EQ(cache->block_table(a).size(), 2u);
  EXPECT_EQ(cache->free_blocks(), 2);
  Status s = cache->Reserve(b, 48);  // 3 blocks > 2 free
  EXPECT_TRUE(s.IsResourceExhausted()) << s;
  EXPECT_NE(s.message().find("needs 3 more blocks"), std::string::npos) << s;
  EXPECT_EQ(cache->free_blocks(), 2);
  EXPECT_TRUE(cache->block_table(b).empty());
  ASSERT_TRUE(cache->Reserve(b, 32).ok());
  EXPECT_EQ(cache->free_blocks(), 0);
  // Every block is owned by exactly one sequence.
  std::set<int32_t> owned;
  for (SequenceId id : {a, b}) {
    for (int32_t block : cache->block_table(id)) EXPECT_TRUE(owned.insert(block).second);
  }
  EXPECT_EQ(owned.size(), 4u);
}

TEST(KvCacheTest, ReleaseFreesEveryBlock) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 6 * kShape.BlockBytes(), &ledger));
  std::vector<SequenceId> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(cache->CreateSequence());
    ASSERT_TRUE(cache->Reserve(ids.back(), 20 + i).ok());
    ASSERT_TRUE(cache->SetLength(ids.back(), 20 + i).ok());
  }
  EXPECT_EQ(cache->free_blocks(), 0);
  for (SequenceId id : ids) cache->Release(id);
  EXPECT_EQ(cache->free_blocks(), 6);
  EXPECT_EQ(cache->num_sequences(), 0);
  EXPECT_FALSE(cache->Contains(ids[0]));
  cache->Release(ids[0]);  // unknown ids are ignored
  EXPECT_EQ(cache->free_blocks(), 6);
}

TEST(KvCacheTest, SetLengthRewindsAndFreesTheTail) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 4 * kShape.BlockBytes(), &ledger));
  const SequenceId a = cache->CreateSequence();
  ASSERT_TRUE(cache->Reserve(a, 64).ok());
  ASSERT_TRUE(cache->SetLength(a, 64).ok());
  EXPECT_EQ(cache->length(a), 64);
  ASSERT_TRUE(cache->SetLength(a, 17).ok());
  EXPECT_EQ(cache->block_table(a).size(), 2u);
  EXPECT_EQ(cache->free_blocks(), 2);
  EXPECT_TRUE(cache->SetLength(a, 33).IsInvalidArgument());  // beyond the reserved blocks
  EXPECT_TRUE(cache->SetLength(999, 1).IsNotFound());
  EXPECT_TRUE(cache->Reserve(999, 1).IsNotFound());
}

TEST(KvCacheTest, LayerPoolsDoNotOverlap) {
  for (const KvDType dtype : {KvDType::kF32, KvDType::kF16}) {
    KvCacheShape shape = kShape;
    shape.dtype = dtype;
    MemoryLedger ledger;
    auto cache = std::move(*KvCache::Create(shape, 3 * shape.BlockBytes(), &ledger));
    const auto at = [&](const DeviceRef& r) {
      EXPECT_EQ(r.host, cache->keys(0).host);  // one buffer
      return static_cast<std::ptrdiff_t>(r.offset) -
             static_cast<std::ptrdiff_t>(cache->keys(0).offset);
    };
    const std::ptrdiff_t layer_bytes =
        3 * 16 * 12 * static_cast<std::ptrdiff_t>(shape.elem_bytes());
    EXPECT_EQ(at(cache->values(0)), layer_bytes);
    EXPECT_EQ(at(cache->keys(1)), 2 * layer_bytes);
    EXPECT_EQ(at(cache->values(1)) + layer_bytes, static_cast<std::ptrdiff_t>(cache->pool_bytes()));
    EXPECT_EQ(ledger.current(MemoryCategory::kKvCache), cache->pool_bytes());
  }
  KvCacheShape f16 = kShape;
  f16.dtype = KvDType::kF16;
  EXPECT_EQ(2 * f16.BlockBytes(), kShape.BlockBytes());
}

// ---- Prefix caching.

std::vector<int32_t> Tokens(int n, int32_t first = 1) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = first + i;
  return t;
}

// A sequence that computed `tokens` (Reserve, BeginWrite, Commit as
// LlamaModel::Forward does).
SequenceId Computed(KvCache& cache, const std::vector<int32_t>& tokens) {
  const SequenceId id = cache.CreateSequence();
  EXPECT_TRUE(cache.BeginWrite(id, 0).ok());
  EXPECT_TRUE(cache.Reserve(id, static_cast<int64_t>(tokens.size())).ok());
  EXPECT_TRUE(cache.Commit(id, 0, tokens).ok());
  return id;
}

TEST(KvCachePrefixTest, FullBlocksOfAComputedPromptAreSharedWholeAndNeverTheLastToken) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 8 * kShape.BlockBytes(), &ledger));
  cache->EnablePrefixCaching(true);
  const std::vector<int32_t> prompt = Tokens(40);  // blocks 0-15, 16-31 full; 32-39 not
  const SequenceId a = Computed(*cache, prompt);
  const std::vector<int32_t> a_blocks(cache->block_table(a).begin(), cache->block_table(a).end());
  EXPECT_EQ(cache->MatchPrefix(prompt), 32);
  EXPECT_EQ(cache->MatchPrefix(Tokens(33)), 32);
  EXPECT_EQ(cache->MatchPrefix(Tokens(32)), 16);  // the last token is always computed
  EXPECT_EQ(cache->MatchPrefix(Tokens(16)), 0);
  std::vector<int32_t> other = prompt;
  other[20] = 999;  // the second block differs
  EXPECT_EQ(cache->MatchPrefix(other), 16);
  other[3] = 999;
  EXPECT_EQ(cache->MatchPrefix(other), 0);
  // The same tokens at other positions are another prefix.
  std::vector<int32_t> shifted = {0};
  shifted.insert(shifted.end(), prompt.begin(), prompt.end());
  EXPECT_EQ(cache->MatchPrefix(shifted), 0);

  // Shared while a holds them: one copy, two references.
  const SequenceId b = cache->CreateSequence();
  Result<int64_t> got = cache->AttachPrefix(b, prompt);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 32);
  EXPECT_EQ(cache->length(b), 32);
  ASSERT_EQ(cache->block_table(b).size(), 2u);
  EXPECT_EQ(cache->block_table(b)[0], a_blocks[0]);
  EXPECT_EQ(cache->block_table(b)[1], a_blocks[1]);
  EXPECT_EQ(cache->free_blocks(), 8 - 3);
  // Neither may write into them; b continues after them.
  EXPECT_EQ(cache->BeginWrite(b, 20).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache->BeginWrite(a, 0).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(cache->BeginWrite(b, 32).ok());
  ASSERT_TRUE(cache->Reserve(b, 40).ok());
  ASSERT_TRUE(cache->Commit(b, 32, std::span(prompt).subspan(32)).ok());
  EXPECT_NE(cache->block_table(b)[2], a_blocks[2]);
  // An attach is only for an empty sequence.
  EXPECT_EQ(cache->AttachPrefix(b, prompt).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(cache->AttachPrefix(12345, prompt).status().IsNotFound());

  // Released by both: the full blocks stay cached (and count as free), the
  // partial ones are freed.
  cache->Release(a);
  EXPECT_EQ(cache->cached_blocks(), 0);  // b still holds them
  cache->Release(b);
  EXPECT_EQ(cache->cached_blocks(), 2);
  EXPECT_EQ(cache->free_blocks(), 8);
  EXPECT_EQ(cache->MatchPrefix(prompt), 32);
  const SequenceId c = cache->CreateSequence();
  ASSERT_EQ(*cache->AttachPrefix(c, prompt), 32);
  EXPECT_EQ(cache->cached_blocks(), 0);
  EXPECT_EQ(cache->free_blocks(), 6);
}

TEST(KvCachePrefixTest, CachedBlocksAreEvictedLeastRecentlyReleasedFirstWhenRoomIsNeeded) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 4 * kShape.BlockBytes(), &ledger));
  cache->EnablePrefixCaching(true);
  const std::vector<int32_t> p = Tokens(33);       // 2 full blocks
  const std::vector<int32_t> q = Tokens(17, 100);  // 1 full block
  cache->Release(Computed(*cache, p));
  cache->Release(Computed(*cache, q));
  EXPECT_EQ(cache->cached_blocks(), 3);
  EXPECT_EQ(cache->free_blocks(), 4);
  // Two blocks: the never-used one, then p's last block (released first,
  // last block first).
  const SequenceId d = cache->CreateSequence();
  ASSERT_TRUE(cache->Reserve(d, 32).ok());
  EXPECT_EQ(cache->cached_blocks(), 2);
  EXPECT_EQ(cache->MatchPrefix(p), 16);
  EXPECT_EQ(cache->MatchPrefix(q), 16);
  // The rest go too, and then nothing is cached.
  ASSERT_TRUE(cache->Reserve(d, 64).ok());
  EXPECT_EQ(cache->cached_blocks(), 0);
  EXPECT_EQ(cache->MatchPrefix(p), 0);
  EXPECT_EQ(cache->MatchPrefix(q), 0);
  EXPECT_TRUE(cache->Reserve(cache->CreateSequence(), 1).IsResourceExhausted());
}

TEST(KvCachePrefixTest, ABlockItsOwnerRewritesLeavesTheIndexAndDecodedTokensAreIndexed) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 8 * kShape.BlockBytes(), &ledger));
  cache->EnablePrefixCaching(true);
  const std::vector<int32_t> prompt = Tokens(40);
  const SequenceId a = Computed(*cache, prompt);
  // Rewinding into block 1 (its only owner): it leaves the index.
  ASSERT_TRUE(cache->BeginWrite(a, 20).ok());
  EXPECT_EQ(cache->MatchPrefix(prompt), 16);
  // Rewritten with other tokens, it is indexed under those.
  std::vector<int32_t> changed = prompt;
  for (size_t i = 20; i < changed.size(); ++i) changed[i] = 500 + static_cast<int32_t>(i);
  ASSERT_TRUE(cache->Commit(a, 20, std::span(changed).subspan(20)).ok());
  EXPECT_EQ(cache->MatchPrefix(prompt), 16);
  EXPECT_EQ(cache->MatchPrefix(changed), 32);
  // Decode steps, one token each, fill block 2 and index it.
  std::vector<int32_t> all = changed;
  for (int32_t t = 0; t < 9; ++t) {
    const int64_t pos = static_cast<int64_t>(all.size());
    all.push_back(700 + t);
    ASSERT_TRUE(cache->BeginWrite(a, pos).ok());
    ASSERT_TRUE(cache->Reserve(a, pos + 1).ok());
    ASSERT_TRUE(cache->Commit(a, pos, std::span(all).subspan(static_cast<size_t>(pos))).ok());
  }
  EXPECT_EQ(cache->length(a), 49);
  EXPECT_EQ(cache->MatchPrefix(all), 48);
}

TEST(KvCachePrefixTest, OffByDefaultNothingIsMatchedAndReleaseFreesEverything) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 4 * kShape.BlockBytes(), &ledger));
  EXPECT_FALSE(cache->prefix_caching());
  const std::vector<int32_t> prompt = Tokens(40);
  cache->Release(Computed(*cache, prompt));
  EXPECT_EQ(cache->MatchPrefix(prompt), 0);
  EXPECT_EQ(cache->cached_blocks(), 0);
  EXPECT_EQ(cache->free_blocks(), 4);
  const SequenceId b = cache->CreateSequence();
  EXPECT_EQ(*cache->AttachPrefix(b, prompt), 0);
  EXPECT_EQ(cache->length(b), 0);
}

// Random work over a small pool: every block is held (by one or more
// sequences), cached or free, never lost or counted twice; a sequence's
// table always covers its length; matches never pass a prompt's last token.
TEST(KvCachePrefixTest, RandomWorkKeepsEveryBlockAccountedFor) {
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(kShape, 12 * kShape.BlockBytes(), &ledger));
  cache->EnablePrefixCaching(true);
  std::mt19937 rng(7);
  // Prompts from a few shared starts, so that prefixes repeat.
  auto prompt = [&] {
    std::vector<int32_t> t = Tokens(16 * static_cast<int>(rng() % 3), 1000 * (rng() % 2));
    const int extra = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < extra; ++i) t.push_back(static_cast<int32_t>(rng() % 4));
    return t;
  };
  std::vector<SequenceId> live;
  int shared = 0;
  int rewound = 0;
  int refused = 0;
  for (int step = 0; step < 3000; ++step) {
    const int op = static_cast<int>(rng() % 4);
    if (op <= 1 || live.empty()) {
      const std::vector<int32_t> p = prompt();
      const SequenceId id = cache->CreateSequence();
      const int64_t matched = cache->MatchPrefix(p);
      ASSERT_LT(matched, static_cast<int64_t>(p.size()));
      ASSERT_EQ(*cache->AttachPrefix(id, p), matched);
      shared += matched > 0 ? 1 : 0;
      ASSERT_TRUE(cache->BeginWrite(id, matched).ok());
      if (cache->Reserve(id, static_cast<int64_t>(p.size())).ok()) {
        ASSERT_TRUE(cache->Commit(id, matched, std::span(p).subspan(matched)).ok());
        live.push_back(id);
      } else {
        cache->Release(id);
      }
    } else if (op == 2) {
      const size_t i = rng() % live.size();
      cache->Release(live[i]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      // A decode step, or a rewind where the block is not shared.
      const SequenceId id = live[rng() % live.size()];
      const int64_t len = cache->length(id);
      const int64_t start = rng() % 4 == 0 ? len - 1 - static_cast<int64_t>(rng() % 8) : len;
      if (start < 0) continue;
      if (!cache->BeginWrite(id, start).ok()) {
        ++refused;
        continue;
      }
      rewound += start < len ? 1 : 0;
      if (!cache->Reserve(id, start + 1).ok()) continue;
      const int32_t token = static_cast<int32_t>(rng() % 4);
      ASSERT_TRUE(cache->Commit(id, start, std::span(&token, 1)).ok());
    }
    std::map<int32_t, int> holders;
    for (SequenceId id : live) {
      ASSERT_GE(static_cast<int64_t>(cache->block_table(id).size()) * 16, cache->length(id));
      for (int32_t b : cache->block_table(id)) ++holders[b];
    }
    ASSERT_EQ(static_cast<int64_t>(holders.size()) + cache->free_blocks(), cache->total_blocks())
        << "step " << step;
    ASSERT_LE(cache->cached_blocks(), cache->free_blocks());
  }
  for (SequenceId id : live) cache->Release(id);
  EXPECT_EQ(cache->free_blocks(), cache->total_blocks());
  // The walk did meet sharing, rewinds and refused writes into shared blocks.
  EXPECT_GT(shared, 100);
  EXPECT_GT(rewound, 20);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace relayout
