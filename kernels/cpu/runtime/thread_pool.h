// ThreadPool: one persistent set of workers for all CPU kernels.
//
// Run(n, fn) calls fn(i) for every i in [0, n) across the workers and the
// calling thread, and returns when all calls have finished. Work is handed
// out in contiguous chunks by an atomic counter, so uneven tasks balance.
// Workers spin briefly before sleeping: a decode step issues hundreds of
// small Runs, and waking a sleeping thread costs more than the work.
//
// Thread safety: Run may be called from one thread at a time (the engine's
// forward pass); fn must be safe to call concurrently for distinct i.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace relayout::kernels {

class ThreadPool {
 public:
  // threads <= 0 means one per hardware thread. The caller counts as one.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) for i in [0, n); returns when all are done.
  void Run(int64_t n, const std::function<void(int64_t)>& fn);

  // Calls fn(begin, end) over [0, n) split into about size() * 4 ranges of
  // at least `grain` items.
  void RunRanges(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop(uint64_t seen);
  void Drain(const std::function<void(int64_t)>& fn, int64_t n);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  // The job of the current generation, GUARDED_BY(mu_).
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_size_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int> active_{0};
};

}  // namespace relayout::kernels
