// HostBuffer: an aligned block of host memory whose bytes are registered in a
// MemoryLedger for exactly as long as the block exists.
//
// The ledger is asked first, so a buffer over the ledger's capacity is refused
// before any memory is allocated. Buffers below 2 MiB come from posix_memalign
// with 64-byte alignment (a cache line, enough for any SIMD load). Larger ones
// are anonymous mappings aligned to 2 MiB (so the kernel may back them with
// huge pages) and are unmapped on release, which gives the memory back to the
// OS at once: the process's RSS then follows the ledger, and VmHWM stays a
// faithful cross-check. In both cases the memory is not written here, so pages
// are only touched (and counted in RSS) as the caller writes them; the
// contents start unspecified (mapped buffers happen to start zeroed).
//
// Thread safety: a HostBuffer is a move-only owner; distinct buffers may be
// used from different threads. The ledger must outlive every buffer drawn on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/base/status.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {

class HostBuffer {
 public:
  static constexpr uint64_t kSmallAlignment = 64;
  static constexpr uint64_t kLargeAlignment = uint64_t{2} << 20;
  // Buffers of at least this many bytes are mapped with kLargeAlignment.
  static constexpr uint64_t kLargeThreshold = uint64_t{2} << 20;

  // Reserves `bytes` of `category` in `ledger`, then allocates them.
  // Returns a buffer of size() == bytes (data() is null when bytes is 0).
  // Errors: InvalidArgument when ledger is null; the ledger's
  // ResourceExhausted when over its capacity (nothing allocated);
  // ResourceExhausted "host buffer: cannot allocate ..." when the OS refuses
  // (the reservation is given back).
  static Result<HostBuffer> Allocate(MemoryLedger* ledger, MemoryCategory category, uint64_t bytes);

  HostBuffer() = default;  // empty: no memory, no reservation
  ~HostBuffer() { Reset(); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  // The moved-from buffer is left empty; the reservation moves with the memory.
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<std::byte> span() { return {data_, static_cast<size_t>(size_)}; }
  std::span<const std::byte> span() const { return {data_, static_cast<size_t>(size_)}; }
  MemoryCategory category() const { return category_; }
  // kLargeAlignment or kSmallAlignment, as chosen for size(); 0 when empty.
  uint64_t alignment() const;

  // Frees the memory and releases its bytes from the ledger now; the buffer
  // is empty afterwards. Idempotent.
  void Reset();

 private:
  HostBuffer(MemoryLedger* ledger, MemoryCategory category, std::byte* data, uint64_t size,
             bool mapped)
      : ledger_(ledger), category_(category), data_(data), size_(size), mapped_(mapped) {}

  MemoryLedger* ledger_ = nullptr;  // not owned
  MemoryCategory category_ = MemoryCategory::kWeights;
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;  // from mmap (unmap on Reset) rather than posix_memalign (free)
};

}  // namespace relayout
