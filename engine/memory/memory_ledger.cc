#include "engine/memory/memory_ledger.h"

#include <algorithm>
#include <cassert>
#include <cstddef>

namespace relayout {
namespace {

size_t IndexOf(MemoryCategory category) { return static_cast<size_t>(category); }

}  // namespace

std::string_view MemoryCategoryName(MemoryCategory category) {
  switch (category) {
    case MemoryCategory::kWeights:
      return "weights";
    case MemoryCategory::kScratch:
      return "scratch";
    case MemoryCategory::kKvCache:
      return "kv_cache";
    case MemoryCategory::kActivations:
      return "activations";
    case MemoryCategory::kWorkspace:
      return "workspace";
    case MemoryCategory::kStaging:
      return "staging";
  }
  return "unknown";
}

MemoryLedger::MemoryLedger(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

Status MemoryLedger::Reserve(MemoryCategory category, uint64_t bytes) {
  const size_t i = IndexOf(category);
  if (i >= kNumMemoryCategories) {
    return Status::InvalidArgument("memory ledger", "unknown memory category");
  }
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t new_total = 0;
  if (__builtin_add_overflow(total_current_, bytes, &new_total) || new_total > capacity_) {
    ++refused_;
    return Status::ResourceExhausted(
        "memory ledger",
        StrCat("reserving ", bytes, " bytes of ", MemoryCategoryName(category), " would hold ",
               new_total < total_current_ ? std::string("more than 2^64") : StrCat(new_total),
               " bytes, over the capacity of ", capacity_));
  }
  total_current_ = new_total;
  current_[i] += bytes;  // <= total, so no overflow
  peak_[i] = std::max(peak_[i], current_[i]);
  total_peak_ = std::max(total_peak_, total_current_);
  return Status::OK();
}

void MemoryLedger::Release(MemoryCategory category, uint64_t bytes) {
  const size_t i = IndexOf(category);
  if (i >= kNumMemoryCategories) return;
  std::lock_guard<std::mutex> lock(mu_);
  assert(bytes <= current_[i] && "releasing more than was reserved");
  bytes = std::min(bytes, current_[i]);
  current_[i] -= bytes;
  total_current_ -= bytes;
}

uint64_t MemoryLedger::current(MemoryCategory category) const {
  const size_t i = IndexOf(category);
  if (i >= kNumMemoryCategories) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  return current_[i];
}

uint64_t MemoryLedger::peak(MemoryCategory category) const {
  const size_t i = IndexOf(category);
  if (i >= kNumMemoryCategories) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  return peak_[i];
}

uint64_t MemoryLedger::total_current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_current_;
}

uint64_t MemoryLedger::total_peak() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_peak_;
}

MemoryLedgerSnapshot MemoryLedger::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  MemoryLedgerSnapshot snapshot;
  snapshot.current_bytes = current_;
  snapshot.peak_bytes = peak_;
  snapshot.total_current_bytes = total_current_;
  snapshot.total_peak_bytes = total_peak_;
  snapshot.capacity_bytes = capacity_;
  snapshot.refused_reservations = refused_;
  return snapshot;
}

void MemoryLedger::ResetPeaks() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = current_;
  total_peak_ = total_current_;
}

}  // namespace relayout
