// LayoutPolicy: the preferred layout of each tensor, from the device's
// capabilities, the tensor's dtype, role and shape, and an override.
//
// Auto rules (CPU; the per-ISA parameters are justified in layout_policy.cc):
//   - only 2-D matmul weights (IsMatmulWeight) change layout; embeddings
//     (read by row gather), norms, biases and anything 1-D stay native;
//   - F32/F16: rowgroup-g16k16 with AVX-512F, rowgroup-g8k8 with AVX2+FMA
//     (F16 also needs F16C), else native;
//   - BF16: bf16-kpair-g16 with AVX-512 BF16, else as F32;
//   - Q8_0/Q4_0/Q4_1: q-rowgroup-g8 with AVX2+FMA+F16C, else native;
//   - a tensor with fewer rows than the group is all tail: native.
// Auto rules (CUDA GPU, compute capability 8.0 and up: the backend's
// kernels are built for sm_80 and sm_90a):
//   - Q8_0/Q4_0/Q4_1: q-rowgroup-g8, whose 8-row group blocks are whole
//     16-byte units (9 for Q4_0), so a warp's lanes read consecutive group
//     blocks with aligned 16-byte loads; the native blocks (18 bytes for
//     Q4_0) allow only 2-byte-aligned loads;
//   - F32/F16/BF16: native: row-major [out, in] is already the "TN" operand
//     cuBLASLt wants, no transpose needed;
//   - an older GPU keeps everything native.
// Override (the --layout flag): "auto" applies the rules; "native" keeps every
// tensor in its common layout; a layout name forces exactly that layout on
// every 2-D matmul weight whose dtype it applies to (CheckLayoutApplies),
// whatever the CPU supports (the reference kernels read every layout), and
// leaves every other tensor native.
//
// Thread safety: immutable after Create; Choose may be called concurrently.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"
#include "engine/tensor/tensor_role.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout {

// What the policy knows of the device the weights go to.
struct DeviceCaps {
  kernels::CpuFeatures cpu;
  // The CUDA compute capability when the weights go to a GPU; 0 otherwise
  // (the CPU, or the host-reference device, which runs the CPU's kernels).
  int gpu_compute_major = 0;
  int gpu_compute_minor = 0;
};

class LayoutPolicy {
 public:
  // `override_name`: "auto", "native", or a layout name. InvalidArgument
  // naming the value and listing the valid ones otherwise.
  static Result<LayoutPolicy> Create(const DeviceCaps& caps, std::string_view override_name);

  // The layout for one tensor (shape outermost first). Always a layout that
  // CheckLayoutApplies accepts for (dtype, shape); the common layout when in
  // doubt.
  Layout Choose(DType dtype, TensorRole role, std::span<const int64_t> shape) const;

  const DeviceCaps& caps() const { return caps_; }
  // "auto", "native", or the forced layout's name.
  std::string mode_name() const;

 private:
  enum class Mode { kAuto, kNative, kForced };
  LayoutPolicy(const DeviceCaps& caps, Mode mode, Layout forced)
      : caps_(caps), mode_(mode), forced_(forced) {}
  Layout ChooseAuto(DType dtype) const;
  Layout ChooseAutoGpu(DType dtype) const;

  DeviceCaps caps_;
  Mode mode_;
  Layout forced_;
};

// One tensor's decision, for summaries.
struct TensorLayoutChoice {
  TensorRole role = TensorRole::kOther;
  DType dtype = DType::kF32;
  Layout layout;
};

// One line per (role, dtype, layout) class, in role order, common layouts
// printed as "native":
//   "attn_q Q8_0 -> q-rowgroup-g8 (30 tensors)\nattn_norm F32 -> native (30 tensors)\n..."
std::string SummarizeLayoutChoices(std::span<const TensorLayoutChoice> choices);

}  // namespace relayout
