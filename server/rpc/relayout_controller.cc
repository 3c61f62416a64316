#include "server/rpc/relayout_controller.h"

#include "engine/conversion/budget.h"
#include "server/observe/conversion_progress.h"
#include "server/observe/model_description.h"
#include "server/observe/structured_log.h"

namespace relayout::server {

namespace {

constexpr const char* kDefaultBudget = "64MiB";

// The start-up conversion's observer (state, metrics, log lines), plus the
// caller's progress callback.
class ForwardingProgress final : public ConversionObserver {
 public:
  ForwardingProgress(ServerState* state, ServerMetrics* metrics, uint32_t tensors_total,
                     uint64_t bytes_total,
                     std::function<void(const RelayoutProgressUpdate&)> on_progress)
      : progress_(state, metrics, bytes_total),
        tensors_total_(tensors_total),
        bytes_total_(bytes_total),
        on_progress_(std::move(on_progress)) {}

  void OnTensorConverted(const TensorConversionReport& tensor, size_t done, size_t total,
                         const MemoryLedgerSnapshot& ledger) override {
    progress_.OnTensorConverted(tensor, done, total, ledger);
    bytes_done_ += tensor.bytes;
    if (on_progress_) {
      on_progress_({static_cast<uint32_t>(done), tensors_total_, bytes_done_, bytes_total_,
                    tensor.internal_name, tensor.layout});
    }
  }

 private:
  ConversionProgress progress_;
  uint32_t tensors_total_;
  uint64_t bytes_total_;
  uint64_t bytes_done_ = 0;
  std::function<void(const RelayoutProgressUpdate&)> on_progress_;
};

}  // namespace

RelayoutController::RelayoutController(ServerState* state, ServerMetrics* metrics)
    : state_(state), metrics_(metrics) {}

void RelayoutController::AttachBackend(GenerationBackend* backend, DeviceCaps caps,
                                       uint64_t weight_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  backend_ = backend;
  caps_ = caps;
  weight_bytes_ = weight_bytes;
}

Result<size_t> RelayoutController::Start(const std::string& layout, const std::string& budget,
                                         RelayoutCallbacks callbacks) {
  GenerationBackend* backend = nullptr;
  DeviceCaps caps;
  uint64_t weight_bytes = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    backend = backend_;
    caps = caps_;
    weight_bytes = weight_bytes_;
  }
  if (backend == nullptr) return Status::Unavailable("relayout", "the model is not loaded yet");
  if (layout.empty()) return Status::InvalidArgument("layout", "is empty");
  Result<LayoutPolicy> policy = LayoutPolicy::Create(caps, layout);
  if (!policy.ok()) return policy.status().WithPrefix("layout");
  Result<uint64_t> budget_bytes =
      ParseBudget(budget.empty() ? kDefaultBudget : budget, weight_bytes);
  if (!budget_bytes.ok()) return budget_bytes.status().WithPrefix("budget");

  // The observer needs the plan's totals: on_start sets them before any
  // tensor moves; the observer is created on the first tensor (on the
  // scheduler thread).
  struct Shared {
    std::unique_ptr<ForwardingProgress> progress;
    uint32_t tensors_total = 0;
    uint64_t bytes_total = 0;
  };
  auto shared = std::make_shared<Shared>();
  class Lazy final : public ConversionObserver {
   public:
    Lazy(std::shared_ptr<Shared> shared, ServerState* state, ServerMetrics* metrics,
         std::function<void(const RelayoutProgressUpdate&)> on_progress)
        : shared_(std::move(shared)),
          state_(state),
          metrics_(metrics),
          on_progress_(std::move(on_progress)) {}
    void OnTensorConverted(const TensorConversionReport& tensor, size_t done, size_t total,
                           const MemoryLedgerSnapshot& ledger) override {
      if (shared_->progress == nullptr) {
        shared_->progress = std::make_unique<ForwardingProgress>(
            state_, metrics_, shared_->tensors_total, shared_->bytes_total, on_progress_);
      }
      shared_->progress->OnTensorConverted(tensor, done, total, ledger);
    }

   private:
    std::shared_ptr<Shared> shared_;
    ServerState* state_;
    ServerMetrics* metrics_;
    std::function<void(const RelayoutProgressUpdate&)> on_progress_;
  };

  RelayoutJobOptions job;
  job.choose = [p = *policy](DType d, TensorRole r, std::span<const int64_t> s) {
    return p.Choose(d, r, s);
  };
  job.budget_bytes = *budget_bytes;
  job.observer = std::make_shared<Lazy>(shared, state_, metrics_, std::move(callbacks.on_progress));
  job.on_start = [shared, state = state_, metrics = metrics_](const LiveRelayoutPlan& plan) {
    shared->tensors_total = static_cast<uint32_t>(plan.steps.size());
    shared->bytes_total = plan.bytes_to_convert;
    state->BeginConversion(shared->tensors_total, shared->bytes_total);
    metrics->OnConversionPlanned(
        {"", plan.weight_bytes, plan.budget_bytes, plan.predicted_peak_bytes()});
  };
  const std::string mode = policy->mode_name();
  // GetModelInfo's layouts follow the weights: the policy's mode when every
  // tensor reached its layout, "mixed" after a stop part way.
  job.on_layouts = [state = state_, p = *policy, mode](std::span<const ResidentTensor> tensors) {
    std::vector<TensorLayoutEntry> entries;
    bool all_there = true;
    for (const ResidentTensor& t : tensors) {
      entries.push_back({t.ref.role, t.dtype, t.layout, t.data.size});
      all_there = all_there && t.layout == p.Choose(t.dtype, t.ref.role, t.shape);
    }
    state->SetLayouts(all_there ? mode : "mixed", SummarizeTensorClasses(entries));
  };
  job.on_done = [state = state_, metrics = metrics_, mode, on_done = std::move(callbacks.on_done)](
                    const Status& status, const RelayoutReport& report) {
    if (status.ok()) {
      metrics->SetReport(report);
      LogInfo("conversion done", {{"live", true},
                                  {"layout", mode},
                                  {"device", report.device},
                                  {"weights_bytes", report.weights_bytes},
                                  {"budget_bytes", report.budget_bytes},
                                  {"predicted_peak_bytes", report.predicted_peak_bytes},
                                  {"measured_peak_bytes", report.measured_peak_bytes},
                                  {"scratch_peak_bytes", report.scratch_peak_bytes},
                                  {"bound", report.bound_held() ? "held" : "broken"},
                                  {"seconds", report.seconds},
                                  {"tensors", static_cast<uint64_t>(report.tensors.size())}});
      state->EndConversion(report);
    } else {
      LogWarning("conversion stopped", {{"live", true},
                                        {"layout", mode},
                                        {"code", StatusCodeName(status.code())},
                                        {"error", status.message()}});
      state->EndConversion(std::nullopt);
    }
    if (on_done) on_done(status, report);
  };

  Result<LiveRelayoutPlan> plan = backend->StartRelayout(std::move(job));
  if (!plan.ok()) return plan.status();
  LogInfo("conversion started", {{"live", true},
                                 {"layout", mode},
                                 {"tensors", static_cast<uint64_t>(plan->steps.size())},
                                 {"bytes", plan->bytes_to_convert},
                                 {"budget_bytes", plan->budget_bytes},
                                 {"predicted_peak_bytes", plan->predicted_peak_bytes()}});
  return plan->steps.size();
}

void RelayoutController::Cancel() {
  GenerationBackend* backend = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    backend = backend_;
  }
  if (backend != nullptr) backend->CancelRelayout();
}

}  // namespace relayout::server
