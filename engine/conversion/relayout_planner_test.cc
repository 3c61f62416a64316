#include "engine/conversion/relayout_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace relayout {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

TensorToPlan Tensor(std::string name, uint64_t bytes, std::vector<StrategyOption> options) {
  TensorToPlan tensor;
  tensor.name = std::move(name);
  tensor.final_bytes = bytes;
  tensor.source_bytes = bytes;
  tensor.options = std::move(options);
  return tensor;
}

PlanRequest Request(std::vector<TensorToPlan> tensors, uint64_t budget, uint32_t workers = 1) {
  PlanRequest request;
  request.tensors = std::move(tensors);
  request.budget_bytes = budget;
  request.workers = workers;
  return request;
}

// ---------------------------------------------------------------------------
// Examples

TEST(RelayoutPlannerTest, EmptyRequestGivesEmptyPlan) {
  Result<Plan> plan = PlanRelayout(Request({}, 0, 4));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->steps.empty());
  EXPECT_EQ(plan->num_waves, 0u);
  EXPECT_EQ(plan->predicted_peak_bytes, 0u);
  EXPECT_EQ(plan->workers, 4u);
}

TEST(RelayoutPlannerTest, InfeasibleBudgetNamesTensorAndMinimalBudget) {
  Result<Plan> plan = PlanRelayout(
      Request({Tensor("blk.0.attn_q.weight", 4 * kMiB, {{Strategy::kOutOfPlace, 4 * kMiB, 1.0}}),
               Tensor("blk.0.ffn_up.weight", 16 * kMiB, {{Strategy::kOutOfPlace, 16 * kMiB, 1.0}})},
              kMiB));
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(plan.status().IsResourceExhausted());
  EXPECT_EQ(plan.status().message(),
            "plan: tensor blk.0.ffn_up.weight needs at least 16777216 bytes of budget (16.0 MiB), "
            "have 1048576");
}

TEST(RelayoutPlannerTest, PrefersFasterStrategyWhenBudgetAllows) {
  const std::vector<StrategyOption> options = {{Strategy::kBlockedInPlace, kMiB / 4, 3.0},
                                               {Strategy::kOutOfPlace, 8 * kMiB, 1.0}};
  Result<Plan> roomy = PlanRelayout(Request({Tensor("w", 8 * kMiB, options)}, 8 * kMiB));
  ASSERT_TRUE(roomy.ok()) << roomy.status();
  EXPECT_EQ(roomy->steps[0].strategy, Strategy::kOutOfPlace);
  EXPECT_EQ(roomy->steps[0].scratch_bytes, 8 * kMiB);
  EXPECT_EQ(roomy->predicted_peak_bytes, 16 * kMiB);

  Result<Plan> tight = PlanRelayout(Request({Tensor("w", 8 * kMiB, options)}, 8 * kMiB - 1));
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_EQ(tight->steps[0].strategy, Strategy::kBlockedInPlace);
  EXPECT_EQ(tight->predicted_peak_bytes, 8 * kMiB + kMiB / 4);
}

TEST(RelayoutPlannerTest, CostTiesGoToTheLowerStrategyThenSmallerScratch) {
  Result<Plan> plan = PlanRelayout(Request({Tensor("a", 100,
                                                   {{Strategy::kCycleFollowing, 10, 2.0},
                                                    {Strategy::kBlockedInPlace, 50, 2.0},
                                                    {Strategy::kBlockedInPlace, 20, 2.0}})},
                                           100));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].strategy, Strategy::kBlockedInPlace);
  EXPECT_EQ(plan->steps[0].scratch_bytes, 20u);
}

