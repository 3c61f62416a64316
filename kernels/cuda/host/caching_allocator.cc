#include "kernels/cuda/host/caching_allocator.h"

#include <algorithm>

namespace relayout::cuda {

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseCacheLocked();
  for (const auto& [ptr, bytes] : live_) backend_->Free(const_cast<void*>(ptr));
  live_.clear();
}

uint64_t CachingAllocator::RoundSize(uint64_t bytes) {
  if (bytes == 0) return 0;
  if (bytes > kMaxRequest) return UINT64_MAX;
  const uint64_t granule = bytes <= kSmallLimit ? kSmallGranule : kLargeGranule;
  return (bytes + granule - 1) / granule * granule;
}

void* CachingAllocator::Allocate(uint64_t bytes, uint64_t* rounded) {
  const uint64_t size = RoundSize(bytes);
  if (rounded != nullptr) *rounded = size;
  if (size == 0 || size == UINT64_MAX) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  if (auto it = free_.find(size); it != free_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
    stats_.cached -= size;
    ++stats_.cache_hits;
  } else {
    ptr = backend_->Alloc(size);
    if (ptr == nullptr && stats_.cached > 0) {
      // The memory may be here, in blocks of other sizes: give it back and
      // ask once more.
      ReleaseCacheLocked();
      ptr = backend_->Alloc(size);
    }
    if (ptr == nullptr) return nullptr;
    ++stats_.backend_allocs;
    stats_.backend_bytes += size;
  }
  live_.emplace(ptr, size);
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return ptr;
}

bool CachingAllocator::Deallocate(void* ptr) {
  if (ptr == nullptr) return true;
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = live_.find(ptr);
  if (it == live_.end()) return false;
  const uint64_t size = it->second;
  live_.erase(it);
  stats_.in_use -= size;
  stats_.cached += size;
  free_[size].push_back(ptr);
  return true;
}

uint64_t CachingAllocator::SizeOf(const void* ptr) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = live_.find(ptr);
  return it == live_.end() ? 0 : it->second;
}

void CachingAllocator::ReleaseCache() {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseCacheLocked();
}

void CachingAllocator::ReleaseCacheLocked() {
  if (free_.empty()) return;
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      backend_->Free(p);
      stats_.backend_bytes -= size;
      stats_.cached -= size;
    }
  }
  free_.clear();
  ++stats_.cache_releases;
}

AllocatorStats CachingAllocator::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace relayout::cuda
