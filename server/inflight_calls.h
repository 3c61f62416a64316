// InflightCalls: how many Generation calls are running, so that a drain can
// wait for them to finish before the server stops.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace relayout::server {

class InflightCalls {
 public:
  void Begin();
  // REQUIRES: matches an earlier Begin().
  void End();
  int64_t count() const;
  // Blocks until no call is running or `deadline` passes; true when none is.
  bool WaitUntilIdle(std::chrono::steady_clock::time_point deadline) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable idle_;
  int64_t count_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace relayout::server
