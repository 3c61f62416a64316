// InflightCalls: how many calls of each RPC are running, so that a drain can
// wait for them, a stuck shutdown can say which calls hold it, and the
// relayout_inflight_calls{rpc} gauge shows a leak on a dashboard.
//
// Every call that Begin counts must reach End exactly once (the reactors'
// end-of-call state machines guarantee it); a count that never returns to
// zero is a call left behind.
//
// Thread safety: all methods may be called concurrently. The listener runs
// under the counter's lock (so gauges never go back in time) and must not
// call back into InflightCalls.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace relayout::server {

class InflightCalls {
 public:
  // Called with an RPC's name and its new count after each change.
  using Listener = std::function<void(std::string_view rpc, int64_t count)>;

  InflightCalls() = default;
  explicit InflightCalls(Listener listener) : listener_(std::move(listener)) {}
  InflightCalls(const InflightCalls&) = delete;
  InflightCalls& operator=(const InflightCalls&) = delete;

  // `rpc` names a static string (the method's name).
  void Begin(std::string_view rpc);
  // REQUIRES: matches an earlier Begin(rpc).
  void End(std::string_view rpc);
  // All calls running.
  int64_t count() const;
  // "Generate=3 Decode=1" for the RPCs with calls running; "" when none.
  std::string Describe() const;
  // Blocks until no call is running or `deadline` passes; true when none is.
  bool WaitUntilIdle(std::chrono::steady_clock::time_point deadline) const;

 private:
  const Listener listener_;
  mutable std::mutex mu_;
  mutable std::condition_variable idle_;
  int64_t count_ = 0;                                   // GUARDED_BY(mu_)
  std::map<std::string, int64_t, std::less<>> by_rpc_;  // GUARDED_BY(mu_)
};

}  // namespace relayout::server