TEST(RelayoutPlannerTest, WavesPackInFileOrderUpToWorkersAndBudget) {
  std::vector<TensorToPlan> tensors;
  for (int i = 0; i < 5; ++i) {
    tensors.push_back(Tensor("t" + std::to_string(i), 100, {{Strategy::kBlockedInPlace, 10, 1}}));
  }
  Result<Plan> by_budget = PlanRelayout(Request(tensors, 25, 4));
  ASSERT_TRUE(by_budget.ok()) << by_budget.status();
  std::vector<std::pair<uint32_t, uint32_t>> wave_slot;
  for (const PlanStep& step : by_budget->steps) wave_slot.emplace_back(step.wave, step.slot);
  EXPECT_EQ(wave_slot,
            (std::vector<std::pair<uint32_t, uint32_t>>{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}}));
  EXPECT_EQ(by_budget->num_waves, 3u);
  EXPECT_EQ(by_budget->max_scratch_bytes, 20u);
  EXPECT_DOUBLE_EQ(by_budget->predicted_cost, 3.0);

  Result<Plan> by_workers = PlanRelayout(Request(tensors, 1000, 2));
  ASSERT_TRUE(by_workers.ok()) << by_workers.status();
  EXPECT_EQ(by_workers->num_waves, 3u);
  EXPECT_EQ(by_workers->steps[4].wave, 2u);
}

TEST(RelayoutPlannerTest, TimelinePeakCountsOnlyTheWeightsLoadedSoFar) {
  // The embedding comes first with a large out-of-place scratch; the peak of
  // the timeline is at the end, when every weight is resident.
  Result<Plan> plan =
      PlanRelayout(Request({Tensor("token_embd", 100, {{Strategy::kOutOfPlace, 100, 1}}),
                            Tensor("blk.0", 1000, {{Strategy::kBlockedInPlace, 10, 1}})},
                           100));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->weight_bytes, 1100u);
  EXPECT_EQ(plan->max_scratch_bytes, 100u);
  EXPECT_EQ(plan->predicted_peak_bytes, 1200u);
  EXPECT_EQ(plan->timeline_peak_bytes, 1110u);
}

TEST(RelayoutPlannerTest, AllocateThenFreeCountsSourceAndFinal) {
  TensorToPlan widen = Tensor("norm", 400, {{Strategy::kAllocateThenFree, 200, 1}});
  widen.source_bytes = 200;  // F16 -> F32
  Result<Plan> plan = PlanRelayout(Request({widen}, 200));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->source_bytes, 200u);
  EXPECT_EQ(plan->weight_bytes, 400u);
  EXPECT_EQ(plan->predicted_peak_bytes, 600u);
}

TEST(RelayoutPlannerTest, MalformedRequestsAreInvalidArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  TensorToPlan none_resized = Tensor("r", 10, {{Strategy::kNone, 0, 0}});
  none_resized.source_bytes = 5;
  TensorToPlan cheap_widen = Tensor("w", 10, {{Strategy::kAllocateThenFree, 4, 0}});
  cheap_widen.source_bytes = 5;
  const std::pair<PlanRequest, std::string> cases[] = {
      {Request({Tensor("a", 1, {{Strategy::kNone, 0, 0}})}, 0, 0), "plan: workers must be"},
      {Request({Tensor("a", 1, {})}, 0), "plan: tensor a: has no strategy"},
      {Request({Tensor("a", 1, {{Strategy::kNone, 0, nan}})}, 0), "finite and non-negative"},
      {Request({Tensor("a", 1, {{Strategy::kNone, 0, inf}})}, 0), "finite and non-negative"},
      {Request({Tensor("a", 1, {{Strategy::kNone, 0, -1}})}, 0), "finite and non-negative"},
      {Request({none_resized}, 0), "plan: tensor r: strategy none reads the tensor as is"},
      {Request({cheap_widen}, 100), "below its source buffer of 5"},
      {Request({Tensor("a", UINT64_MAX, {{Strategy::kNone, 0, 0}}),
                Tensor("b", 1, {{Strategy::kNone, 0, 0}})},
               0),
       "sum past 64 bits"},
      {Request({Tensor("a", UINT64_MAX, {{Strategy::kOutOfPlace, 1, 0}})}, 1), "past 64 bits"},
  };
  for (const auto& [request, expected] : cases) {
    Result<Plan> plan = PlanRelayout(request);
    ASSERT_FALSE(plan.ok()) << expected;
    EXPECT_TRUE(plan.status().IsInvalidArgument()) << plan.status();
    EXPECT_NE(plan.status().message().find(expected), std::string::npos) << plan.status();
  }
}

