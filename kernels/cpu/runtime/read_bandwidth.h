// The machine's memory read bandwidth, measured: the roof that a decode step,
// which reads every weight once, is held against (relayoutd bench).
#pragma once

#include <cstdint>

#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout::kernels {

struct ReadBandwidth {
  double bytes_per_second = 0;  // the best pass
  uint64_t buffer_bytes = 0;
  int threads = 1;
};

// Streams a buffer of `bytes` (rounded down to whole 4 KiB pages; it should
// be several times the last-level cache) through every thread of `pool`
// (null: the calling thread alone), each summing its contiguous share, and
// returns the best of `passes` timed passes after one untimed pass that
// touches the pages. The buffer is freed before returning.
ReadBandwidth MeasureReadBandwidth(ThreadPool* pool, uint64_t bytes, int passes = 3);

}  // namespace relayout::kernels
