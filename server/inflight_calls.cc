#include "server/inflight_calls.h"

namespace relayout::server {

void InflightCalls::Begin() {
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
}

void InflightCalls::End() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--count_ == 0) idle_.notify_all();
}

int64_t InflightCalls::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

bool InflightCalls::WaitUntilIdle(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, deadline, [this] { return count_ == 0; });
}

}  // namespace relayout::server
