// The bookkeeping of the pinned ring through which the CUDA plugin stages an
// eagerly issued op's metadata (token ids, positions, spans) before its
// cudaMemcpyAsync into the device: plain C++, tested without a GPU.
//
// The problem it solves: a cudaMemcpyAsync from pinned memory reads the
// source when the stream reaches it, so the host may not overwrite those
// bytes until then; waiting for each copy would serialize the host with the
// GPU at every op that carries metadata. The ring is split into `segments`
// equal segments, each with a fence (a CUDA event in the plugin). Slots are
// handed out back to back inside the current segment; when one does not
// fit, the ring moves to the next segment, first fencing the one it leaves
// (every copy out of it has been issued, so an event recorded now completes
// after them) and then waiting for the fence of the one it enters (recorded
// one lap ago). The host blocks only when it runs a whole ring ahead of the
// GPU.
#pragma once

#include <cstdint>
#include <vector>

namespace relayout::cuda {

class StagingRing {
 public:
  struct Slot {
    uint64_t offset = 0;     // of the slot's bytes in the ring
    int fence_segment = -1;  // >= 0: record this segment's fence now, before the slot's copy
    int wait_segment = -1;   // >= 0: wait for this segment's fence before writing the slot
  };

  // segment_bytes a multiple of 256; segments >= 2.
  StagingRing(uint64_t segment_bytes, int segments) { Reset(segment_bytes, segments); }

  // A slot of `bytes` at an offset aligned to `align` (a power of two up to
  // 256). False when it can never fit a segment: the caller grows the ring
  // (after synchronizing the stream) and calls Reset.
  bool Acquire(uint64_t bytes, uint64_t align, Slot* out);
  // Forgets every fence: all segments free (the stream was synchronized).
  void Reset(uint64_t segment_bytes, int segments);

  uint64_t segment_bytes() const { return segment_bytes_; }
  int segments() const { return static_cast<int>(fenced_.size()); }
  uint64_t capacity() const { return segment_bytes_ * fenced_.size(); }

 private:
  uint64_t segment_bytes_ = 0;
  int current_ = 0;
  uint64_t used_ = 0;         // bytes of the current segment handed out
  std::vector<bool> fenced_;  // a fence was recorded and not yet waited for
};

}  // namespace relayout::cuda
