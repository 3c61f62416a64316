// Live relayout: converting weights that are already resident, and being
// served from, from the layout each has now into another, one tensor at a
// time, in place.
//
// The caller (the serving engine's scheduler) owns the timing: it converts
// a tensor only between forward steps, so no step ever reads a tensor while
// its bytes move, and it rebinds the tensor's matmul to the new layout
// before the next step. Every kernel reads every layout, and every matmul
// gives the same bits in every layout of a dtype, so a request served
// across the change sees the same numbers (docs/LAYOUTS.md).
//
// A tensor goes from A to B through its common layout: A -> common is the
// inverse of the transform common -> A, then common -> B. Both legs are
// permutations done in place; the planner (relayout_planner.h, with one
// worker) picks each leg's strategy under the budget, so the scratch held
// at any moment is one leg's, at most the budget: the resident bytes never
// change, and the peak is weights + max scratch <= weights + budget, as at
// start-up. Size-changing layouts (f32-widened) are refused: they change
// the tensor's bytes and dtype, which a resident model cannot do under
// load; they are chosen at load time (--layout) only.
//
// Thread safety: pure functions over values and caller-owned memory.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/model_spec.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/conversion/transform.h"
#include "engine/device/device.h"
#include "engine/memory/memory_ledger.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"

namespace relayout {

// A resident tensor as a live relayout sees it.
struct ResidentTensor {
  std::string name;  // internal name ("blk.3.attn_q")
  TensorRef ref;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Layout layout;   // the layout its bytes are in now
  DeviceRef data;  // its bytes: host memory or a device's buffer
};

// The layout a tensor should end in; LayoutPolicy::Choose has this shape.
using LayoutChooser =
    std::function<Layout(DType dtype, TensorRole role, std::span<const int64_t> shape)>;

// One tensor's conversion from its layout now into its target.
struct LiveRelayoutStep {
  size_t tensor = 0;  // index into the tensors planned
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Layout from;
  Layout to;
  // common -> from, run in kInverse (the undo), then common -> to, run in
  // kForward; a leg whose layouts are equal is the identity (kNone).
  TransformSpec undo;
  TransformSpec apply;
  Strategy undo_strategy = Strategy::kNone;
  Strategy apply_strategy = Strategy::kNone;
  uint64_t scratch_bytes = 0;  // the larger leg's
  uint64_t bytes = 0;          // the tensor's (unchanged)
};

struct LiveRelayoutPlan {
  // The tensors whose layout changes, in the order given.
  std::vector<LiveRelayoutStep> steps;
  uint64_t weight_bytes = 0;      // every resident tensor's bytes
  uint64_t bytes_to_convert = 0;  // the steps' tensors' bytes
  uint64_t budget_bytes = 0;
  uint64_t max_scratch_bytes = 0;  // <= budget_bytes
  // weights + max scratch: the bound the conversion keeps.
  uint64_t predicted_peak_bytes() const { return weight_bytes + max_scratch_bytes; }
};

// Plans moving every tensor into choose(dtype, role, shape). Tensors already
// there are left out. Errors, before anything moves: InvalidArgument naming
// the tensor for a target that does not apply to it or that changes its
// size (f32-widened), or for a tensor whose layout now is size-changed;
// the planner's ResourceExhausted naming the tensor and the budget it needs.
Result<LiveRelayoutPlan> PlanLiveRelayout(std::span<const ResidentTensor> tensors,
                                          const LayoutChooser& choose, uint64_t budget_bytes);

// Converts the tensor of `step` at `data` in place into step.to.
// In memory the host can address (the CPU device's weights) the transform
// runs there, its scratch drawn from host_ledger as kScratch; on a device
// that does not take host memory the tensor is downloaded into host
// staging (kStaging), converted there and uploaded back into the same
// buffer. *now (not null) is the layout the bytes are in when the call
// returns, OK or not: step.to on success; step.from, or the common layout
// when the second leg failed, otherwise (an upload that failed midway
// leaves the device's bytes unknown: DataLoss naming the tensor). Fills
// *report (may be null): name, layout, strategy, bytes, scratch, seconds.
Status ConvertResidentTensor(const LiveRelayoutStep& step, DeviceRef data, Device* device,
                             MemoryLedger* host_ledger, Layout* now,
                             TensorConversionReport* report);

}  // namespace relayout
