#include "engine/base/file_cursor.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace relayout {

FileCursor::FileCursor(const RandomAccessFile* file, uint64_t chunk_bytes)
    : file_(file), size_(file->size()), chunk_bytes_(std::max<uint64_t>(chunk_bytes, 1)) {}

Status FileCursor::CheckRange(uint64_t n) const {
  if (n > remaining()) {
    return Status::OutOfRange(StrCat("read of ", n, " bytes at offset ", pos_,
                                     " passes end of file (", remaining(), " left)"));
  }
  return Status::OK();
}

Status FileCursor::Read(void* dst, uint64_t n) {
  RETURN_IF_ERROR(CheckRange(n));
  auto* out = static_cast<std::byte*>(dst);
  while (n > 0) {
    if (pos_ >= buffer_start_ && pos_ < buffer_start_ + buffer_len_) {
      const uint64_t in_buffer = buffer_start_ + buffer_len_ - pos_;
      const uint64_t take = std::min(n, in_buffer);
      std::memcpy(out, buffer_.data() + (pos_ - buffer_start_), take);
      out += take;
      pos_ += take;
      n -= take;
      continue;
    }
    if (n >= chunk_bytes_) {  // large field: no point staging it in the buffer
      RETURN_IF_ERROR(file_->ReadAt(pos_, std::span(out, n)));
      pos_ += n;
      return Status::OK();
    }
    const uint64_t len = std::min(chunk_bytes_, remaining());
    if (buffer_.size() < len) buffer_.resize(len);
    buffer_len_ = 0;  // invalid until the read succeeds
    RETURN_IF_ERROR(file_->ReadAt(pos_, std::span(buffer_.data(), len)));
    buffer_start_ = pos_;
    buffer_len_ = len;
  }
  return Status::OK();
}

Status FileCursor::Skip(uint64_t n) {
  RETURN_IF_ERROR(CheckRange(n));
  pos_ += n;
  return Status::OK();
}

}  // namespace relayout
