#include "engine/conversion/relayout_planner.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <tuple>
#include <utility>

#include "engine/conversion/budget.h"

namespace relayout {
namespace {

Status ValidateTensor(const TensorToPlan& tensor) {
  const std::string subject = StrCat("plan: tensor ", tensor.name);
  if (tensor.options.empty()) return Status::InvalidArgument(subject, "has no strategy");
  for (const StrategyOption& option : tensor.options) {
    const std::string_view name = StrategyName(option.strategy);
    if (!std::isfinite(option.cost) || option.cost < 0) {
      return Status::InvalidArgument(subject, StrCat("strategy ", name, " has cost ", option.cost,
                                                     "; costs must be finite and non-negative"));
    }
    if (option.strategy == Strategy::kNone && tensor.source_bytes != tensor.final_bytes) {
      return Status::InvalidArgument(
          subject, StrCat("strategy none reads the tensor as is, but source_bytes ",
                          tensor.source_bytes, " != final_bytes ", tensor.final_bytes));
    }
    if (option.strategy == Strategy::kAllocateThenFree &&
        option.scratch_bytes < tensor.source_bytes) {
      return Status::InvalidArgument(
          subject, StrCat("strategy allocate_then_free declares ", option.scratch_bytes,
                          " scratch bytes, below its source buffer of ", tensor.source_bytes));
    }
  }
  return Status::OK();
}

uint64_t MinScratch(const TensorToPlan& tensor) {
  uint64_t min_scratch = tensor.options.front().scratch_bytes;
  for (const StrategyOption& option : tensor.options) {
    min_scratch = std::min(min_scratch, option.scratch_bytes);
  }
  return min_scratch;
}

// The cheapest option whose scratch fits in the budget, ties broken as the
// header says. REQUIRES: at least one option fits.
const StrategyOption& ChooseOption(const TensorToPlan& tensor, uint64_t budget) {
  const StrategyOption* best = nullptr;
  auto key = [](const StrategyOption& o) {
    return std::make_tuple(o.cost, static_cast<int>(o.strategy), o.scratch_bytes);
  };
  for (const StrategyOption& option : tensor.options) {
    if (option.scratch_bytes > budget) continue;
    // Strict comparison keeps the earliest of equal candidates.
    if (best == nullptr || key(option) < key(*best)) best = &option;
  }
  return *best;
}

}  // namespace

Result<Plan> PlanRelayout(const PlanRequest& request) {
  if (request.workers == 0) return Status::InvalidArgument("plan", "workers must be at least 1");
  const uint64_t budget = request.budget_bytes;

  Plan plan;
  plan.budget_bytes = budget;
  plan.workers = request.workers;
  for (const TensorToPlan& tensor : request.tensors) {
    RETURN_IF_ERROR(ValidateTensor(tensor));
    if (__builtin_add_overflow(plan.weight_bytes, tensor.final_bytes, &plan.weight_bytes) ||
        __builtin_add_overflow(plan.source_bytes, tensor.source_bytes, &plan.source_bytes)) {
      return Status::InvalidArgument("plan", "tensor bytes sum past 64 bits");
    }
  }

  // Feasibility is decided by the tensor that needs the most budget at its
  // cheapest-in-memory option: every other tensor then fits as well.
  uint64_t needed = 0;
  const TensorToPlan* neediest = nullptr;
  for (const TensorToPlan& tensor : request.tensors) {
    const uint64_t min_scratch = MinScratch(tensor);
    if (neediest == nullptr || min_scratch > needed) {
      needed = min_scratch;
      neediest = &tensor;
    }
  }
  if (neediest != nullptr && needed > budget) {
    return Status::ResourceExhausted(
        "plan", StrCat("tensor ", neediest->name, " needs at least ", needed, " bytes of budget (",
                       FormatBytes(needed), "), have ", budget));
  }

  plan.steps.reserve(request.tensors.size());
  uint64_t wave_scratch = 0;
  uint32_t wave_size = 0;
  uint32_t wave = 0;
  double wave_cost = 0.0;
  uint64_t resident_finals = 0;  // <= weight_bytes, so no overflow
  // Called when a wave is complete: fold it into the plan's totals.
  auto close_wave = [&]() -> Status {
    plan.max_scratch_bytes = std::max(plan.max_scratch_bytes, wave_scratch);
    uint64_t in_use = 0;
    if (__builtin_add_overflow(resident_finals, wave_scratch, &in_use)) {
      return Status::InvalidArgument("plan", "peak memory past 64 bits");
    }
    plan.timeline_peak_bytes = std::max(plan.timeline_peak_bytes, in_use);
    plan.predicted_cost += wave_cost;
    return Status::OK();
  };
  for (size_t i = 0; i < request.tensors.size(); ++i) {
    const TensorToPlan& tensor = request.tensors[i];
    const StrategyOption& option = ChooseOption(tensor, budget);
    // wave_scratch <= budget, so budget - wave_scratch does not wrap.
    const bool fits = wave_size < request.workers && option.scratch_bytes <= budget - wave_scratch;
    if (wave_size > 0 && !fits) {
      RETURN_IF_ERROR(close_wave());
      ++wave;
      wave_size = 0;
      wave_scratch = 0;
      wave_cost = 0.0;
    }
    PlanStep step;
    step.tensor_index = i;
    step.name = tensor.name;
    step.strategy = option.strategy;
    step.scratch_bytes = option.scratch_bytes;
    step.final_bytes = tensor.final_bytes;
    step.source_bytes = tensor.source_bytes;
    step.cost = option.cost;
    step.wave = wave;
    step.slot = wave_size;
    plan.steps.push_back(std::move(step));
    ++wave_size;
    wave_scratch += option.scratch_bytes;
    wave_cost = std::max(wave_cost, option.cost);
    resident_finals += tensor.final_bytes;
  }
  if (wave_size > 0) {
    RETURN_IF_ERROR(close_wave());
    plan.num_waves = wave + 1;
  }
  if (__builtin_add_overflow(plan.weight_bytes, plan.max_scratch_bytes,
                             &plan.predicted_peak_bytes)) {
    return Status::InvalidArgument("plan", "peak memory past 64 bits");
  }
  return plan;
}

}  // namespace relayout
