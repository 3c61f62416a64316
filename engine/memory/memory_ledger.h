// MemoryLedger: the allocator-side account of the bytes relayoutd holds, by
// category, with current and peak values. It is the measured side of the
// planner's prediction (docs/PLANNER.md): buffers register here before they
// allocate, so a capacity refusal happens before any memory is touched.
//
// The total's peak is tracked on every change, so it is the exact maximum of
// the sum over categories at any moment, not the sum of per-category peaks.
//
// Thread safety: all methods may be called concurrently; each change and each
// read is atomic with respect to the others (one mutex; changes happen per
// buffer, not per element, so it is never hot).
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string_view>

#include "engine/base/status.h"

namespace relayout {

enum class MemoryCategory : uint8_t {
  kWeights,  // final tensor buffers
  kScratch,  // transient conversion buffers
  kKvCache,
  kActivations,
  kWorkspace,  // kernel workspaces
  kStaging,    // host buffers a tensor passes through on its way to a device
};

inline constexpr int kNumMemoryCategories = 6;

// "weights", "scratch", "kv_cache", "activations", "workspace", "staging";
// "unknown"
// outside the enum. Stable: used as a metrics label.
std::string_view MemoryCategoryName(MemoryCategory category);

// A consistent copy of the ledger's counters, taken under one lock.
struct MemoryLedgerSnapshot {
  std::array<uint64_t, kNumMemoryCategories> current_bytes{};  // indexed by category
  std::array<uint64_t, kNumMemoryCategories> peak_bytes{};
  uint64_t total_current_bytes = 0;
  uint64_t total_peak_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t refused_reservations = 0;  // Reserve calls that returned ResourceExhausted
};

class MemoryLedger {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  // A ledger whose total may not exceed `capacity_bytes`.
  explicit MemoryLedger(uint64_t capacity_bytes = kUnlimited);

  MemoryLedger(const MemoryLedger&) = delete;
  MemoryLedger& operator=(const MemoryLedger&) = delete;

  // Adds `bytes` to `category`. Returns ResourceExhausted "memory ledger:
  // reserving <n> bytes of <category> would hold <t> bytes, over the capacity
  // of <c>" (and changes nothing) when the total would exceed the capacity.
  Status Reserve(MemoryCategory category, uint64_t bytes);

  // Gives back `bytes` of `category`. REQUIRES: bytes <= current(category);
  // a larger release is clamped to the current value (and asserts in debug
  // builds), so a bookkeeping bug never wraps the counters.
  void Release(MemoryCategory category, uint64_t bytes);

  uint64_t current(MemoryCategory category) const;
  uint64_t peak(MemoryCategory category) const;
  uint64_t total_current() const;
  uint64_t total_peak() const;
  uint64_t capacity() const { return capacity_; }
  MemoryLedgerSnapshot Snapshot() const;

  // Sets every peak to its current value, to measure the next phase alone.
  void ResetPeaks();

 private:
  const uint64_t capacity_;
  mutable std::mutex mu_;
  std::array<uint64_t, kNumMemoryCategories> current_{};  // guarded by mu_
  std::array<uint64_t, kNumMemoryCategories> peak_{};     // guarded by mu_
  uint64_t total_current_ = 0;                            // guarded by mu_
  uint64_t total_peak_ = 0;                               // guarded by mu_
  uint64_t refused_ = 0;                                  // guarded by mu_
};

}  // namespace relayout
