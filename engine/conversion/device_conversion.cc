#include "engine/conversion/device_conversion.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "engine/device/device_weight.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

// A tensor that needs no conversion streams through staging in chunks of
// this size; one that does is converted whole in staging.
constexpr uint64_t kStagingChunkBytes = uint64_t{16} << 20;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Two staging chunks for the streamed tensors, pinned when the device offers
// it, allocated at the first streamed tensor and kept to the end: chunk k
// is read into one while chunk k - 1 uploads (asynchronously, on a device
// that can) from the other. Each chunk's event says when its upload is done
// and the chunk may be overwritten; the ring waits for both before it goes.
struct StagingRing {
  Device* device = nullptr;
  StagingBuffer slot[2];
  DeviceEvent uploaded[2];
  uint64_t chunk = 0;

  ~StagingRing() {
    for (DeviceEvent& e : uploaded) {
      if (device != nullptr) (void)device->Wait(e);
    }
  }

  Status Ensure(Device* d, MemoryLedger* host_ledger, uint64_t bytes) {
    if (chunk >= bytes || chunk == kStagingChunkBytes) return Status::OK();
    if (device != nullptr) {
      for (DeviceEvent& e : uploaded) RETURN_IF_ERROR(device->Wait(e));
    }
    device = d;
    slot[0] = StagingBuffer();
    slot[1] = StagingBuffer();
    chunk = 0;
    const uint64_t size = std::min(bytes, kStagingChunkBytes);
    for (int i = 0; i < 2; ++i) {
      ASSIGN_OR_RETURN(slot[i], d->AllocateStaging(size, host_ledger));
      ASSIGN_OR_RETURN(uploaded[i], d->CreateEvent());
    }
    chunk = size;
    return Status::OK();
  }
};

// Streams a tensor that needs no conversion (or is converted after, on the
// device) through the ring into its final buffer.
Status StreamOntoDevice(const WeightSource& source, const TensorConversion& t, Device* device,
                        MemoryLedger* host_ledger, StagingRing* ring, DeviceBuffer& buffer,
                        const std::string& what) {
  const uint64_t total = t.spec.to_bytes;
  if (total == 0) return Status::OK();
  RETURN_IF_ERROR(ring->Ensure(device, host_ledger, total));
  const uint64_t chunk = ring->chunk;
  for (uint64_t k = 0, offset = 0; offset < total; ++k, offset += chunk) {
    const size_t i = k % 2;
    const auto part = ring->slot[i].span().first(std::min(chunk, total - offset));
    RETURN_IF_ERROR(device->Wait(ring->uploaded[i]).WithPrefix(what));
    RETURN_IF_ERROR(source.ReadTensorRange(t.source_index, offset, part));
    // Asynchronous copies need pinned memory; a slot that fell back to
    // ordinary memory uploads synchronously.
    RETURN_IF_ERROR((ring->slot[i].pinned() ? device->UploadAsync(buffer, offset, part)
                                            : device->Upload(buffer, offset, part))
                        .WithPrefix(what));
    RETURN_IF_ERROR(device->Record(ring->uploaded[i]).WithPrefix(what));
  }
  return Status::OK();
}

// The weight as the device would hold it after an in-place transform, when
// the device can do it with no more scratch than the plan gave the step;
// its scratch bytes in *scratch.
std::optional<DeviceMatmulWeight> DeviceTransformTarget(const TensorConversion& t,
                                                        const PlanStep& step, Device* device,
                                                        const DeviceBuffer& buffer,
                                                        uint64_t* scratch) {
  if (step.strategy == Strategy::kNone || !t.spec.is_permutation || !t.from.IsCommon()) {
    return std::nullopt;
  }
  Result<DeviceMatmulWeight> w = MatmulWeightFor(t.name, t.dtype, t.shape, t.to, buffer.ref());
  if (!w.ok()) return std::nullopt;
  const std::optional<uint64_t> need = device->TransformScratchBytes(*w);
  if (!need || *need > step.scratch_bytes) return std::nullopt;
  *scratch = *need;
  return *w;
}

