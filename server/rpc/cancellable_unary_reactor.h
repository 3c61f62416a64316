// CancellableUnaryReactor: a gRPC unary reactor that reports cancellation
// (the client left or its deadline passed; DefaultReactor has no hook), so
// that a call cancels the work behind it, e.g. a generation waiting in the
// queue; and CancelHook, the cancel it runs. Shared by relayout.v1
// Generation's Prefill and KServe's ModelInfer.
//
// Thread safety: Set and Fire may run concurrently, in either order.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include <grpcpp/support/server_callback.h>

namespace relayout::server {

// What to do when a call is cancelled, set once the work it would cancel
// exists. Shared by the reactor and the method that starts the work, so
// either may go first.
class CancelHook {
 public:
  // Runs `cancel` now if the call was already cancelled, else on Fire.
  void Set(std::function<void()> cancel) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!fired_) {
        cancel_ = std::move(cancel);
        return;
      }
    }
    cancel();
  }
  void Fire() {
    std::function<void()> cancel;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fired_ = true;
      cancel = std::move(cancel_);
    }
    if (cancel) cancel();
  }

 private:
  std::mutex mu_;
  bool fired_ = false;            // GUARDED_BY(mu_)
  std::function<void()> cancel_;  // GUARDED_BY(mu_)
};

class CancellableUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  std::shared_ptr<CancelHook> hook() const { return hook_; }
  void OnCancel() override { hook_->Fire(); }
  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<CancelHook> hook_ = std::make_shared<CancelHook>();
};

}  // namespace relayout::server
