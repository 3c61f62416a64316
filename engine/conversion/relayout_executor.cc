#include "engine/conversion/relayout_executor.h"

#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/memory/process_memory.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Status ConvertTensorOnHost(const WeightSource& source_reader, const TensorConversion& t,
                           const PlanStep& step, MemoryLedger* ledger, MemoryCategory category,
                           LoadedTensor* out, TensorConversionReport* report) {
  const auto start = Clock::now();
  HostBuffer buffer;
  if (step.strategy == Strategy::kAllocateThenFree) {
    // Size-changing: the source sits in scratch while the final buffer of the
    // new size is filled from it; both are counted, as the plan assumed.
    ASSIGN_OR_RETURN(HostBuffer source,
                     HostBuffer::Allocate(ledger, MemoryCategory::kScratch, t.spec.from_bytes));
    RETURN_IF_ERROR(source_reader.ReadTensor(t.source_index, source.span()));
    report->read_seconds = SecondsSince(start);
    ASSIGN_OR_RETURN(buffer, HostBuffer::Allocate(ledger, category, t.spec.to_bytes));
    RETURN_IF_ERROR(
        ApplySizeChangingTransform(t.spec, source.span(), buffer.span(), Direction::kForward));
  } else {
    ASSIGN_OR_RETURN(buffer, HostBuffer::Allocate(ledger, category, t.spec.to_bytes));
    RETURN_IF_ERROR(source_reader.ReadTensor(t.source_index, buffer.span()));
    report->read_seconds = SecondsSince(start);
    if (step.strategy != Strategy::kNone) {
      ASSIGN_OR_RETURN(HostBuffer scratch,
                       HostBuffer::Allocate(ledger, MemoryCategory::kScratch, step.scratch_bytes));
      RETURN_IF_ERROR(ApplyTransform(t.spec, step.strategy, buffer.span(), scratch.span(),
                                     Direction::kForward));
    }  // scratch released here, before this worker's next tensor starts
  }
  report->seconds = SecondsSince(start);
  DescribeConvertedTensor(t, step, report, out);
  out->buffer = std::move(buffer);
  return Status::OK();
}

void DescribeConvertedTensor(const TensorConversion& t, const PlanStep& step,
                             TensorConversionReport* report, LoadedTensor* out) {
  report->name = t.name;
  report->internal_name = t.internal_name;
  report->dtype = t.dtype;
  report->shape = t.shape;
  report->layout = t.to.IsCommon() ? "native" : t.to.Name();
  report->strategy = step.strategy;
  report->bytes = t.spec.to_bytes;
  report->scratch_bytes = step.scratch_bytes;
  out->name = t.internal_name;
  out->ref = t.ref;
  // A widened tensor is F32 from here on.
  out->dtype = t.to.kind == LayoutKind::kWidenedF32 ? DType::kF32 : t.dtype;
  out->shape = t.shape;
  out->layout = t.to;
}

const LoadedTensor* LoadedWeights::Find(TensorRole role, int layer) const {
  for (const LoadedTensor& t : tensors) {
    if (t.ref.role == role && t.ref.layer == layer) return &t;
  }
  return nullptr;
}

ConversionWindow::ConversionWindow() : start_(Clock::now()) {
  const Result<uint64_t> rss = ReadResidentBytes();
  baseline_rss_ = rss.ok() ? *rss : 0;
  // VmHWM is a process-lifetime peak: reset it so it measures this load.
  hwm_reset_ = ResetPeakResident().ok();
}

double ConversionWindow::seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void ConversionWindow::Finish(uint64_t weight_bytes, RelayoutReport* report) const {
  report->baseline_rss_bytes = baseline_rss_;
  const Result<uint64_t> hwm = ReadPeakResidentBytes();
  report->os_peak_rss_bytes = hwm.ok() && hwm_reset_ ? *hwm : 0;
  report->seconds = seconds();
  report->bytes_per_second =
      report->seconds > 0 ? static_cast<double>(weight_bytes) / report->seconds : 0;
}

Result<LoadedWeights> ExecuteConversion(const WeightSource& source, const ConversionPlan& plan,
                                        MemoryLedger* ledger, ConversionObserver* observer,
                                        const std::atomic<bool>* cancel, RelayoutReport* report) {
  if (ledger == nullptr) return Status::InvalidArgument("relayout", "no memory ledger");
  const ConversionWindow window;
  const uint64_t base_bytes = ledger->total_current();
  const uint64_t base_scratch = ledger->current(MemoryCategory::kScratch);
  ledger->ResetPeaks();

  const std::vector<PlanStep>& steps = plan.plan.steps;
  std::vector<LoadedTensor> loaded(plan.tensors.size());
  std::vector<TensorConversionReport> reports(steps.size());
  std::mutex mu;  // guards first_error, done and the observer
  Status first_error;
  size_t done = 0;

  size_t begin = 0;
  while (begin < steps.size()) {
    if (cancel != nullptr && cancel->load()) return Status::Cancelled("relayout", "interrupted");
    size_t end = begin;
    while (end < steps.size() && steps[end].wave == steps[begin].wave) ++end;
    const auto run = [&](size_t s) {
      const PlanStep& step = steps[s];
      const size_t ti = static_cast<size_t>(step.tensor_index);
      Status status = ConvertTensorOnHost(source, plan.tensors[ti], step, ledger,
                                          MemoryCategory::kWeights, &loaded[ti], &reports[s]);
      std::lock_guard lock(mu);
      if (!status.ok()) {
        if (first_error.ok()) first_error = status;
        return;
      }
      ++done;
      if (observer != nullptr)
        observer->OnTensorConverted(reports[s], done, steps.size(), ledger->Snapshot());
    };
    if (end - begin == 1) {
      run(begin);
    } else {
      std::vector<std::thread> threads;
      for (size_t s = begin; s < end; ++s) threads.emplace_back(run, s);
      for (std::thread& t : threads) t.join();
    }
    if (!first_error.ok()) return first_error;
    begin = end;
  }

  const MemoryLedgerSnapshot snap = ledger->Snapshot();
  const uint64_t measured = snap.total_peak_bytes - base_bytes;
  if (measured > plan.plan.weight_bytes + plan.plan.budget_bytes) {
    return Status::Internal("relayout",
                            StrCat("measured peak ", measured, " bytes broke the bound of ",
                                   plan.plan.weight_bytes, " + ", plan.plan.budget_bytes));
  }
  if (report != nullptr) {
    report->device = plan.device;
    report->workers = plan.plan.workers;
    report->weights_bytes = plan.plan.weight_bytes;
    report->budget_bytes = plan.plan.budget_bytes;
    report->predicted_peak_bytes = plan.plan.predicted_peak_bytes;
    report->measured_peak_bytes = measured;
    const uint64_t scratch_peak = snap.peak_bytes[static_cast<size_t>(MemoryCategory::kScratch)];
    report->scratch_peak_bytes = scratch_peak > base_scratch ? scratch_peak - base_scratch : 0;
    window.Finish(plan.plan.weight_bytes, report);
    report->tensors = std::move(reports);
  }
  LoadedWeights weights;
  weights.tensors = std::move(loaded);
  return weights;
}

}  // namespace relayout
