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
// Override (the --layout flag), grammar BASE[,ENTRY]...:
//   BASE: "auto" applies the rules; "native" keeps every tensor in its
//     common layout; a layout name forces exactly that layout on every 2-D
//     matmul weight whose dtype it applies to (CheckLayoutApplies), whatever
//     the CPU supports (the reference kernels read every layout), and leaves
//     every other tensor native. ("tuned" is a BASE only for PrepareLoad,
//     which measures (layout_tuner.h) and builds the policy itself; Create
//     refuses it.)
//   ENTRY: CLASS=LAYOUT or CLASS:DTYPE=LAYOUT, e.g. "ffn_down=rowgroup-g8k8"
//     or "ffn_down:Q4_0=q-rowgroup-g8", where CLASS is a TensorClass name,
//     DTYPE a dtype name (DTypeName) and LAYOUT "native" or a layout name.
//     The entry sets the layout of that class's weights (of that dtype only,
//     with DTYPE). It applies only where CheckLayoutApplies accepts the
//     tensor's dtype and shape; elsewhere the BASE decides. A tensor takes
//     the entry of its (class, dtype) if any, else its class's. Entries are
//     read left to right and a later one replaces an earlier one with the
//     same key; a class-wide entry also drops the earlier (class, DTYPE)
//     entries of its class, so "the last word wins" for every tensor.
// The DTYPE form exists because measured choices (the tuner's) are per
// (class, dtype): a model may mix Q4_0 and Q6_K in one class, and one
// layout name rarely applies to both. mode_name() prints the base and the
// entries in this grammar, so it round-trips through Create.
//
// Thread safety: immutable after Create; Choose may be called concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// The classes of matmul weights whose layouts can be chosen apart: each is
// read by its own matmul of one shape per layer.
enum class TensorClass : uint8_t {
  kAttnQkv,     // attn_q, attn_k, attn_v
  kAttnOutput,  // attn_output
  kFfnGateUp,   // ffn_gate, ffn_up
  kFfnDown,     // ffn_down
  kOutput,      // output (the LM head)
};
inline constexpr int kNumTensorClasses = 5;

// The class of a matmul weight's role; nullopt for every other role
// (embeddings, norms, biases, ...).
std::optional<TensorClass> TensorClassOf(TensorRole role);
// "attn_qkv", "attn_output", "ffn_gate_up", "ffn_down", "output": stable,
// used by --layout, reports and metrics labels.
std::string_view TensorClassName(TensorClass tensor_class);
// The inverse of TensorClassName; nullopt for an unknown name.
std::optional<TensorClass> TensorClassFromName(std::string_view name);

// One ENTRY of the --layout grammar. A common `layout` (row-major or
// gguf-blocks) means "native".
struct LayoutOverride {
  TensorClass tensor_class = TensorClass::kAttnQkv;
  std::optional<DType> dtype;  // nullopt: every dtype of the class
  Layout layout;

  // "ffn_down=rowgroup-g8k8", "ffn_down:Q4_0=native".
  std::string ToString() const;
};

class LayoutPolicy {
 public:
  // `override_name`: the --layout grammar above. InvalidArgument naming the
  // offending part and listing the valid values otherwise (an unknown base
  // or layout, class or dtype, or an entry without "=").
  static Result<LayoutPolicy> Create(const DeviceCaps& caps, std::string_view override_name);

  // Appends an entry, with the grammar's replacement rules (what the tuner
  // does with its measured choices). The layout must be a layout the
  // caller checked; a common one means native.
  void SetOverride(const LayoutOverride& entry);
  // The entries in effect, in the order they were set.
  const std::vector<LayoutOverride>& overrides() const { return overrides_; }

  // The layout for one tensor (shape outermost first). Always a layout that
  // CheckLayoutApplies accepts for (dtype, shape); the common layout when in
  // doubt.
  Layout Choose(DType dtype, TensorRole role, std::span<const int64_t> shape) const;

  const DeviceCaps& caps() const { return caps_; }
  // The base ("auto", "native", or the forced layout's name) followed by
  // ",ENTRY" for each override: "auto,ffn_down:Q4_0=q-rowgroup-g8".
  // Create(caps, mode_name()) gives an equal policy.
  std::string mode_name() const;
  // The base alone, without the entries.
  std::string base_name() const;

 private:
  enum class Mode { kAuto, kNative, kForced };
  LayoutPolicy(const DeviceCaps& caps, Mode mode, Layout forced)
      : caps_(caps), mode_(mode), forced_(forced) {}
  Layout ChooseAuto(DType dtype) const;
  Layout ChooseAutoGpu(DType dtype) const;
  Layout ChooseBase(DType dtype, TensorRole role, std::span<const int64_t> shape) const;
  // The entry for (class, dtype), else the class-wide one, else null.
  const LayoutOverride* FindOverride(TensorClass tensor_class, DType dtype) const;

  DeviceCaps caps_;
  Mode mode_;
  Layout forced_;
  std::vector<LayoutOverride> overrides_;
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
