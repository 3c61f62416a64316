// ConversionPlan: for an opened checkpoint, the target layout of every tensor,
// its transform, and the memory-budget plan that orders and pairs the
// conversions (engine/conversion/relayout_planner.h).
//
// Everything here is decided from headers alone: nothing is allocated and no
// tensor byte is read. A budget that no plan fits, or weights plus budget
// that the device cannot hold, is an error here, before the executor starts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/conversion/layout_policy.h"
#include "engine/conversion/relayout_planner.h"
#include "engine/conversion/transform.h"
#include "engine/tensor/layout.h"

namespace relayout {

// One tensor's conversion, in the source's file order.
struct TensorConversion {
  size_t source_index = 0;  // into WeightSource::tensors()
  std::string name;         // the container's name
  std::string internal_name;
  TensorRef ref;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Layout from;  // the common layout of dtype
  Layout to;    // chosen by the policy
  TransformSpec spec;
};

struct ConversionPlan {
  std::vector<TensorConversion> tensors;  // tensors[i] is PlanRequest tensor i
  Plan plan;
  std::string device = "cpu";
  std::string layout_mode;       // "auto", "native" or a forced layout name
  uint64_t device_capacity = 0;  // bytes the device can give the weights and budget
};

struct ConversionOptions {
  uint64_t budget_bytes = 64ull << 20;
  uint32_t workers = 1;
  // Bytes the device can hold; weights + budget above it is refused.
  // MemoryLedger::kUnlimited disables the check.
  uint64_t device_capacity = UINT64_MAX;
  std::string device = "cpu";
  // The bytes the device takes for a final buffer of n bytes (Device::
  // AllocSize); empty: exactly n, as on the CPU.
  std::function<uint64_t(uint64_t)> alloc_size;
};

// Plans the conversion of every tensor of `checkpoint` to the layouts
// `policy` picks. Errors: ResourceExhausted naming the tensor and the
// smallest budget that would work (from the planner), or naming the device,
// the weights and the budget when they do not fit on the device.
Result<ConversionPlan> PlanConversion(const Checkpoint& checkpoint, const LayoutPolicy& policy,
                                      const ConversionOptions& options);

// Sum of the byte sizes of the checkpoint's tensors in their target layouts
// (what a percentage budget is a percentage of).
uint64_t WeightBytes(const Checkpoint& checkpoint);

}  // namespace relayout
