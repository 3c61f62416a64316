// Transpose strategies against memcpy of the same bytes, measured in the same
// run. GB/s counts the tensor's bytes once (not read + write), so a strategy at
// ratio 1.0 moves data as fast as memcpy does.
//
//   bench_transpose [reps]     (default 5; cycle following runs once: it is
//                               seconds per matrix)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/layout/transpose.h"

namespace {

using relayout::kernels::CkgScratchBytes;
using relayout::kernels::CycleFollowingScratchBytes;

// Best wall time of reps runs of fn, each after an untimed prepare().
double BestSeconds(int reps, const std::function<void()>& prepare,
                   const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    prepare();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

void Fail(const char* what) {
  std::fprintf(stderr, "transpose bench: %s failed\n", what);
  std::exit(1);
}

void BenchShape(const char* name, int64_t rows, int64_t cols, size_t elem, int reps) {
  const size_t bytes = static_cast<size_t>(rows * cols) * elem;
  std::vector<std::byte> src(bytes);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&src[i], &v, 8);
  }
  std::vector<std::byte> dst(bytes);
  std::vector<std::byte> ckg_scratch(CkgScratchBytes(rows, cols, elem));
  std::vector<std::byte> bitmap(CycleFollowingScratchBytes(rows, cols));
  const auto noop = [] {};
  const auto restore = [&] { std::memcpy(dst.data(), src.data(), bytes); };

  const double t_memcpy =
      BestSeconds(reps, noop, [&] { std::memcpy(dst.data(), src.data(), bytes); });
  const double t_oop = BestSeconds(reps, noop, [&] {
    if (!relayout::kernels::TransposeOutOfPlace(src.data(), dst.data(), rows, cols, elem))
      Fail("out of place");
  });
  const double t_ckg = BestSeconds(reps, restore, [&] {
    if (!relayout::kernels::TransposeCkgInPlace(dst.data(), rows, cols, elem, ckg_scratch))
      Fail("ckg");
  });
  const double t_cycle = BestSeconds(1, restore, [&] {
    if (!relayout::kernels::TransposeCycleFollowing(dst.data(), rows, cols, elem, bitmap))
      Fail("cycle following");
  });

  const auto gbs = [&](double t) { return static_cast<double>(bytes) / t / 1e9; };
  std::printf("%s [%lld, %lld] x %zu B = %.1f MiB\n", name, static_cast<long long>(rows),
              static_cast<long long>(cols), elem, static_cast<double>(bytes) / (1 << 20));
  std::printf("  %-16s %9s %8s %9s %14s\n", "strategy", "ms", "GB/s", "/memcpy", "scratch bytes");
  const auto line = [&](const char* what, double t, uint64_t scratch) {
    std::printf("  %-16s %9.2f %8.2f %9.3f %14llu\n", what, t * 1e3, gbs(t), t_memcpy / t,
                static_cast<unsigned long long>(scratch));
  };
  line("memcpy", t_memcpy, bytes);
  line("out-of-place", t_oop, bytes);
  line("ckg in place", t_ckg, ckg_scratch.size());
  line("cycle following", t_cycle, bitmap.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  BenchShape("F32", 4096, 4096, 4, reps);
  BenchShape("BF16", 11008, 4096, 2, reps);
  return 0;
}
