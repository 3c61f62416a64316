#include "engine/conversion/strategy.h"

#include <gtest/gtest.h>

namespace relayout {
namespace {

TEST(StrategyTest, NamesAreTheStableSnakeCaseSpellings) {
  EXPECT_EQ(StrategyName(Strategy::kNone), "none");
  EXPECT_EQ(StrategyName(Strategy::kOutOfPlace), "out_of_place");
  EXPECT_EQ(StrategyName(Strategy::kBlockedInPlace), "blocked_in_place");
  EXPECT_EQ(StrategyName(Strategy::kCycleFollowing), "cycle_following");
  EXPECT_EQ(StrategyName(Strategy::kCkgInPlace), "ckg_in_place");
  EXPECT_EQ(StrategyName(Strategy::kAllocateThenFree), "allocate_then_free");
  EXPECT_EQ(StrategyName(static_cast<Strategy>(kNumStrategies)), "unknown");
}

}  // namespace
}  // namespace relayout
