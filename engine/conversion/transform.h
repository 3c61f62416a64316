// Transforms between a tensor's common layout and a preferred layout, with
// the strategies that can execute each one and their exact scratch bytes.
//
// DescribeTransform is pure: it says what a conversion costs (so the planner
// can fit it in a budget) without touching memory. ApplyTransform executes a
// described transform with a chosen strategy over caller-owned buffers; it
// allocates nothing.
//
// Supported: identity (from == to), and common <-> preferred for every
// preferred layout, in both directions: the row-group permutations
// (row-group, quant row-group, BF16 K-pair: blocked in place or out of
// place), the transpose (Catanzaro-Keller-Garland in place, cycle
// following, out of place; docs/TRANSPOSE.md), and the one size-changing
// transform, F16/BF16 -> f32-widened (allocate-then-free: the planner counts
// both sizes). Preferred -> other preferred goes through the common layout
// (two transforms) and is refused here.
//
// Thread safety: free functions over values; concurrent calls on disjoint
// buffers are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/conversion/strategy.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"

namespace relayout {

enum class Direction : uint8_t {
  kForward,  // spec.from -> spec.to
  kInverse,  // spec.to -> spec.from
};

struct TransformSpec {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first, as in TensorInfo
  Layout from;
  Layout to;
  // Same byte size on both sides, bytes only move. False for size-changing
  // transforms (none today; they would offer kAllocateThenFree).
  bool is_permutation = true;
  uint64_t from_bytes = 0;
  uint64_t to_bytes = 0;
  // Bytes of one full row group (the unit the blocked in-place strategy
  // stages through scratch) and the number of full groups; both 0 when the
  // layout has no row groups or the transform moves no byte (every row is a
  // tail row, G == 1, or K <= KB: then the only strategy is kNone).
  uint64_t row_group_bytes = 0;
  uint64_t row_groups = 0;
  // The strategies that can execute it, cheapest scratch first. Never empty.
  std::vector<StrategyOption> strategies;

  // The option for `strategy`, or nullptr when not offered.
  const StrategyOption* Find(Strategy strategy) const;
  // "Q4_1 [576, 576] gguf-blocks -> q-rowgroup-g8": the subject of its errors.
  std::string Describe() const;
};

// What converting a tensor of (dtype, shape) from `from` to `to` involves.
// InvalidArgument naming the dtype, shape and both layouts when the pair is
// not supported, a layout does not apply to the tensor (CheckLayoutApplies),
// or the shape's byte size is invalid.
Result<TransformSpec> DescribeTransform(DType dtype, std::span<const int64_t> shape,
                                        const Layout& from, const Layout& to);

// Runs `spec` in `direction` over `data` (the tensor, spec.from_bytes long,
// converted in place) with `strategy`, using only the first
// spec.Find(strategy)->scratch_bytes bytes of `scratch`.
//   kBlockedInPlace: each row group is copied to scratch and permuted back.
//   kOutOfPlace: data is converted into scratch (the destination) and the
//     result copied back into data, so the caller sees the same contract as
//     in place; an executor that wants to keep the new buffer instead can call
//     the kernels directly.
//   kNone: nothing to do.
// Returns OK with data in the target layout. InvalidArgument (data unchanged)
// when the strategy is not offered, data's size is wrong, or scratch is
// smaller than declared, or the spec is size-changing.
// REQUIRES: data and scratch do not overlap.
Status ApplyTransform(const TransformSpec& spec, Strategy strategy, std::span<std::byte> data,
                      std::span<std::byte> scratch, Direction direction);

// For size-changing specs (is_permutation false; today only f32-widened):
// converts src (the direction's source side, from_bytes forward) into dst (the
// other side). InvalidArgument on wrong sizes or a permutation spec.
Status ApplySizeChangingTransform(const TransformSpec& spec, std::span<const std::byte> src,
                                  std::span<std::byte> dst, Direction direction);

}  // namespace relayout