// ---------------------------------------------------------------------------
// Properties over random requests

constexpr Strategy kAllStrategies[] = {Strategy::kNone,           Strategy::kOutOfPlace,
                                       Strategy::kBlockedInPlace, Strategy::kCycleFollowing,
                                       Strategy::kCkgInPlace,     Strategy::kAllocateThenFree};

PlanRequest RandomRequest(std::mt19937_64& rng) {
  auto uniform = [&rng](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  PlanRequest request;
  const uint64_t num_tensors = uniform(0, 1) == 0 ? uniform(0, 4) : uniform(5, 60);
  // Sizes span several orders of magnitude, like embeddings next to norms.
  const uint64_t max_shift = uniform(4, 34);
  for (uint64_t i = 0; i < num_tensors; ++i) {
    TensorToPlan tensor;
    tensor.name = "t" + std::to_string(i);
    tensor.final_bytes = uniform(0, uint64_t{1} << uniform(0, max_shift));
    const bool resized = uniform(0, 4) == 0;
    tensor.source_bytes = resized ? uniform(0, tensor.final_bytes * 2 + 1) : tensor.final_bytes;
    const uint64_t num_options = uniform(1, 4);
    for (uint64_t k = 0; k < num_options; ++k) {
      StrategyOption option;
      option.strategy = kAllStrategies[uniform(0, 5)];
      if (option.strategy == Strategy::kNone && resized) option.strategy = Strategy::kOutOfPlace;
      switch (option.strategy) {
        case Strategy::kNone:
          option.scratch_bytes = 0;
          break;
        case Strategy::kOutOfPlace:
          option.scratch_bytes = std::max(tensor.source_bytes, tensor.final_bytes);
          break;
        case Strategy::kAllocateThenFree:
          option.scratch_bytes = tensor.source_bytes + uniform(0, 2);
          break;
        default:
          option.scratch_bytes = uniform(0, tensor.final_bytes / uniform(1, 64) + 1);
      }
      // Few distinct costs, so ties are common.
      option.cost = static_cast<double>(uniform(0, 6)) * 0.5;
      tensor.options.push_back(option);
    }
    request.tensors.push_back(std::move(tensor));
  }
  request.workers = static_cast<uint32_t>(uniform(1, 8));
  // A budget around the smallest feasible one, sometimes far above it or zero.
  uint64_t needed = 0;
  for (const TensorToPlan& tensor : request.tensors) {
    uint64_t min_scratch = UINT64_MAX;
    for (const StrategyOption& option : tensor.options) {
      min_scratch = std::min(min_scratch, option.scratch_bytes);
    }
    needed = std::max(needed, min_scratch);
  }
  switch (uniform(0, 5)) {
    case 0:
      request.budget_bytes = 0;
      break;
    case 1:
      request.budget_bytes = needed;
      break;
    case 2:
      request.budget_bytes = needed > 0 ? uniform(0, needed - 1) : 0;
      break;
    case 3:
      request.budget_bytes = needed + uniform(0, needed);
      break;
    default:
      request.budget_bytes = needed * uniform(2, 16) + uniform(0, 1000);
  }
  return request;
}

// The option the policy must pick, computed independently of the planner.
const StrategyOption* ExpectedChoice(const TensorToPlan& tensor, uint64_t budget) {
  const StrategyOption* best = nullptr;
  for (const StrategyOption& option : tensor.options) {
    if (option.scratch_bytes > budget) continue;
    if (best == nullptr || option.cost < best->cost ||
        (option.cost == best->cost &&
         (option.strategy < best->strategy ||
          (option.strategy == best->strategy && option.scratch_bytes < best->scratch_bytes)))) {
      best = &option;
    }
  }
  return best;
}

// Executes the plan as an executor would, with random actual durations:
// every step of a wave starts when the previous wave has ended. Returns the
// highest (resident weights + scratch) seen and checks the scratch of running
// steps against the budget at every event.
uint64_t SimulatePeak(const Plan& plan, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> duration(0.01, 1.0);
  // Events (time, +1 start / -1 end, step index); ends sort before starts.
  std::vector<std::tuple<double, int, size_t>> events;
  double wave_start = 0.0;
  double wave_end = 0.0;
  uint32_t wave = 0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].wave != wave) {
      wave = plan.steps[i].wave;
      wave_start = wave_end;
    }
    const double end = wave_start + duration(rng);
    wave_end = std::max(wave_end, end);
    events.emplace_back(wave_start, +1, i);
    events.emplace_back(end, -1, i);
  }
  std::sort(events.begin(), events.end());
  uint64_t resident = 0;
  uint64_t scratch = 0;
  uint64_t peak = 0;
  size_t running = 0;
  for (const auto& [time, kind, i] : events) {
    const PlanStep& step = plan.steps[i];
    if (kind > 0) {
      resident += step.final_bytes;
      scratch += step.scratch_bytes;
      ++running;
    } else {
      scratch -= step.scratch_bytes;
      --running;
    }
    EXPECT_LE(scratch, plan.budget_bytes) << "at t=" << time;
    EXPECT_LE(running, plan.workers) << "at t=" << time;
    peak = std::max(peak, resident + scratch);
  }
  return peak;
}

