// Strategy: the ways to execute one tensor's transform, named by their
// memory cost. The planner (engine/conversion/relayout_planner.h) picks one per tensor;
// the transform code executes it. Each strategy's scratch cost is declared by
// the transform, not here; the enum only names the kinds.
#pragma once

#include <cstdint>
#include <string_view>

namespace relayout {

// The order of the enumerators is part of the contract: the planner breaks
// cost ties by it (lower value first), so plans stay deterministic. Append new
// strategies at the end.
enum class Strategy : uint8_t {
  kNone,              // Already in the target layout: read into the final buffer.
  kOutOfPlace,        // Read into scratch (the tensor's size), convert into the final buffer.
  kBlockedInPlace,    // Convert in the final buffer, one row group / tile band at a time.
  kCycleFollowing,    // In-place permutation by following cycles (a visited bitmap or
                      // O(max(m, n)) for a transpose).
  kCkgInPlace,        // In-place transpose by decomposition into row and column shuffles.
  kAllocateThenFree,  // Size-changing: source and final buffers coexist, then the source
                      // is freed (scratch = source bytes).
};

inline constexpr int kNumStrategies = 6;

// One way to convert one tensor, as its transform declares it.
struct StrategyOption {
  Strategy strategy = Strategy::kNone;
  // Exact bytes held above the tensor's final bytes at the conversion's peak
  // (for kAllocateThenFree at least the source bytes, which coexist with the
  // final buffer).
  uint64_t scratch_bytes = 0;
  // Estimated cost in a unit shared by all options; only compared and summed.
  // The transforms use DRAM traffic in bytes (tensor bytes x a per-strategy
  // factor). REQUIRES: finite and >= 0.
  double cost = 0.0;
};

// "none", "out_of_place", "blocked_in_place", "cycle_following", "ckg_in_place",
// "allocate_then_free"; "unknown" for a value outside the enum. Stable: used
// in plans printed by the CLI and as a metrics label.
std::string_view StrategyName(Strategy strategy);

}  // namespace relayout
