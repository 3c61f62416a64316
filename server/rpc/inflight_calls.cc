#include "server/rpc/inflight_calls.h"

#include "engine/base/status.h"

namespace relayout::server {

void InflightCalls::Begin(std::string_view rpc) {
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
  auto it = by_rpc_.find(rpc);
  if (it == by_rpc_.end()) it = by_rpc_.emplace(std::string(rpc), 0).first;
  ++it->second;
  if (listener_) listener_(rpc, it->second);
}

void InflightCalls::End(std::string_view rpc) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_rpc_.find(rpc);
  if (it == by_rpc_.end() || it->second == 0) return;  // unmatched: a programming error
  --it->second;
  if (listener_) listener_(rpc, it->second);
  if (--count_ == 0) idle_.notify_all();
}

int64_t InflightCalls::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

std::string InflightCalls::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [rpc, n] : by_rpc_) {
    if (n == 0) continue;
    if (!out.empty()) out += ' ';
    out += StrCat(rpc, "=", n);
  }
  return out;
}

bool InflightCalls::WaitUntilIdle(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, deadline, [this] { return count_ == 0; });
}

}  // namespace relayout::server
