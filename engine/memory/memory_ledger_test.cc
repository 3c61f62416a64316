#include "engine/memory/memory_ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace relayout {
namespace {

TEST(MemoryLedgerTest, CategoryNamesAreStableLabels) {
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kWeights), "weights");
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kScratch), "scratch");
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kKvCache), "kv_cache");
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kActivations), "activations");
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kWorkspace), "workspace");
  EXPECT_EQ(MemoryCategoryName(MemoryCategory::kStaging), "staging");
}

TEST(MemoryLedgerTest, ReserveAndReleaseTrackCurrentAndPeak) {
  MemoryLedger ledger;
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kWeights, 100).ok());
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kScratch, 40).ok());
  ledger.Release(MemoryCategory::kScratch, 40);
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kWeights, 10).ok());
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), 110u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kWeights), 110u);
  EXPECT_EQ(ledger.current(MemoryCategory::kScratch), 0u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kScratch), 40u);
  EXPECT_EQ(ledger.total_current(), 110u);
  EXPECT_EQ(ledger.total_peak(), 140u);
}

TEST(MemoryLedgerTest, TotalPeakIsExactNotTheSumOfCategoryPeaks) {
  MemoryLedger ledger;
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kScratch, 100).ok());
  ledger.Release(MemoryCategory::kScratch, 100);
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kKvCache, 60).ok());
  const MemoryLedgerSnapshot snapshot = ledger.Snapshot();
  EXPECT_EQ(snapshot.peak_bytes[static_cast<int>(MemoryCategory::kScratch)], 100u);
  EXPECT_EQ(snapshot.peak_bytes[static_cast<int>(MemoryCategory::kKvCache)], 60u);
  EXPECT_EQ(snapshot.total_peak_bytes, 100u);
  EXPECT_EQ(snapshot.total_current_bytes, 60u);
}

TEST(MemoryLedgerTest, ReservationOverCapacityIsRefusedAndChangesNothing) {
  MemoryLedger ledger(1000);
  EXPECT_EQ(ledger.capacity(), 1000u);
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kWeights, 900).ok());
  const Status refused = ledger.Reserve(MemoryCategory::kScratch, 101);
  EXPECT_TRUE(refused.IsResourceExhausted());
  EXPECT_EQ(refused.message(),
            "memory ledger: reserving 101 bytes of scratch would hold 1001 bytes, over the "
            "capacity of 1000");
  EXPECT_EQ(ledger.total_current(), 900u);
  EXPECT_EQ(ledger.total_peak(), 900u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kScratch), 0u);
  EXPECT_EQ(ledger.Snapshot().refused_reservations, 1u);
  EXPECT_TRUE(ledger.Reserve(MemoryCategory::kScratch, 100).ok());  // exactly full
  EXPECT_EQ(ledger.total_current(), 1000u);
}

TEST(MemoryLedgerTest, ReservationThatWouldWrapIsRefused) {
  MemoryLedger ledger;
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kWeights, UINT64_MAX - 1).ok());
  const Status refused = ledger.Reserve(MemoryCategory::kWeights, 2);
  EXPECT_TRUE(refused.IsResourceExhausted());
  EXPECT_NE(refused.message().find("more than 2^64"), std::string::npos) << refused;
  EXPECT_EQ(ledger.total_current(), UINT64_MAX - 1);
}

TEST(MemoryLedgerTest, ResetPeaksStartsANewPhaseAtTheCurrentValues) {
  MemoryLedger ledger;
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kWeights, 500).ok());
  ASSERT_TRUE(ledger.Reserve(MemoryCategory::kScratch, 300).ok());
  ledger.Release(MemoryCategory::kScratch, 300);
  ledger.ResetPeaks();
  EXPECT_EQ(ledger.total_peak(), 500u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kScratch), 0u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kWeights), 500u);
}

// Every thread churns scratch reservations of at most `churn_max` bytes, then
// all threads hold a larger reservation at the same moment (a barrier), then
// release everything. The exact total peak is the sum of the held
// reservations, because no churn phase can reach it.
TEST(MemoryLedgerTest, PeaksAreExactUnderConcurrentReserveAndRelease) {
  constexpr int kThreads = 8;
  constexpr uint64_t kChurnMax = 1000;
  MemoryLedger ledger;
  std::barrier sync(kThreads);
  std::vector<uint64_t> held(kThreads);
  for (int t = 0; t < kThreads; ++t) held[t] = kChurnMax * kThreads + 1 + 17 * t;
  std::atomic<bool> inconsistent{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::uniform_int_distribution<uint64_t> amount(1, kChurnMax);
      for (int i = 0; i < 20000; ++i) {
        const uint64_t bytes = amount(rng);
        const MemoryCategory category =
            (i % 2 == 0) ? MemoryCategory::kScratch : MemoryCategory::kActivations;
        if (!ledger.Reserve(category, bytes).ok()) inconsistent = true;
        if (i % 997 == 0) {
          const MemoryLedgerSnapshot s = ledger.Snapshot();
          const uint64_t sum =
              std::accumulate(s.current_bytes.begin(), s.current_bytes.end(), uint64_t{0});
          if (sum != s.total_current_bytes || s.total_peak_bytes < s.total_current_bytes ||
              s.total_current_bytes > kChurnMax * kThreads) {
            inconsistent = true;
          }
        }
        ledger.Release(category, bytes);
      }
      sync.arrive_and_wait();
      if (!ledger.Reserve(MemoryCategory::kWeights, held[t]).ok()) inconsistent = true;
      sync.arrive_and_wait();
      ledger.Release(MemoryCategory::kWeights, held[t]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_FALSE(inconsistent);
  const uint64_t held_sum = std::accumulate(held.begin(), held.end(), uint64_t{0});
  EXPECT_EQ(ledger.total_peak(), held_sum);
  EXPECT_EQ(ledger.peak(MemoryCategory::kWeights), held_sum);
  EXPECT_LE(ledger.peak(MemoryCategory::kScratch), kChurnMax * kThreads);
  EXPECT_GE(ledger.peak(MemoryCategory::kScratch), 1u);
  EXPECT_EQ(ledger.total_current(), 0u);
  for (int c = 0; c < kNumMemoryCategories; ++c) {
    EXPECT_EQ(ledger.current(static_cast<MemoryCategory>(c)), 0u);
  }
}

}  // namespace
}  // namespace relayout
