#include "engine/model/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

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

}  // namespace
}  // namespace relayout