void CheckFeasiblePlan(const PlanRequest& request, const Plan& plan, std::mt19937_64& rng) {
  const uint64_t budget = request.budget_bytes;
  ASSERT_EQ(plan.steps.size(), request.tensors.size());
  EXPECT_EQ(plan.budget_bytes, budget);
  EXPECT_EQ(plan.workers, request.workers);
  uint64_t weights = 0;
  uint64_t sources = 0;
  std::map<uint32_t, std::pair<uint32_t, uint64_t>> waves;  // wave -> (steps, scratch)
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& step = plan.steps[i];
    const TensorToPlan& tensor = request.tensors[i];
    EXPECT_EQ(step.tensor_index, i);  // file order
    EXPECT_EQ(step.name, tensor.name);
    EXPECT_EQ(step.final_bytes, tensor.final_bytes);
    EXPECT_EQ(step.source_bytes, tensor.source_bytes);
    weights += tensor.final_bytes;
    sources += tensor.source_bytes;
    // The cheapest fitting option, with the documented tie-breaks.
    const StrategyOption* expected = ExpectedChoice(tensor, budget);
    ASSERT_NE(expected, nullptr);
    EXPECT_EQ(step.strategy, expected->strategy) << tensor.name;
    EXPECT_EQ(step.scratch_bytes, expected->scratch_bytes) << tensor.name;
    EXPECT_EQ(step.cost, expected->cost) << tensor.name;
    EXPECT_LE(step.scratch_bytes, budget);
    // Waves are contiguous, numbered in order, slots count up from 0.
    if (i == 0) {
      EXPECT_EQ(step.wave, 0u);
    } else {
      const PlanStep& previous = plan.steps[i - 1];
      ASSERT_TRUE(step.wave == previous.wave || step.wave == previous.wave + 1);
      if (step.wave == previous.wave + 1) {
        // Next-fit: the step could not have joined the previous wave.
        const auto& [count, scratch] = waves[previous.wave];
        EXPECT_TRUE(count == request.workers || scratch + step.scratch_bytes > budget);
      }
    }
    auto& [count, scratch] = waves[step.wave];
    EXPECT_EQ(step.slot, count);
    ++count;
    scratch += step.scratch_bytes;
    EXPECT_LE(count, request.workers);
    EXPECT_LE(scratch, budget);
  }
  EXPECT_EQ(plan.num_waves, waves.size());
  EXPECT_EQ(plan.weight_bytes, weights);
  EXPECT_EQ(plan.source_bytes, sources);
  uint64_t max_scratch = 0;
  for (const auto& [wave, entry] : waves) max_scratch = std::max(max_scratch, entry.second);
  EXPECT_EQ(plan.max_scratch_bytes, max_scratch);
  EXPECT_EQ(plan.predicted_peak_bytes, weights + max_scratch);
  EXPECT_LE(plan.predicted_peak_bytes, weights + budget);
  EXPECT_LE(plan.timeline_peak_bytes, plan.predicted_peak_bytes);
  // The model's peak is reached by a real schedule, and never exceeded.
  EXPECT_EQ(SimulatePeak(plan, rng), plan.timeline_peak_bytes);
}

