#include "kernels/cpu/runtime/read_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>

namespace relayout::kernels {
namespace {

// Sums n words in four independent chains, so the loop is bound by the loads
// and not by one add's latency; the compiler vectorizes it, in the widest
// vectors the CPU has (with 128-bit loads one core reads 8.7 GB/s here, with
// 512-bit ones 13.5: the roof must not be the loop's own limit).
__attribute__((target_clones("avx512f", "avx2", "default"))) uint64_t SumWords(const uint64_t* p,
                                                                               uint64_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

ReadBandwidth MeasureReadBandwidth(ThreadPool* pool, uint64_t bytes, int passes) {
  ReadBandwidth out;
  out.threads = pool == nullptr ? 1 : pool->size();
  const uint64_t words = bytes / 4096 * 4096 / sizeof(uint64_t);
  out.buffer_bytes = words * sizeof(uint64_t);
  if (words == 0) return out;
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  const int64_t parts = out.threads;
  const uint64_t share = (words + static_cast<uint64_t>(parts) - 1) / static_cast<uint64_t>(parts);
  std::atomic<uint64_t> sink{0};
  auto pass = [&](bool fill) {
    auto part = [&](int64_t i) {
      const uint64_t begin = std::min(words, static_cast<uint64_t>(i) * share);
      const uint64_t end = std::min(words, begin + share);
      if (fill) {
        // Distinct values, so no page is the shared zero page.
        for (uint64_t w = begin; w < end; ++w) buffer[w] = w;
      } else {
        sink.fetch_add(SumWords(buffer.get() + begin, end - begin), std::memory_order_relaxed);
      }
    };
    if (pool == nullptr) {
      part(0);
    } else {
      pool->Run(parts, part);
    }
  };
  pass(true);  // first touch, on the threads that will read
  double best = 0;
  for (int p = 0; p < std::max(1, passes); ++p) {
    const auto start = std::chrono::steady_clock::now();
    pass(false);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0) best = std::max(best, static_cast<double>(out.buffer_bytes) / s);
  }
  out.bytes_per_second = best;
  return out;
}

}  // namespace relayout::kernels
