#include "kernels/cuda/host/staging_ring.h"

#include <cstddef>

namespace relayout::cuda {

void StagingRing::Reset(uint64_t segment_bytes, int segments) {
  segment_bytes_ = segment_bytes;
  fenced_.assign(segments < 2 ? 2 : static_cast<size_t>(segments), false);
  current_ = 0;
  used_ = 0;
}

bool StagingRing::Acquire(uint64_t bytes, uint64_t align, Slot* out) {
  if (align == 0) align = 1;
  if (bytes > segment_bytes_) return false;
  *out = Slot{};
  const uint64_t start = (used_ + align - 1) / align * align;
  if (start <= segment_bytes_ && bytes <= segment_bytes_ - start) {
    out->offset = static_cast<uint64_t>(current_) * segment_bytes_ + start;
    used_ = start + bytes;
    return true;
  }
  // Leave the current segment behind a fence and enter the next one.
  out->fence_segment = current_;
  fenced_[current_] = true;
  current_ = (current_ + 1) % static_cast<int>(fenced_.size());
  if (fenced_[current_]) {
    out->wait_segment = current_;
    fenced_[current_] = false;
  }
  out->offset = static_cast<uint64_t>(current_) * segment_bytes_;  // segment starts are aligned
  used_ = bytes;
  return true;
}

}  // namespace relayout::cuda
