#include "engine/memory/host_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace relayout {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

bool IsAligned(const void* p, uint64_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(HostBufferTest, RegistersItsBytesUntilDestroyed) {
  MemoryLedger ledger;
  {
    Result<HostBuffer> buffer = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, 1000);
    ASSERT_TRUE(buffer.ok()) << buffer.status();
    EXPECT_EQ(buffer->size(), 1000u);
    EXPECT_EQ(buffer->category(), MemoryCategory::kScratch);
    EXPECT_EQ(buffer->alignment(), HostBuffer::kSmallAlignment);
    EXPECT_TRUE(IsAligned(buffer->data(), 64));
    std::memset(buffer->data(), 0xab, buffer->size());
    EXPECT_EQ(ledger.current(MemoryCategory::kScratch), 1000u);
  }
  EXPECT_EQ(ledger.current(MemoryCategory::kScratch), 0u);
  EXPECT_EQ(ledger.peak(MemoryCategory::kScratch), 1000u);
}

TEST(HostBufferTest, LargeBuffersAreMappedWithTwoMiBAlignment) {
  MemoryLedger ledger;
  const uint64_t bytes = 5 * kMiB + 123;
  Result<HostBuffer> buffer = HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, bytes);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  EXPECT_EQ(buffer->alignment(), HostBuffer::kLargeAlignment);
  EXPECT_TRUE(IsAligned(buffer->data(), 2 * kMiB));
  // Every byte, the unaligned tail included, is writable.
  std::memset(buffer->data(), 0x5a, bytes);
  EXPECT_EQ(buffer->span().back(), std::byte{0x5a});
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), bytes);
  buffer->Reset();
  EXPECT_TRUE(buffer->empty());
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), 0u);
  buffer->Reset();  // idempotent
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), 0u);
}

TEST(HostBufferTest, MovingCarriesTheReservationAndAssignmentReleasesTheOldOne) {
  MemoryLedger ledger;
  Result<HostBuffer> a = HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, 300);
  Result<HostBuffer> b = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, 4 * kMiB);
  ASSERT_TRUE(a.ok() && b.ok());
  std::byte* const a_data = a->data();

  HostBuffer moved(std::move(*a));
  EXPECT_TRUE(a->empty());
  EXPECT_EQ(a->data(), nullptr);
  EXPECT_EQ(moved.data(), a_data);
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), 300u);

  moved = std::move(*b);  // the 300 weight bytes are freed here
  EXPECT_EQ(ledger.current(MemoryCategory::kWeights), 0u);
  EXPECT_EQ(ledger.current(MemoryCategory::kScratch), 4 * kMiB);
  EXPECT_EQ(moved.size(), 4 * kMiB);
  EXPECT_EQ(moved.category(), MemoryCategory::kScratch);

  { HostBuffer sink(std::move(moved)); }
  EXPECT_EQ(ledger.total_current(), 0u);
  EXPECT_EQ(ledger.total_peak(), 300u + 4 * kMiB);
}

TEST(HostBufferTest, CapacityRefusalAllocatesNothing) {
  MemoryLedger ledger(1 * kMiB);
  Result<HostBuffer> buffer = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, 8 * kMiB);
  ASSERT_FALSE(buffer.ok());
  EXPECT_TRUE(buffer.status().IsResourceExhausted());
  EXPECT_NE(buffer.status().message().find("over the capacity of 1048576"), std::string::npos)
      << buffer.status();
  EXPECT_EQ(ledger.total_current(), 0u);
  EXPECT_EQ(ledger.total_peak(), 0u);
}

TEST(HostBufferTest, OperatingSystemRefusalGivesTheReservationBack) {
  MemoryLedger ledger;
  // Larger than any user address space.
  Result<HostBuffer> buffer =
      HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, uint64_t{1} << 62);
  ASSERT_FALSE(buffer.ok());
  EXPECT_TRUE(buffer.status().IsResourceExhausted());
  EXPECT_NE(buffer.status().message().find("host buffer: cannot allocate 4611686018427387904"),
            std::string::npos)
      << buffer.status();
  EXPECT_EQ(ledger.total_current(), 0u);

  Result<HostBuffer> absurd = HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, UINT64_MAX);
  ASSERT_FALSE(absurd.ok());
  EXPECT_TRUE(absurd.status().IsResourceExhausted());
  EXPECT_EQ(ledger.total_current(), 0u);
}

TEST(HostBufferTest, ZeroBytesIsAnEmptyBuffer) {
  MemoryLedger ledger;
  Result<HostBuffer> buffer = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, 0);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  EXPECT_TRUE(buffer->empty());
  EXPECT_EQ(buffer->data(), nullptr);
  EXPECT_EQ(buffer->alignment(), 0u);
  EXPECT_EQ(ledger.total_peak(), 0u);
}

TEST(HostBufferTest, NullLedgerIsInvalidArgument) {
  Result<HostBuffer> buffer = HostBuffer::Allocate(nullptr, MemoryCategory::kScratch, 10);
  ASSERT_FALSE(buffer.ok());
  EXPECT_TRUE(buffer.status().IsInvalidArgument());
  EXPECT_EQ(buffer.status().message(), "host buffer: null memory ledger");
}

}  // namespace
}  // namespace relayout
