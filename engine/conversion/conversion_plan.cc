#include "engine/conversion/conversion_plan.h"

#include "engine/conversion/budget.h"

namespace relayout {

uint64_t WeightBytes(const Checkpoint& checkpoint) { return checkpoint.source->TotalBytes(); }

Result<ConversionPlan> PlanConversion(const Checkpoint& checkpoint, const LayoutPolicy& policy,
                                      const ConversionOptions& options) {
  ConversionPlan out;
  out.device = options.device;
  out.layout_mode = policy.mode_name();
  out.device_capacity = options.device_capacity;
  const std::vector<TensorInfo>& infos = checkpoint.source->tensors();

  PlanRequest request;
  request.budget_bytes = options.budget_bytes;
  request.workers = options.workers;
  for (const BoundTensor& bound : checkpoint.model.tensors) {
    const TensorInfo& info = infos[bound.source_index];
    TensorConversion t;
    t.source_index = bound.source_index;
    t.name = info.name;
    t.internal_name = bound.internal_name;
    t.ref = bound.ref;
    t.dtype = info.dtype;
    t.shape = info.shape;
    t.from = CommonLayoutFor(info.dtype);
    t.to = policy.Choose(info.dtype, bound.ref.role, info.shape);
    ASSIGN_OR_RETURN(t.spec, DescribeTransform(info.dtype, info.shape, t.from, t.to));
    // The device's own sizes (alignment, guards), so that the bound the plan
    // predicts is the one the device's ledger sees. Both sides map alike, so
    // a permutation keeps source == final.
    const auto device_bytes = [&](uint64_t n) {
      return options.alloc_size ? options.alloc_size(n) : n;
    };
    request.tensors.push_back(TensorToPlan{info.name, device_bytes(t.spec.to_bytes),
                                           device_bytes(t.spec.from_bytes), t.spec.strategies});
    out.tensors.push_back(std::move(t));
  }
  ASSIGN_OR_RETURN(out.plan, PlanRelayout(request));
  const uint64_t need = out.plan.weight_bytes + options.budget_bytes;
  if (options.device_capacity != UINT64_MAX &&
      (need < out.plan.weight_bytes || need > options.device_capacity)) {
    return Status::ResourceExhausted(
        StrCat("device ", options.device),
        StrCat("weights ", FormatBytes(out.plan.weight_bytes), " + budget ",
               FormatBytes(options.budget_bytes), " need ", FormatBytes(need), ", the device has ",
               FormatBytes(options.device_capacity), " available"));
  }
  return out;
}

}  // namespace relayout