Status ConvertOntoDevice(const WeightSource& source, const TensorConversion& t,
                         const PlanStep& step, Device* device, MemoryLedger* host_ledger,
                         StagingRing* ring, DeviceTransforms transforms, DeviceTensor* out,
                         TensorConversionReport* report) {
  const std::string what = StrCat("tensor ", t.name);
  ASSIGN_OR_RETURN(DeviceBuffer buffer,
                   device->Allocate(t.spec.to_bytes, MemoryCategory::kWeights, what));
  LoadedTensor staged;
  uint64_t device_scratch = 0;
  const std::optional<DeviceMatmulWeight> target =
      transforms == DeviceTransforms::kWhenSupported
          ? DeviceTransformTarget(t, step, device, buffer, &device_scratch)
          : std::nullopt;
  if (target) {
    // In its common layout into the final buffer, then permuted there.
    const auto start = Clock::now();
    RETURN_IF_ERROR(StreamOntoDevice(source, t, device, host_ledger, ring, buffer, what));
    DeviceBuffer scratch;
    if (device_scratch > 0) {
      ASSIGN_OR_RETURN(scratch, device->Allocate(device_scratch, MemoryCategory::kScratch,
                                                 StrCat(what, " scratch")));
    }
    if (Status s = device->TransformInPlace(*target, scratch.ref()); !s.ok()) {
      return s.WithPrefix(what);
    }
    DescribeConvertedTensor(t, step, report, &staged);
    report->strategy = Strategy::kBlockedInPlace;
    report->scratch_bytes = device_scratch;
    report->on_device = true;
    report->seconds = SecondsSince(start);
  } else if (step.strategy == Strategy::kNone) {
    // Nothing to convert (the device wants the common layout).
    const auto start = Clock::now();
    RETURN_IF_ERROR(StreamOntoDevice(source, t, device, host_ledger, ring, buffer, what));
    DescribeConvertedTensor(t, step, report, &staged);
    report->seconds = SecondsSince(start);
  } else {
    RETURN_IF_ERROR(ConvertTensorOnHost(source, t, step, host_ledger, MemoryCategory::kStaging,
                                        &staged, report));
    const auto upload_start = Clock::now();
    if (Status s = device->Upload(buffer, 0, staged.buffer.span()); !s.ok()) {
      return s.WithPrefix(what);
    }
    report->seconds += SecondsSince(upload_start);
  }
  out->name = std::move(staged.name);
  out->ref = staged.ref;
  out->dtype = staged.dtype;
  out->shape = std::move(staged.shape);
  out->layout = staged.layout;
  out->buffer = std::move(buffer);
  return Status::OK();
}

}  // namespace

Result<DeviceWeights> ExecuteConversionOnDevice(
    const WeightSource& source, const ConversionPlan& plan, Device* device,
    MemoryLedger* host_ledger, ConversionObserver* observer, const std::atomic<bool>* cancel,
    RelayoutReport* report, DeviceTransforms transforms) {
  if (device == nullptr || host_ledger == nullptr) {
    return Status::InvalidArgument("relayout", "no device or no host ledger");
  }
  const ConversionWindow window;
  MemoryLedger& ledger = device->ledger();
  const uint64_t base_bytes = ledger.total_current();
  ledger.ResetPeaks();
  host_ledger->ResetPeaks();
  const uint64_t base_scratch = host_ledger->current(MemoryCategory::kScratch);
  const uint64_t base_staging = host_ledger->current(MemoryCategory::kStaging);
  const std::vector<PlanStep>& steps = plan.plan.steps;
  // Buffers already on the device are freed with `converted` on an error.
  std::vector<DeviceTensor> converted(plan.tensors.size());
  std::vector<TensorConversionReport> reports(steps.size());
  StagingRing ring;
  for (size_t s = 0; s < steps.size(); ++s) {
    if (cancel != nullptr && cancel->load()) return Status::Cancelled("relayout", "interrupted");
    const size_t ti = static_cast<size_t>(steps[s].tensor_index);
    RETURN_IF_ERROR(ConvertOntoDevice(source, plan.tensors[ti], steps[s], device, host_ledger,
                                      &ring, transforms, &converted[ti], &reports[s]));
    if (observer != nullptr)
      observer->OnTensorConverted(reports[s], s + 1, steps.size(), ledger.Snapshot());
  }
  // The weights as the device holds them: each buffer's AllocSize
  // (alignment, and the host-reference plugin's guard bytes). A plan made
  // for this device (ConversionOptions::alloc_size) counted the same.
  uint64_t device_weights = 0;
  for (const DeviceTensor& t : converted) device_weights += device->AllocSize(t.buffer.size());
  const uint64_t measured = ledger.total_peak() - base_bytes;
  if (measured > device_weights + plan.plan.budget_bytes) {
    return Status::Internal(
        "relayout", StrCat("device peak ", measured, " bytes broke the bound of ", device_weights,
                           " + ", plan.plan.budget_bytes));
  }
  if (report != nullptr) {
    const MemoryLedgerSnapshot host = host_ledger->Snapshot();
    const auto peak_above = [&](MemoryCategory c, uint64_t base) {
      const uint64_t peak = host.peak_bytes[static_cast<size_t>(c)];
      return peak > base ? peak - base : 0;
    };
    report->device = device->spec();
    report->workers = 1;
    report->weights_bytes = device_weights;
    report->budget_bytes = plan.plan.budget_bytes;
    report->predicted_peak_bytes = plan.plan.predicted_peak_bytes;
    report->measured_peak_bytes = measured;
    report->scratch_peak_bytes = ledger.peak(MemoryCategory::kScratch);
    report->host_scratch_peak_bytes = peak_above(MemoryCategory::kScratch, base_scratch);
    report->staging_peak_bytes = peak_above(MemoryCategory::kStaging, base_staging);
    window.Finish(plan.plan.weight_bytes, report);
    report->tensors = std::move(reports);
  }
  DeviceWeights weights;
  weights.tensors = std::move(converted);
  return weights;
}

}  // namespace relayout
