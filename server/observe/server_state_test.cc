#include "server/observe/server_state.h"

#include <gtest/gtest.h>

namespace relayout::server {
namespace {

TEST(ServerStateTest, StatesAdvanceOneStepAndDrainFromAnywhere) {
  ServerState state;
  std::vector<std::pair<LifecycleState, LifecycleState>> changes;
  state.AddStateListener(
      [&](LifecycleState from, LifecycleState to) { changes.emplace_back(from, to); });
  EXPECT_EQ(state.state(), LifecycleState::kLoading);
  EXPECT_FALSE(state.SetState(LifecycleState::kServing));
  EXPECT_TRUE(state.SetState(LifecycleState::kConverting));
  EXPECT_TRUE(state.SetState(LifecycleState::kDraining));
  EXPECT_FALSE(state.SetState(LifecycleState::kServing));
  EXPECT_FALSE(state.SetState(LifecycleState::kDraining));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].second, LifecycleState::kConverting);
  EXPECT_EQ(changes[1].first, LifecycleState::kConverting);
  EXPECT_EQ(changes[1].second, LifecycleState::kDraining);
}

TEST(ServerStateTest, ProgressFollowsTheDescriptionAndTheReport) {
  ServerState state;
  ModelDescription d;
  d.tensors_total = 4;
  d.bytes_total = 1000;
  state.SetDescription(d);
  state.SetProgress(1, 250);
  EXPECT_DOUBLE_EQ(state.progress().ratio(), 0.25);
  state.SetReport(RelayoutReport{});
  const ServerState::Snapshot s = state.Get();
  EXPECT_EQ(s.progress.tensors_done, 4u);
  EXPECT_DOUBLE_EQ(s.progress.ratio(), 1.0);
  ASSERT_NE(s.report, nullptr);
}

// A conversion of the served weights (serving while converting, or
// Admin/Relayout) has its own progress and ends with a report, or not.
TEST(ServerStateTest, ALiveConversionHasItsOwnProgressAndEndsWithOrWithoutAReport) {
  ServerState state;
  state.SetReport(RelayoutReport{});  // the start-up load's
  state.BeginConversion(10, 2000);
  ServerState::Snapshot s = state.Get();
  EXPECT_TRUE(s.converting);
  EXPECT_EQ(s.progress.tensors_total, 10u);
  EXPECT_DOUBLE_EQ(s.progress.ratio(), 0.0);
  ASSERT_NE(s.report, nullptr);  // the last finished one's, until this one ends
  state.SetProgress(5, 500);
  EXPECT_DOUBLE_EQ(state.progress().ratio(), 0.25);

  state.EndConversion(std::nullopt);  // cancelled: progress stays
  s = state.Get();
  EXPECT_FALSE(s.converting);
  EXPECT_DOUBLE_EQ(s.progress.ratio(), 0.25);

  state.BeginConversion(4, 100);
  RelayoutReport report;
  report.weights_bytes = 100;
  state.EndConversion(report);
  s = state.Get();
  EXPECT_FALSE(s.converting);
  EXPECT_DOUBLE_EQ(s.progress.ratio(), 1.0);
  ASSERT_NE(s.report, nullptr);
  EXPECT_EQ(s.report->weights_bytes, 100u);
}

TEST(LifecycleStateTest, NamesAreTheMetricsLabels) {
  EXPECT_EQ(LifecycleStateName(LifecycleState::kLoading), "loading");
  EXPECT_EQ(LifecycleStateName(LifecycleState::kConverting), "converting");
  EXPECT_EQ(LifecycleStateName(LifecycleState::kServing), "serving");
  EXPECT_EQ(LifecycleStateName(LifecycleState::kDraining), "draining");
}

}  // namespace
}  // namespace relayout::server
