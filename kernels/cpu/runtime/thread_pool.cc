#include "kernels/cpu/runtime/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RELAYOUT_CPU_RELAX() _mm_pause()
#else
#define RELAYOUT_CPU_RELAX() ((void)0)
#endif

namespace relayout::kernels {
namespace {
// About 50 microseconds of spinning before a worker sleeps.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Workers start from generation 0, not from whatever they read when they
  // first run: a pool destroyed before a worker got scheduled must still
  // wake it.
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(0); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Drain(const std::function<void(int64_t)>& fn, int64_t n) {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    fn(i);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::WorkerLoop(uint64_t seen) {
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      RELAYOUT_CPU_RELAX();
      ++spins;
    }
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t n = 0;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_.load()) return;
      fn = job_;
      n = job_size_;
      // Counted under the lock, so Run cannot retire the job while this
      // worker still holds its pointer.
      if (fn != nullptr) active_.fetch_add(1, std::memory_order_acq_rel);
    }
    if (fn != nullptr) {
      Drain(*fn, n);
      active_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::Run(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    job_size_ = n;
    next_.store(0);
    done_.store(0);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  Drain(fn, n);
  while (done_.load(std::memory_order_acquire) < n) RELAYOUT_CPU_RELAX();
  {
    std::lock_guard lock(mu_);
    job_ = nullptr;
  }
  // A worker that took the job may still be fetching an index past n; it
  // must leave before next_ is reset by the next Run.
  while (active_.load(std::memory_order_acquire) != 0) RELAYOUT_CPU_RELAX();
}

void ThreadPool::RunRanges(int64_t n, int64_t grain,
                           const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::max<int64_t>(1, n / grain);
  const int64_t chunks = std::min<int64_t>(max_chunks, static_cast<int64_t>(size()) * 4);
  const int64_t step = (n + chunks - 1) / chunks;
  Run((n + step - 1) / step, [&](int64_t c) { fn(c * step, std::min(n, (c + 1) * step)); });
}

}  // namespace relayout::kernels
