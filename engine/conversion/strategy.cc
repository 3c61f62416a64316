#include "engine/conversion/strategy.h"

namespace relayout {

std::string_view StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kNone:
      return "none";
    case Strategy::kOutOfPlace:
      return "out_of_place";
    case Strategy::kBlockedInPlace:
      return "blocked_in_place";
    case Strategy::kCycleFollowing:
      return "cycle_following";
    case Strategy::kCkgInPlace:
      return "ckg_in_place";
    case Strategy::kAllocateThenFree:
      return "allocate_then_free";
  }
  return "unknown";
}

}  // namespace relayout
