// TuneLayouts: `--layout tuned`, layouts chosen by measurement. At start-up,
// for each (tensor class, dtype) among a model's 2-D matmul weights, time the
// device's matmul on every candidate layout with the model's own shape, and
// keep the fastest per (class, dtype).
//
// Candidates: native, then each of rowgroup-g8k8, rowgroup-g16k16,
// bf16-kpair-g16 and q-rowgroup-g8 that CheckLayoutApplies accepts for the
// dtype and shape, that is not all tail rows, whose transform from the
// common layout DescribeTransform offers, and that the device's
// MatmulSupported runs. f32-widened is never a candidate: it changes the
// weights' size, which a budget was not planned for.
//
// What is timed: the class's representative, its largest tensor (rows x
// cols); when over kMaxTuningWeightBytes, a slice of its first rows that
// fits, a multiple of 16 rows (so no candidate's groups end in a tail).
// Its bytes are random (every byte in [0x04, 0x3b], so every f16, bf16 or
// f32 read from them at any alignment is a positive normal number below 1:
// no NaN, infinity or subnormal takes a slow path), made in the common
// layout, converted on the host into the candidate's layout (ApplyTransform)
// and uploaded. x is `decode_tokens` (1) then `prefill_tokens` (64) rows of
// floats; each timing is Matmul + Synchronize, one warm-up call (the first
// call picks kernels and grows their scratch) then best-of-n until its slice
// of the time is used. A small representative stays in the caches between
// calls, a real decode step streams it from memory: the timings rank
// kernels, they do not predict a forward pass.
//
// Score: decode_seconds / decode_tokens + prefill_seconds / prefill_tokens,
// the seconds per token of each phase, added: a request of P prompt tokens
// and G generated tokens costs about P x prefill + G x decode per token, and
// with P ~ G the sum ranks the layouts as the request does. Decode's per-token
// cost is the larger (a GEMV reads every weight for one token), so it
// dominates, as it does in serving; prefill breaks near-ties. Lowest wins;
// on equal scores the earlier candidate (native first).
//
// Time: the whole call stays under options.max_seconds. Each timing gets
// the time left, less a reserve for the setup still to come, divided by the
// timings left; a timing that cannot start before the deadline leaves its
// (class, dtype) and every later one unmeasured: they keep the base
// policy's (auto) choice, marked measured = false in the report. Classes
// are measured in class order, then dtype order, so the fallback is
// deterministic for a given time budget.
//
// The returned policy is "auto" plus one CLASS:DTYPE=LAYOUT entry per
// measured (class, dtype) (layout_policy.h), then the entries of
// options.overrides, which the user fixed and which are not measured.
//
// Thread safety: one call at a time per device (it issues matmuls on it).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/conversion/layout_policy.h"
#include "engine/device/device.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"
#include "engine/tensor/tensor_role.h"

namespace relayout {

// The most weight bytes timed per candidate.
inline constexpr uint64_t kMaxTuningWeightBytes = uint64_t{16} << 20;

struct TuningOptions {
  // The whole tuning's wall-clock bound, setup included.
  double max_seconds = 2.0;
  int64_t decode_tokens = 1;
  int64_t prefill_tokens = 64;
  // Timed calls per (candidate, phase) at most, after the warm-up.
  int max_repeats = 100;
  // CLASS[:DTYPE]=LAYOUT entries separated by commas (the --layout grammar
  // after its base), e.g. "ffn_down=native": applied after the measured
  // ones, and the (class, dtype) pairs they cover are not measured.
  std::string overrides;
};

// One tensor of the model, as the tuner needs it.
struct TunableTensor {
  TensorRole role = TensorRole::kOther;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first
};

struct CandidateTiming {
  std::string layout;  // "native" or a layout name
  // Best seconds of one Matmul call at decode_tokens and prefill_tokens
  // rows; 0 when not measured.
  double decode_seconds = 0;
  double prefill_seconds = 0;
  int decode_repeats = 0;  // timed calls, warm-up excluded
  int prefill_repeats = 0;
  // Seconds per token, both phases (above); infinite for a candidate given
  // up after its first decode call (4x the fastest so far; prefill 0).
  double score = 0;
};

struct ClassTuning {
  TensorClass tensor_class = TensorClass::kAttnQkv;
  DType dtype = DType::kF32;
  int64_t tensors = 0;  // of this (class, dtype) in the model
  // The representative tensor's shape, and the rows actually timed.
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t timed_rows = 0;
  std::vector<CandidateTiming> candidates;
  std::string chosen;  // "native" or a layout name
  // False when the time ran out first (or the user fixed the class): the
  // base policy's choice, shown in `chosen`.
  bool measured = false;
  std::string note;  // why not measured, when not
};

struct LayoutTuningReport {
  std::string device;  // spec of the device timed on ("cpu", "cuda:0")
  // CPU threads of the timing pool, set by the caller that made it
  // (PrepareLoad); 0 when unknown or on a plugin device.
  int threads = 0;
  double max_seconds = 0;
  double total_seconds = 0;  // the whole call
  int64_t decode_tokens = 0;
  int64_t prefill_tokens = 0;
  std::vector<ClassTuning> classes;  // class order, then dtype order
  std::string mode;                  // the resulting policy's mode_name()
};

// The 2-D matmul weights of a checkpoint's bound model.
std::vector<TunableTensor> TunableTensorsOf(const Checkpoint& checkpoint);

// Measures and chooses (above). `device`: where the weights will go and the
// matmuls run (a CpuDevice for the CPU). `report`, when not null, receives
// every timing. Errors: InvalidArgument for bad options or overrides, and a
// device's error (allocation, upload, matmul) naming the class, dtype and
// layout being timed.
Result<LayoutPolicy> TuneLayouts(std::span<const TunableTensor> tensors, const DeviceCaps& caps,
                                 Device* device, const TuningOptions& options,
                                 LayoutTuningReport* report);
Result<LayoutPolicy> TuneLayouts(const Checkpoint& checkpoint, const DeviceCaps& caps,
                                 Device* device, const TuningOptions& options,
                                 LayoutTuningReport* report);

}  // namespace relayout
