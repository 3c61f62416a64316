#include "server/rpc/admin_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <grpcpp/support/server_callback.h>

#include "server/rpc/admission.h"
#include "server/rpc/model_service.h"
#include "server/rpc/status_conversion.h"
#include "server/rpc/stream_reactor_step.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kRpc[] = "Relayout";

// Overwrites every progress field, so that an update that arrives while a
// write is in flight replaces the one waiting behind it.
void SetProgress(const RelayoutProgressUpdate& u, v1::RelayoutProgress* out) {
  out->set_tensors_done(u.tensors_done);
  out->set_tensors_total(u.tensors_total);
  out->set_bytes_done(u.bytes_done);
  out->set_bytes_total(u.bytes_total);
  out->set_ratio(u.bytes_total > 0
                     ? static_cast<double>(u.bytes_done) / static_cast<double>(u.bytes_total)
                     : 1.0);
  out->set_tensor(u.tensor);
  out->set_layout(u.layout);
}

// One Relayout call: the write reactor, and the state it shares with the
// controller's callbacks (which may outlive it).
class RelayoutReactor final : public grpc::ServerWriteReactor<v1::RelayoutProgress> {
 public:
  // controller, metrics and inflight are not owned and outlive the call;
  // inflight->Begin(kRpc) was called for this call, and OnDone calls End.
  RelayoutReactor(RelayoutController* controller, ServerMetrics* metrics, InflightCalls* inflight)
      : controller_(controller),
        metrics_(metrics),
        inflight_(inflight),
        start_(Clock::now()),
        shared_(std::make_shared<Shared>(this)) {}

  // Ends the call with `status` before any message. REQUIRES: Run was not
  // called.
  void FinishWithStatus(const grpc::Status& status) {
    shared_->Apply(shared_->queue().FinishNow(ToCallStatus(status)));
  }

  // Starts the relayout; its refusal ends the call at once.
  void Run(const std::string& layout, const std::string& budget) {
    std::shared_ptr<Shared> shared = shared_;
    RelayoutCallbacks callbacks;
    callbacks.on_progress = [shared](const RelayoutProgressUpdate& u) { shared->OnProgress(u); };
    callbacks.on_done = [shared](const Status& status, const RelayoutReport& report) {
      shared->OnEnd(status, report);
    };
    Result<size_t> tensors = controller_->Start(layout, budget, std::move(callbacks));
    if (!tensors.ok()) {
      shared_->Apply(shared_->queue().End(ToCallStatus(ToGrpcStatus(tensors.status()))));
      return;
    }
    // A cancel that came while the relayout was starting could not stop it.
    if (shared_->Started(*tensors)) controller_->Cancel();
  }

  void OnWriteDone(bool ok) override { shared_->Apply(shared_->queue().WriteDone(ok)); }

  void OnCancel() override {
    if (shared_->CancelRequested()) controller_->Cancel();
    shared_->Apply(shared_->queue().Cancel(
        ToCallStatus(grpc::Status(grpc::StatusCode::CANCELLED, "Relayout: cancelled"))));
  }

  void OnDone() override {
    const grpc::StatusCode code = shared_->final_code();
    metrics_->OnRequest(kRpc, StatusCodeName(static_cast<StatusCode>(code)),
                        std::chrono::duration<double>(Clock::now() - start_).count());
    inflight_->End(kRpc);
    delete this;
  }

 private:
  class Shared {
   public:
    using Queue = StreamCallQueue<v1::RelayoutProgress>;

    explicit Shared(RelayoutReactor* reactor) : reactor_(reactor) {}

    // Takes the step the queue decided. The reactor is alive whenever a
    // step is not kNothing (it is deleted only after the one kFinish).
    void Apply(const Queue::Step& step) {
      ApplyStreamStep<v1::RelayoutProgress>(step, reactor_, &mu_, &final_code_);
    }

    Queue& queue() { return queue_; }