TEST(RelayoutPlannerPropertyTest, RandomRequestsObeyTheBudgetContract) {
  std::mt19937_64 rng(20240611);
  int feasible = 0;
  int infeasible = 0;
  for (int iteration = 0; iteration < 5000; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    const PlanRequest request = RandomRequest(rng);
    // Feasible iff every tensor has an option within the budget; the minimal
    // budget is the max over tensors of their smallest scratch.
    bool expect_feasible = true;
    uint64_t needed = 0;
    std::string neediest;
    for (const TensorToPlan& tensor : request.tensors) {
      uint64_t min_scratch = UINT64_MAX;
      for (const StrategyOption& option : tensor.options) {
        min_scratch = std::min(min_scratch, option.scratch_bytes);
      }
      if (min_scratch > request.budget_bytes) expect_feasible = false;
      if (neediest.empty() || min_scratch > needed) {
        needed = min_scratch;
        neediest = tensor.name;
      }
    }
    const Result<Plan> plan = PlanRelayout(request);
    const Result<Plan> again = PlanRelayout(request);
    ASSERT_EQ(plan.ok(), expect_feasible) << plan.status();
    ASSERT_EQ(again.ok(), expect_feasible);
    if (plan.ok()) {
      ++feasible;
      EXPECT_EQ(*plan, *again);  // deterministic
      CheckFeasiblePlan(request, *plan, rng);
      if (HasFatalFailure() || HasNonfatalFailure()) return;
      continue;
    }
    ++infeasible;
    EXPECT_EQ(plan.status().message(), again.status().message());
    EXPECT_TRUE(plan.status().IsResourceExhausted());
    const std::string expected_prefix =
        "plan: tensor " + neediest + " needs at least " + std::to_string(needed) + " bytes";
    EXPECT_EQ(plan.status().message().rfind(expected_prefix, 0), 0u) << plan.status();
    EXPECT_NE(plan.status().message().find(", have " + std::to_string(request.budget_bytes)),
              std::string::npos)
        << plan.status();
    // The named budget is exactly the smallest that works.
    PlanRequest at_needed = request;
    at_needed.budget_bytes = needed;
    EXPECT_TRUE(PlanRelayout(at_needed).ok());
    PlanRequest below_needed = request;
    below_needed.budget_bytes = needed - 1;  // needed > budget >= 0, so no wrap
    const Result<Plan> below = PlanRelayout(below_needed);
    ASSERT_FALSE(below.ok());
    EXPECT_EQ(below.status().message().rfind(expected_prefix, 0), 0u) << below.status();
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
  // The generator must exercise both outcomes substantially.
  EXPECT_GT(feasible, 1000);
  EXPECT_GT(infeasible, 500);
}

TEST(RelayoutPlannerPropertyTest, MoreBudgetNeverRaisesCostPerTensor) {
  std::mt19937_64 rng(7);
  for (int iteration = 0; iteration < 1000; ++iteration) {
    PlanRequest request = RandomRequest(rng);
    const Result<Plan> plan = PlanRelayout(request);
    if (!plan.ok()) continue;
    request.budget_bytes = request.budget_bytes * 2 + 1;
    const Result<Plan> roomier = PlanRelayout(request);
    ASSERT_TRUE(roomier.ok()) << roomier.status();
    for (size_t i = 0; i < plan->steps.size(); ++i) {
      EXPECT_LE(roomier->steps[i].cost, plan->steps[i].cost);
    }
  }
}

}  // namespace
}  // namespace relayout
