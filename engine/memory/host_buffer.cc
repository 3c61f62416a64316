#include "engine/memory/host_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "engine/base/bytes.h"

namespace relayout {
namespace {

uint64_t PageSize() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<uint64_t>(page) : 4096;
}

// The mapped length of a large buffer: its size rounded up to whole pages.
uint64_t MappedLength(uint64_t bytes) {
  const uint64_t page = PageSize();
  return (bytes + page - 1) / page * page;
}

// Maps `bytes` aligned to kLargeAlignment by over-mapping and trimming the
// unaligned head and the tail. Returns null with errno set on failure.
std::byte* MapAligned(uint64_t bytes) {
  const uint64_t length = MappedLength(bytes);
  const uint64_t reserved = length + HostBuffer::kLargeAlignment;
  void* raw = mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned =
      (start + HostBuffer::kLargeAlignment - 1) & ~(uintptr_t{HostBuffer::kLargeAlignment} - 1);
  const uint64_t head = aligned - start;
  const uint64_t tail = reserved - head - length;
  if (head > 0) munmap(raw, head);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + length), tail);
  return reinterpret_cast<std::byte*>(aligned);
}

}  // namespace

Result<HostBuffer> HostBuffer::Allocate(MemoryLedger* ledger, MemoryCategory category,
                                        uint64_t bytes) {
  if (ledger == nullptr) return Status::InvalidArgument("host buffer", "null memory ledger");
  if (bytes == 0) return HostBuffer(ledger, category, nullptr, 0, false);
  // Checked before the ledger so that a size the address space cannot hold
  // is an allocation error, not a ledger entry.
  const uint64_t page = PageSize();
  if (bytes > UINT64_MAX - kLargeAlignment - page) {
    return Status::ResourceExhausted("host buffer",
                                     StrCat("cannot allocate ", bytes, " bytes: too large"));
  }
  RETURN_IF_ERROR(ledger->Reserve(category, bytes));
  std::byte* data = nullptr;
  int error = 0;
  const bool mapped = bytes >= kLargeThreshold;
  if (mapped) {
    data = MapAligned(bytes);
    if (data == nullptr) error = errno;
  } else {
    void* raw = nullptr;
    error = posix_memalign(&raw, kSmallAlignment, bytes);
    data = static_cast<std::byte*>(raw);
  }
  if (data == nullptr) {
    ledger->Release(category, bytes);
    return Status::ResourceExhausted(
        "host buffer", StrCat("cannot allocate ", bytes, " bytes (", FormatBytes(bytes), ") of ",
                              MemoryCategoryName(category), ": ", std::strerror(error)));
  }
  return HostBuffer(ledger, category, data, bytes, mapped);
}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : ledger_(std::exchange(other.ledger_, nullptr)),
      category_(other.category_),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, false)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    ledger_ = std::exchange(other.ledger_, nullptr);
    category_ = other.category_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

uint64_t HostBuffer::alignment() const {
  if (size_ == 0) return 0;
  return mapped_ ? kLargeAlignment : kSmallAlignment;
}

void HostBuffer::Reset() {
  if (data_ != nullptr) {
    if (mapped_) {
      munmap(data_, MappedLength(size_));
    } else {
      std::free(data_);
    }
  }
  if (ledger_ != nullptr && size_ > 0) ledger_->Release(category_, size_);
  ledger_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

}  // namespace relayout
