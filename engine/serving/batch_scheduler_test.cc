#include "engine/serving/batch_scheduler.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace relayout {
namespace {

struct Case {
  std::string name;
  std::vector<WaitingRequest> waiting;
  std::vector<uint64_t> decoding;
  int64_t free_kv_blocks;
  int64_t max_batch_tokens;
  std::vector<uint64_t> want_prefills;
  int64_t want_tokens;
  int64_t free_sequence_slots = std::numeric_limits<int64_t>::max();
};

const Case kCases[] = {
    {"NothingToDo", {}, {}, 10, 64, {}, 0},
    {"SchedulerDecodesEveryRunningSequence", {}, {7, 3, 9}, 0, 64, {}, 3},
    {"SchedulerDecodesEvenPastTheTokenBudget", {}, {1, 2, 3, 4}, 0, 2, {}, 4},
    {"SchedulerAdmitsUntilKvFull", {{1, 4, 2}, {2, 4, 2}, {3, 4, 2}}, {}, 5, 64, {1, 2}, 8},
    {"SchedulerAdmitsWhenTheBlocksFitExactly", {{1, 4, 2}, {2, 4, 3}}, {}, 5, 64, {1, 2}, 8},
    {"SchedulerRespectsTokenBudget",
     {{1, 10, 1}, {2, 10, 1}, {3, 10, 1}},
     {5, 6},
     100,
     25,
     {1, 2},
     22},
    {"SchedulerKeepsFifoOrderWhenTheHeadDoesNotFit", {{1, 4, 50}, {2, 4, 1}}, {}, 10, 64, {}, 0},
    {"SchedulerStopsAtTheFirstPromptOverTheBudgetLeft",
     {{1, 10, 1}, {2, 30, 1}, {3, 1, 1}},
     {},
     100,
     32,
     {1},
     10},
    {"SchedulerAdmitsAnOverBudgetPromptAlone", {{1, 100, 1}, {2, 1, 1}}, {4}, 100, 32, {1}, 101},
    {"SchedulerDoesNotAdmitAnOverBudgetPromptBehindAnother",
     {{1, 2, 1}, {2, 100, 1}},
     {},
     100,
     32,
     {1},
     2},
    {"SchedulerAdmitsNothingWithoutFreeBlocks", {{1, 1, 1}}, {2}, 0, 64, {}, 1},
    {"SchedulerAdmitsNoMoreThanTheFreeSequenceSlots",
     {{1, 1, 1}, {2, 1, 1}, {3, 1, 1}},
     {4},
     100,
     64,
     {1, 2},
     3,
     2},
    {"SchedulerAdmitsNothingWhenEverySessionSlotIsTaken", {{1, 1, 1}}, {2}, 100, 64, {}, 1, 0},
};

class SchedulerTest : public ::testing::TestWithParam<Case> {};

TEST_P(SchedulerTest, GivesTheExpectedBatch) {
  const Case& c = GetParam();
  SchedulerInput input;
  input.waiting = c.waiting;
  input.decoding = c.decoding;
  input.free_kv_blocks = c.free_kv_blocks;
  input.max_batch_tokens = c.max_batch_tokens;
  input.free_sequence_slots = c.free_sequence_slots;
  const Batch batch = ScheduleStep(input);
  EXPECT_EQ(batch.prefills, c.want_prefills);
  EXPECT_EQ(batch.decodes, c.decoding);
  EXPECT_EQ(batch.tokens, c.want_tokens);
  int64_t blocks = 0;
  for (uint64_t id : batch.prefills) {
    for (const WaitingRequest& w : c.waiting) {
      if (w.id == id) blocks += w.kv_blocks;
    }
  }
  EXPECT_EQ(batch.kv_blocks, blocks);
  EXPECT_LE(batch.kv_blocks, c.free_kv_blocks);
  EXPECT_EQ(batch.empty(), c.want_prefills.empty() && c.decoding.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, SchedulerTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace relayout
