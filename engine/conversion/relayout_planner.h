// RelayoutPlanner: chooses, before anything is allocated, how every tensor is
// converted to its target layout and which conversions run together, so that
// the conversion's memory stays within the weights plus a declared budget B.
// A pure function of its input: it knows tensors only by name, sizes and the
// strategies their transforms offer (see docs/PLANNER.md).
//
// Memory model (what "peak" means below):
//   - Conversions run in waves. A wave starts when every conversion of the
//     previous wave has finished; inside a wave up to `workers` conversions run
//     at once.
//   - When a tensor's conversion starts, its final buffer (final_bytes) is
//     allocated and stays allocated for good: resident weights only grow, up
//     to weight_bytes = the sum of final_bytes.
//   - During its conversion a tensor also holds scratch_bytes of its chosen
//     strategy (for allocate-then-free, the source buffer); scratch is freed
//     when the conversion ends.
//   - Nothing else is counted (file reads go straight into the buffers above).
//   So the memory in use during wave k is
//     sum(final_bytes of waves 0..k) + sum(scratch_bytes of wave k)
//   and its maximum over k, timeline_peak_bytes, is at most
//     predicted_peak_bytes = weight_bytes + max_scratch_bytes <= weight_bytes + B.
//   Any executor that keeps the scratch of concurrently running conversions
//   within B (waves or not) stays within weight_bytes + B; one that honours
//   the waves also stays within predicted_peak_bytes.
//
// Policy:
//   - Strategy: per tensor, the lowest-cost candidate whose scratch fits in B;
//     ties go to the lower Strategy enumerator, then the smaller scratch, then
//     the earlier candidate. A faster strategy is preferred even when its larger
//     scratch leaves room for fewer concurrent conversions: the budget is the
//     contract, parallelism is a bonus on top of it.
//   - Order: the input order (the file's order, for sequential reads).
//   - Waves: next-fit in that order; a tensor joins the current wave while the
//     wave has fewer than `workers` conversions and its scratch sum stays
//     within B; otherwise it opens the next wave. Waves are contiguous runs of
//     the order, so the file is still read front to back.
//
// Thread safety: PlanRelayout is a pure function; concurrent calls are safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/conversion/strategy.h"

namespace relayout {

struct TensorToPlan {
  std::string name;
  uint64_t final_bytes = 0;             // size in the target layout; stays resident
  uint64_t source_bytes = 0;            // bytes read from the file; == final_bytes for permutations
  std::vector<StrategyOption> options;  // REQUIRES: not empty
};

struct PlanRequest {
  std::vector<TensorToPlan> tensors;  // in file order
  uint64_t budget_bytes = 0;          // B
  uint32_t workers = 1;               // W; REQUIRES: >= 1
};

struct PlanStep {
  uint64_t tensor_index = 0;  // into PlanRequest::tensors
  std::string name;
  Strategy strategy = Strategy::kNone;
  uint64_t scratch_bytes = 0;
  uint64_t final_bytes = 0;
  uint64_t source_bytes = 0;
  double cost = 0.0;
  uint32_t wave = 0;  // steps with the same wave may run concurrently
  uint32_t slot = 0;  // position within its wave, in [0, workers)

  bool operator==(const PlanStep&) const = default;
};

struct Plan {
  // Execution order; waves are contiguous and numbered 0, 1, 2... in order.
  std::vector<PlanStep> steps;
  uint32_t num_waves = 0;
  uint64_t budget_bytes = 0;
  uint32_t workers = 0;
  uint64_t weight_bytes = 0;          // sum of final_bytes
  uint64_t source_bytes = 0;          // sum of source_bytes: what is read from the file
  uint64_t max_scratch_bytes = 0;     // max over waves of the wave's scratch sum; <= budget
  uint64_t predicted_peak_bytes = 0;  // weight_bytes + max_scratch_bytes
  uint64_t timeline_peak_bytes = 0;   // exact peak of the model above; <= predicted_peak_bytes
  double predicted_cost = 0.0;        // sum over waves of the wave's largest cost

  bool operator==(const Plan&) const = default;
};

// Plans the conversion of `request.tensors` under `request.budget_bytes`.
// Deterministic: equal requests give equal plans.
// Errors, all before anything is allocated:
//   InvalidArgument "plan: ..." for a malformed request (no workers, a tensor
//     without options, a negative or non-finite cost, kNone with
//     source_bytes != final_bytes, kAllocateThenFree with scratch below
//     source_bytes, byte sums that overflow 64 bits);
//   ResourceExhausted "plan: tensor <name> needs at least <N> bytes of budget
//     (<FormatBytes(N)>), have <B>" when some tensor has no option whose
//     scratch fits in B. N is the smallest budget for which the whole request
//     is feasible (the max over tensors of their smallest scratch) and <name>
//     the first tensor whose smallest scratch is N.
Result<Plan> PlanRelayout(const PlanRequest& request);

}  // namespace relayout
