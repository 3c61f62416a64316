// FileCursor: a sequential, buffered reader over a RandomAccessFile, for
// parsing headers that are read field by field (GGUF's metadata is millions of
// small fields in a header of a few megabytes).
//
// It reads the file in chunks of a fixed size, never the whole file, and never
// past its end: a caller checks remaining() against a field's length before
// allocating for it, and Read refuses to past the end. Reads larger than a
// chunk go straight into the caller's buffer.
//
// Thread safety: a FileCursor has a position, so one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/base/env.h"
#include "engine/base/status.h"

namespace relayout {

class FileCursor {
 public:
  // REQUIRES: file outlives the cursor; chunk_bytes > 0.
  explicit FileCursor(const RandomAccessFile* file, uint64_t chunk_bytes = kDefaultChunkBytes);

  static constexpr uint64_t kDefaultChunkBytes = 1ull << 20;

  uint64_t position() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }

  // Copies the next n bytes to dst and advances past them. OutOfRange
  // "read of N bytes at offset O passes end of file (R left)" when fewer than n
  // bytes remain (nothing is read then); the file's status on an I/O error.
  Status Read(void* dst, uint64_t n);
  // Advances n bytes without reading them; OutOfRange as Read.
  Status Skip(uint64_t n);

 private:
  Status CheckRange(uint64_t n) const;

  const RandomAccessFile* file_;
  uint64_t size_;
  uint64_t chunk_bytes_;
  uint64_t pos_ = 0;
  std::vector<std::byte> buffer_;  // holds [buffer_start_, buffer_start_ + buffer_len_)
  uint64_t buffer_start_ = 0;
  uint64_t buffer_len_ = 0;
};

}  // namespace relayout
