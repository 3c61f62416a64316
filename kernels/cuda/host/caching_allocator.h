// The CUDA plugin's caching allocator, as plain C++ over a two-call backend
// (cudaMalloc / cudaFree in the plugin, a fake in the tests), so that the
// policy is tested on a machine without a GPU.
//
// Why cache: cudaMalloc and cudaFree are slow (cudaFree synchronizes the
// device), and the engine frees and re-allocates same-sized activation and
// scratch buffers between requests. A freed block is kept, keyed by its
// rounded size, and handed out again for the next request of that size.
//
// Sizes are rounded up before they reach the backend:
//   - small requests (<= kSmallLimit): to a multiple of kSmallGranule (512 B),
//   - large ones: to a multiple of kLargeGranule (2 MiB),
// so that requests of nearby sizes share cache entries and the device's
// address space does not fragment into odd sizes. RoundSize is also the
// ABI's alloc_size: the engine's ledger counts exactly what the device holds.
//
// Reuse is only safe because every use of device memory is ordered on the
// device's one stream: work issued before a free runs before work issued
// after the block is handed out again (PyTorch's single-stream argument).
//
// When the backend refuses a request, every cached block is released to it
// and the request retried once (the memory may be there, only held here).
//
// Thread-safe: every member takes one mutex (buffer_alloc and buffer_free may
// run concurrently). The backend is called under that mutex.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace relayout::cuda {

class AllocatorBackend {
 public:
  virtual ~AllocatorBackend() = default;
  // A block of `bytes` (> 0), or null when there is no memory for it.
  virtual void* Alloc(uint64_t bytes) = 0;
  // Returns a block Alloc gave.
  virtual void Free(void* ptr) = 0;
};

struct AllocatorStats {
  uint64_t in_use = 0;          // rounded bytes of live allocations
  uint64_t cached = 0;          // rounded bytes of freed blocks kept for reuse
  uint64_t peak_in_use = 0;     // the most in_use has been
  uint64_t backend_bytes = 0;   // held from the backend: in_use + cached
  uint64_t backend_allocs = 0;  // successful backend Alloc calls
  uint64_t cache_hits = 0;      // allocations served from the cache
  uint64_t cache_releases = 0;  // times the whole cache went back to the backend
};

class CachingAllocator {
 public:
  static constexpr uint64_t kSmallGranule = 512;
  static constexpr uint64_t kSmallLimit = uint64_t{1} << 20;    // 1 MiB
  static constexpr uint64_t kLargeGranule = uint64_t{2} << 20;  // 2 MiB
  // The largest request RoundSize can round without wrapping.
  static constexpr uint64_t kMaxRequest = UINT64_MAX - kLargeGranule;

  // `backend` outlives the allocator.
  explicit CachingAllocator(AllocatorBackend* backend) : backend_(backend) {}
  // Returns every cached block and every block still live to the backend.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // The bytes a request of `bytes` takes: 0 for 0, UINT64_MAX past
  // kMaxRequest (such a request fails).
  static uint64_t RoundSize(uint64_t bytes);

  // A block of at least `bytes` (RoundSize(bytes) exactly), or null when
  // the backend has no memory even after the cache was released (or when
  // bytes is 0 or past kMaxRequest). *rounded, when given, is
  // RoundSize(bytes).
  void* Allocate(uint64_t bytes, uint64_t* rounded = nullptr);
  // Keeps a block Allocate gave for reuse. False (and nothing done) for a
  // pointer this allocator does not know as live; null is ignored (true).
  bool Deallocate(void* ptr);
  // The rounded size of a live block; 0 when `ptr` is not one.
  uint64_t SizeOf(const void* ptr) const;
  // Returns every cached block to the backend.
  void ReleaseCache();
  AllocatorStats Stats() const;

 private:
  void ReleaseCacheLocked();

  AllocatorBackend* backend_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::vector<void*>> free_;     // rounded size -> cached blocks
  std::unordered_map<const void*, uint64_t> live_;  // block -> rounded size
  AllocatorStats stats_;
};

}  // namespace relayout::cuda
