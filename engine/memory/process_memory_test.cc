#include "engine/memory/process_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "engine/memory/host_buffer.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

constexpr char kStatusText[] =
    "Name:\trelayoutd\n"
    "VmPeak:\t  900000 kB\n"
    "VmHWMx:\t       1 kB\n"
    "VmHWM:\t   12345 kB\n"
    "VmRSS:\t    2048 kB\n"
    "Threads:\t4\n"
    "VmBad:\t12 MB\n"
    "VmHuge:\t99999999999999999999 kB\n";

TEST(ProcessMemoryTest, ParsesKilobyteFieldsIntoBytes) {
  Result<uint64_t> hwm = ParseProcStatusBytes(kStatusText, "VmHWM");
  ASSERT_TRUE(hwm.ok()) << hwm.status();
  EXPECT_EQ(*hwm, 12345u * 1024);
  Result<uint64_t> rss = ParseProcStatusBytes(kStatusText, "VmRSS");
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_EQ(*rss, 2048u * 1024);
}

TEST(ProcessMemoryTest, MissingFieldIsNotFound) {
  Result<uint64_t> missing = ParseProcStatusBytes(kStatusText, "VmSwap");
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_EQ(missing.status().message(), "VmSwap: not in the status file");
  EXPECT_TRUE(ParseProcStatusBytes("", "VmHWM").status().IsNotFound());
  EXPECT_TRUE(ParseProcStatusBytes("VmHW: 1 kB\n", "VmHWM").status().IsNotFound());
}

TEST(ProcessMemoryTest, MalformedValuesAreDataLoss) {
  Result<uint64_t> bad = ParseProcStatusBytes(kStatusText, "VmBad");
  EXPECT_TRUE(bad.status().IsDataLoss());
  EXPECT_EQ(bad.status().message(), "VmBad: expected '<digits> kB', got '12 MB'");
  Result<uint64_t> huge = ParseProcStatusBytes(kStatusText, "VmHuge");
  EXPECT_TRUE(huge.status().IsDataLoss());
  EXPECT_EQ(huge.status().message(), "VmHuge: value overflows 64 bits");
  EXPECT_TRUE(ParseProcStatusBytes("Threads:\t4\n", "Threads").status().IsDataLoss());
}

TEST(ProcessMemoryTest, ResidentAndPeakAreReadableAndFollowTouchedPages) {
  Result<uint64_t> before = ReadResidentBytes();
  if (!before.ok()) GTEST_SKIP() << before.status() << " (allowed skip)";
  ASSERT_GT(*before, 0u);
  Result<uint64_t> hwm = ReadPeakResidentBytes();
  ASSERT_TRUE(hwm.ok()) << hwm.status();
  EXPECT_GE(*hwm, *before);

  MemoryLedger ledger;
  Result<HostBuffer> buffer = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, 64 * kMiB);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  const uint64_t untouched = *ReadResidentBytes();
  std::memset(buffer->data(), 1, buffer->size());
  const uint64_t touched = *ReadResidentBytes();
  // Allocating alone does not make pages resident; writing does.
  EXPECT_LT(untouched, *before + 8 * kMiB);
  EXPECT_GE(touched, untouched + 56 * kMiB);
  EXPECT_GE(*ReadPeakResidentBytes(), touched);

  buffer->Reset();
  const uint64_t released = *ReadResidentBytes();
  EXPECT_LE(released + 56 * kMiB, touched);  // unmapped at once, not cached by malloc

  const Status reset = ResetPeakResident();
  if (!reset.ok()) {
    EXPECT_TRUE(reset.code() == StatusCode::kPermissionDenied ||
                reset.code() == StatusCode::kUnavailable)
        << reset;
    EXPECT_NE(reset.message().find("/proc/self/clear_refs"), std::string::npos) << reset;
    GTEST_SKIP() << "cannot reset VmHWM here: " << reset << " (allowed skip)";
  }
  // The 64 MiB peak is forgotten: the new peak is about the current RSS.
  EXPECT_LT(*ReadPeakResidentBytes() + 32 * kMiB, touched);
}

}  // namespace
}  // namespace relayout
