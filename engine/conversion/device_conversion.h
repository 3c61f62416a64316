// ExecuteConversionOnDevice: a ConversionPlan run onto a Device. For each
// tensor in plan order, its final buffer is allocated on the device first,
// then one of:
//   - streamed: a tensor the device wants in its common layout (as GPUs
//     want F16/BF16 matrices) goes from the checkpoint through two 16 MiB
//     staging chunks, the next read while the last uploads;
//   - converted in place on the device: when the device transforms that
//     layout itself (Device::TransformScratchBytes) with no more scratch
//     than the plan gave the step, the tensor streams in its common layout
//     into its final buffer and the device permutes it there, its scratch
//     a device buffer (kScratch) freed right after;
//   - staged through host: otherwise it is read whole into host staging,
//     converted there with the planned strategy (its scratch on the host)
//     and uploaded; device scratch 0.
// Either way the device's peak is within weights + budget: the planner
// bounded every step's scratch by the budget.
// The two streaming chunks are pinned host memory when the device offers
// it (Device::AllocateStaging), allocated once and kept for the whole
// conversion; a converted tensor's staging is the tensor itself. Both are
// counted in the host ledger as kStaging (so the staging peak is at most
// 32 MiB, or the largest converted tensor plus the chunks), the host
// scratch as kScratch.
//
// The bytes on the device equal what ExecuteConversion leaves in host
// memory for the same plan (tested). On any error (the device's memory,
// a read, an upload, a cancel) every buffer made so far is freed before
// the error returns: nothing leaks, on the device or the host.
//
// Thread safety: as ExecuteConversion; tensors are converted one at a time,
// with one reader thread per streamed tensor.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/checkpoint/weight_source.h"
#include "engine/conversion/conversion_plan.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/device/device.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {

// One converted tensor on a device.
struct DeviceTensor {
  std::string name;  // internal name ("blk.3.attn_q")
  TensorRef ref;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Layout layout;
  DeviceBuffer buffer;
};

struct DeviceWeights {
  std::vector<DeviceTensor> tensors;  // in file order
};

// REQUIRES: device and host_ledger outlive the call (and device the
// result). The report, when given, has the device's spec, the weights as
// the device holds them (each buffer's AllocSize) as weights_bytes, the
// device ledger's peak as measured_peak_bytes, the host scratch peak as
// scratch_peak_bytes and the staging peak as staging_peak_bytes.
// Errors: the device's (ResourceExhausted naming the tensor, ...), the
// source's, Cancelled when *cancel turns true between tensors.
// Whether a tensor that the device can transform is converted there.
enum class DeviceTransforms : uint8_t {
  kWhenSupported,  // in place on the device when it can (the default)
  kNever,          // always staged through host
};

Result<DeviceWeights> ExecuteConversionOnDevice(
    const WeightSource& source, const ConversionPlan& plan, Device* device,
    MemoryLedger* host_ledger, ConversionObserver* observer, const std::atomic<bool>* cancel,
    RelayoutReport* report, DeviceTransforms transforms = DeviceTransforms::kWhenSupported);

}  // namespace relayout
