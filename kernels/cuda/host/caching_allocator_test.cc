#include "kernels/cuda/host/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <thread>
#include <vector>

namespace relayout::cuda {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Host memory with a capacity, counting its calls; never touches the bytes.
class FakeBackend : public AllocatorBackend {
 public:
  explicit FakeBackend(uint64_t capacity) : capacity_(capacity) {}
  ~FakeBackend() override { EXPECT_TRUE(live_.empty()) << live_.size() << " blocks leaked"; }

  void* Alloc(uint64_t bytes) override {
    ++allocs;
    if (bytes > capacity_ - held) {
      ++refusals;
      return nullptr;
    }
    held += bytes;
    // The address is only a token; distinct for each live block.
    void* p = reinterpret_cast<void*>(next_);
    next_ += bytes + 4096;
    live_.emplace(p, bytes);
    return p;
  }
  void Free(void* ptr) override {
    ++frees;
    const auto it = live_.find(ptr);
    ASSERT_NE(it, live_.end()) << "free of an unknown block";
    held -= it->second;
    live_.erase(it);
  }

  uint64_t held = 0;
  int allocs = 0;
  int frees = 0;
  int refusals = 0;

 private:
  uint64_t capacity_;
  uintptr_t next_ = 0x10000;
  std::map<void*, uint64_t> live_;
};

TEST(CachingAllocatorTest, RoundsSmallTo512AndLargeTo2MiB) {
  EXPECT_EQ(CachingAllocator::RoundSize(0), 0u);
  EXPECT_EQ(CachingAllocator::RoundSize(1), 512u);
  EXPECT_EQ(CachingAllocator::RoundSize(512), 512u);
  EXPECT_EQ(CachingAllocator::RoundSize(513), 1024u);
  EXPECT_EQ(CachingAllocator::RoundSize(kMiB), kMiB);  // the largest small size
  EXPECT_EQ(CachingAllocator::RoundSize(kMiB + 1), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::RoundSize(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::RoundSize(2 * kMiB + 1), 4 * kMiB);
  EXPECT_EQ(CachingAllocator::RoundSize(CachingAllocator::kMaxRequest) % (2 * kMiB), 0u);
  EXPECT_EQ(CachingAllocator::RoundSize(CachingAllocator::kMaxRequest + 1), UINT64_MAX);
  EXPECT_EQ(CachingAllocator::RoundSize(UINT64_MAX), UINT64_MAX);
}

TEST(CachingAllocatorTest, AllocatesTheRoundedSizeAndCountsIt) {
  FakeBackend backend(64 * kMiB);
  CachingAllocator a(&backend);
  uint64_t rounded = 0;
  void* p = a.Allocate(1000, &rounded);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(rounded, 1024u);
  EXPECT_EQ(backend.held, 1024u);
  EXPECT_EQ(a.SizeOf(p), 1024u);
  void* q = a.Allocate(3 * kMiB);
  ASSERT_NE(q, nullptr);
  AllocatorStats s = a.Stats();
  EXPECT_EQ(s.in_use, 1024u + 4 * kMiB);
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(s.backend_bytes, s.in_use);
  EXPECT_EQ(s.peak_in_use, s.in_use);
  EXPECT_EQ(s.backend_allocs, 2u);
  EXPECT_TRUE(a.Deallocate(p));
  EXPECT_TRUE(a.Deallocate(q));
  s = a.Stats();
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_EQ(s.cached, 1024u + 4 * kMiB);
  EXPECT_EQ(s.backend_bytes, s.cached);
  EXPECT_EQ(s.peak_in_use, 1024u + 4 * kMiB);
  EXPECT_EQ(backend.frees, 0);  // kept
}

TEST(CachingAllocatorTest, ZeroAndHugeRequestsGiveNull) {
  FakeBackend backend(kMiB);
  CachingAllocator a(&backend);
  uint64_t rounded = 7;
  EXPECT_EQ(a.Allocate(0, &rounded), nullptr);
  EXPECT_EQ(rounded, 0u);
  EXPECT_EQ(a.Allocate(UINT64_MAX, &rounded), nullptr);
  EXPECT_EQ(rounded, UINT64_MAX);
  EXPECT_EQ(backend.allocs, 0);
}

TEST(CachingAllocatorTest, ReusesAFreedBlockOfTheSameRoundedSize) {
  FakeBackend backend(64 * kMiB);
  CachingAllocator a(&backend);
  void* p = a.Allocate(5 * kMiB);  // 6 MiB
  ASSERT_TRUE(a.Deallocate(p));
  void* q = a.Allocate(5 * kMiB + 100);  // also 6 MiB
  EXPECT_EQ(q, p);
  EXPECT_EQ(backend.allocs, 1);
  EXPECT_EQ(a.Stats().cache_hits, 1u);
  // Another rounded size does not take it.
  ASSERT_TRUE(a.Deallocate(q));
  void* r = a.Allocate(7 * kMiB);  // 8 MiB
  EXPECT_NE(r, p);
  EXPECT_EQ(backend.allocs, 2);
  ASSERT_TRUE(a.Deallocate(r));
  // Small sizes too, per 512-byte class.
  void* s1 = a.Allocate(100);
  void* s2 = a.Allocate(600);
  ASSERT_TRUE(a.Deallocate(s1));
  EXPECT_EQ(a.Allocate(512), s1);
  EXPECT_NE(a.Allocate(512), s1);  // the one cached block is taken
  ASSERT_TRUE(a.Deallocate(s2));
  EXPECT_EQ(a.Allocate(1024), s2);
}

TEST(CachingAllocatorTest, ReleasesTheCacheAndRetriesOnceWhenTheBackendRefuses) {
  FakeBackend backend(10 * kMiB);
  CachingAllocator a(&backend);
  void* p = a.Allocate(4 * kMiB);
  void* q = a.Allocate(4 * kMiB);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(a.Deallocate(p));
  ASSERT_TRUE(a.Deallocate(q));
  EXPECT_EQ(backend.held, 8 * kMiB);
  // 6 MiB is not cached and does not fit beside the cache: the cache goes.
  void* r = a.Allocate(6 * kMiB);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(backend.refusals, 1);
  EXPECT_EQ(backend.frees, 2);
  const AllocatorStats s = a.Stats();
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(s.in_use, 6 * kMiB);
  EXPECT_EQ(s.backend_bytes, 6 * kMiB);
  EXPECT_EQ(s.cache_releases, 1u);
  ASSERT_TRUE(a.Deallocate(r));
}

TEST(CachingAllocatorTest, FailsWhenTheMemoryIsNotThereEvenWithoutTheCache) {
  FakeBackend backend(10 * kMiB);
  CachingAllocator a(&backend);
  void* live = a.Allocate(6 * kMiB);
  void* cached = a.Allocate(2 * kMiB);
  ASSERT_TRUE(a.Deallocate(cached));
  EXPECT_EQ(a.Allocate(8 * kMiB), nullptr);
  EXPECT_EQ(backend.refusals, 2);  // once, then after the release
  EXPECT_EQ(a.Stats().in_use, 6 * kMiB);
  EXPECT_EQ(a.Stats().cached, 0u);
  // Without a cache there is no second attempt.
  EXPECT_EQ(a.Allocate(8 * kMiB), nullptr);
  EXPECT_EQ(backend.refusals, 3);
  ASSERT_TRUE(a.Deallocate(live));
}

TEST(CachingAllocatorTest, RefusesToFreeWhatItDidNotGive) {
  FakeBackend backend(kMiB);
  CachingAllocator a(&backend);
  int x = 0;
  EXPECT_FALSE(a.Deallocate(&x));
  EXPECT_TRUE(a.Deallocate(nullptr));
  void* p = a.Allocate(10);
  ASSERT_TRUE(a.Deallocate(p));
  EXPECT_FALSE(a.Deallocate(p));  // twice
  EXPECT_EQ(a.Stats().cached, 512u);
  EXPECT_EQ(a.SizeOf(p), 0u);
}

TEST(CachingAllocatorTest, ReleaseCacheReturnsOnlyCachedBlocks) {
  FakeBackend backend(64 * kMiB);
  CachingAllocator a(&backend);
  void* p = a.Allocate(3 * kMiB);
  void* q = a.Allocate(100);
  ASSERT_TRUE(a.Deallocate(q));
  a.ReleaseCache();
  EXPECT_EQ(backend.held, 4 * kMiB);
  EXPECT_EQ(a.Stats().backend_bytes, 4 * kMiB);
  EXPECT_EQ(a.Stats().cached, 0u);
  ASSERT_TRUE(a.Deallocate(p));
}

TEST(CachingAllocatorTest, DestructorReturnsEverything) {
  FakeBackend backend(64 * kMiB);
  {
    CachingAllocator a(&backend);
    ASSERT_NE(a.Allocate(3 * kMiB), nullptr);  // still live
    void* q = a.Allocate(100);
    ASSERT_TRUE(a.Deallocate(q));
  }
  EXPECT_EQ(backend.held, 0u);  // and ~FakeBackend checks nothing leaked
}

TEST(CachingAllocatorTest, ConcurrentAllocateAndFreeKeepTheBooks) {
  FakeBackend backend(uint64_t{1} << 40);
  CachingAllocator a(&backend);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&a, t] {
      std::vector<void*> mine;
      for (int i = 0; i < 2000; ++i) {
        const uint64_t bytes = ((i * 7 + t) % 9 + 1) * (i % 3 == 0 ? kMiB : 300);
        void* p = a.Allocate(bytes);
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(a.SizeOf(p), CachingAllocator::RoundSize(bytes));
        mine.push_back(p);
        if (i % 2 == 1) {
          ASSERT_TRUE(a.Deallocate(mine.front()));
          mine.erase(mine.begin());
        }
      }
      for (void* p : mine) ASSERT_TRUE(a.Deallocate(p));
    });
  }
  for (std::thread& th : threads) th.join();
  const AllocatorStats s = a.Stats();
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_EQ(s.backend_bytes, s.cached);
  EXPECT_EQ(backend.held, s.backend_bytes);
  EXPECT_GT(s.cache_hits, 0u);
}

}  // namespace
}  // namespace relayout::cuda
