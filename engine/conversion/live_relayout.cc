#include "engine/conversion/live_relayout.h"

#include <algorithm>
#include <chrono>

#include "engine/conversion/relayout_planner.h"
#include "engine/memory/host_buffer.h"

namespace relayout {

namespace {

using Clock = std::chrono::steady_clock;

Result<TransformSpec> Leg(const ResidentTensor& t, const Layout& preferred) {
  const Layout common = CommonLayoutFor(t.dtype);
  Result<TransformSpec> described = DescribeTransform(t.dtype, t.shape, common, preferred);
  if (!described.ok()) return described.status().WithPrefix(t.name);
  TransformSpec spec = std::move(*described);
  if (!spec.is_permutation) {
    return Status::InvalidArgument(
        t.name, StrCat(preferred.Name(),
                       " changes the tensor's size; it is chosen at load (--layout) only, not "
                       "while serving"));
  }
  return spec;
}

std::string LayoutLabel(const Layout& layout) {
  return layout.IsCommon() ? "native" : layout.Name();
}

}  // namespace

Result<LiveRelayoutPlan> PlanLiveRelayout(std::span<const ResidentTensor> tensors,
                                          const LayoutChooser& choose, uint64_t budget_bytes) {
  LiveRelayoutPlan plan;
  plan.budget_bytes = budget_bytes;
  PlanRequest request;
  request.budget_bytes = budget_bytes;
  request.workers = 1;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const ResidentTensor& t = tensors[i];
    plan.weight_bytes += t.data.size;
    const Layout to = choose(t.dtype, t.ref.role, t.shape);
    if (to == t.layout) continue;
    LiveRelayoutStep step;
    step.tensor = i;
    step.name = t.name;
    step.dtype = t.dtype;
    step.shape = t.shape;
    step.from = t.layout;
    step.to = to;
    ASSIGN_OR_RETURN(step.undo, Leg(t, t.layout));
    ASSIGN_OR_RETURN(step.apply, Leg(t, to));
    step.bytes = step.apply.to_bytes;
    // Each leg is a step of its own for the planner: they run one after
    // the other, so only one leg's scratch is held at a time.
    request.tensors.push_back({StrCat(t.name, " (", LayoutLabel(t.layout), " -> native)"),
                               step.bytes, step.bytes, step.undo.strategies});
    request.tensors.push_back({StrCat(t.name, " (native -> ", LayoutLabel(to), ")"), step.bytes,
                               step.bytes, step.apply.strategies});
    plan.bytes_to_convert += step.bytes;
    plan.steps.push_back(std::move(step));
  }
  if (plan.steps.empty()) return plan;
  ASSIGN_OR_RETURN(const Plan legs, PlanRelayout(request));
  // With one worker the planner keeps the request's order: legs 2k, 2k+1.
  for (const PlanStep& leg : legs.steps) {
    LiveRelayoutStep& step = plan.steps[leg.tensor_index / 2];
    if (leg.tensor_index % 2 == 0) {
      step.undo_strategy = leg.strategy;
    } else {
      step.apply_strategy = leg.strategy;
    }
    step.scratch_bytes = std::max(step.scratch_bytes, leg.scratch_bytes);
  }
  plan.max_scratch_bytes = legs.max_scratch_bytes;
  return plan;
}

Status ConvertResidentTensor(const LiveRelayoutStep& step, DeviceRef data, Device* device,
                             MemoryLedger* host_ledger, Layout* now,
                             TensorConversionReport* report) {
  const auto start = Clock::now();
  *now = step.from;
  if (data.size < step.bytes) {
    return Status::InvalidArgument(step.name,
                                   StrCat(data.size, " bytes resident, expected ", step.bytes));
  }
  // The CPU's weights are converted where they are; a plugin device's go
  // through the device interface, even when its memory is the host's (the
  // host-reference plugin), as a GPU's must.
  const bool host_addressable =
      data.device == nullptr || (device->accepts_host_memory() && data.host != nullptr);
  HostBuffer staging;
  std::span<std::byte> bytes;
  if (host_addressable) {
    bytes = std::span(data.bytes(), static_cast<size_t>(step.bytes));
  } else {
    ASSIGN_OR_RETURN(staging,
                     HostBuffer::Allocate(host_ledger, MemoryCategory::kStaging, step.bytes));
    RETURN_IF_ERROR(device->Download(data, staging.span()).WithPrefix(step.name));
    bytes = staging.span();
  }
  {
    ASSIGN_OR_RETURN(HostBuffer scratch, HostBuffer::Allocate(host_ledger, MemoryCategory::kScratch,
                                                              step.scratch_bytes));
    if (step.undo_strategy != Strategy::kNone) {
      RETURN_IF_ERROR(
          ApplyTransform(step.undo, step.undo_strategy, bytes, scratch.span(), Direction::kInverse)
              .WithPrefix(step.name));
    }
    if (host_addressable) *now = CommonLayoutFor(step.dtype);
    if (step.apply_strategy != Strategy::kNone) {
      RETURN_IF_ERROR(ApplyTransform(step.apply, step.apply_strategy, bytes, scratch.span(),
                                     Direction::kForward)
                          .WithPrefix(step.name));
    }
  }  // scratch released before the upload
  if (!host_addressable) {
    const Status uploaded = device->Upload(data, bytes);
    if (!uploaded.ok()) {
      return Status::DataLoss(step.name,
                              StrCat("upload after relayout failed, its bytes on ", device->spec(),
                                     " are unknown: ", uploaded.message()));
    }
  }
  *now = step.to;
  if (report != nullptr) {
    report->name = step.name;
    report->internal_name = step.name;
    report->dtype = step.dtype;
    report->shape = step.shape;
    report->layout = LayoutLabel(step.to);
    report->strategy =
        step.apply_strategy != Strategy::kNone ? step.apply_strategy : step.undo_strategy;
    report->bytes = step.bytes;
    report->scratch_bytes = step.scratch_bytes;
    report->seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report->on_device = false;
  }
  return Status::OK();
}

}  // namespace relayout