    // Controller: one more tensor converted.
    void OnProgress(const RelayoutProgressUpdate& update) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = update;
      }
      Apply(queue_.Append([&](v1::RelayoutProgress& m) { SetProgress(update, &m); }));
    }

    // Controller: the end. OK queues the final message (every tensor done,
    // and the report); an error (Cancelled included) finishes with it.
    void OnEnd(const Status& status, const RelayoutReport& report) {
      RelayoutProgressUpdate last;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ended_ = true;
        last = last_;
        last.tensors_total = std::max<uint32_t>(last.tensors_total, planned_);
      }
      last.tensors_done = last.tensors_total;
      last.bytes_done = last.bytes_total;
      Apply(queue_.End(ToCallStatus(ToGrpcStatus(status)), [&](v1::RelayoutProgress& m) {
        SetProgress(last, &m);
        m.set_ratio(1.0);
        ToProtoReport(report, /*include_tensors=*/false, m.mutable_report());
      }));
    }

    // Run: the relayout of `tensors` tensors started. True when the client
    // cancelled meanwhile and the relayout is still running: the caller
    // cancels it (OnCancel could not, before it started).
    bool Started(size_t tensors) {
      std::lock_guard<std::mutex> lock(mu_);
      started_ = true;
      planned_ = static_cast<uint32_t>(tensors);
      return cancel_requested_ && !ended_;
    }
    // OnCancel: true when the relayout runs and the caller must cancel it;
    // otherwise Started (still to come) will say so, or it already ended.
    // A relayout that ends just as the client cancels may let another
    // call's relayout start before Cancel lands; the controller cancels
    // whichever runs (it names none).
    bool CancelRequested() {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_requested_ = true;
      return started_ && !ended_;
    }

    grpc::StatusCode final_code() {
      std::lock_guard<std::mutex> lock(mu_);
      return final_code_;
    }

   private:
    RelayoutReactor* const reactor_;
    Queue queue_;

    std::mutex mu_;
    RelayoutProgressUpdate last_;                         // GUARDED_BY(mu_)
    uint32_t planned_ = 0;                                // GUARDED_BY(mu_)
    bool started_ = false;                                // GUARDED_BY(mu_)
    bool ended_ = false;                                  // GUARDED_BY(mu_)
    bool cancel_requested_ = false;                       // GUARDED_BY(mu_)
    grpc::StatusCode final_code_ = grpc::StatusCode::OK;  // GUARDED_BY(mu_)
  };

  RelayoutController* const controller_;
  ServerMetrics* const metrics_;
  InflightCalls* const inflight_;
  const Clock::time_point start_;
  const std::shared_ptr<Shared> shared_;
};

}  // namespace

grpc::ServerWriteReactor<v1::RelayoutProgress>* AdminService::Relayout(
    grpc::CallbackServerContext* context, const v1::RelayoutRequest* request) {
  deps_.inflight->Begin(kRpc);
  auto* reactor = new RelayoutReactor(controller_, deps_.metrics, deps_.inflight);
  // The Generation service's checks: the token, then UNAVAILABLE while
  // draining or before the model serves.
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s =
          Admission(deps_.state, deps_.auth)
              .Check(*context, Admission::Work::kNew, Admission::Needs::kModel, &tokenizer);
      !s.ok()) {
    reactor->FinishWithStatus(s);
    return reactor;
  }
  if (request->layout().empty()) {
    reactor->FinishWithStatus(ToGrpcStatus(Status::InvalidArgument(
        "layout", "required: \"auto\", \"native\" or a layout name such as rowgroup-g8k8")));
    return reactor;
  }
  if (controller_ == nullptr) {
    reactor->FinishWithStatus(ToGrpcStatus(Status::Unavailable("relayout", "not available")));
    return reactor;
  }
  reactor->Run(request->layout(), request->budget());
  return reactor;
}

}  // namespace relayout::server
