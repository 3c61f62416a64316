// bench_relayout: the relayout transforms' speed and the conversion's peak.
//
//   build/bench/bench_relayout [--reps N] [--model PATH] [--budget SIZE]
//
// Part 1, per transform and strategy on a large tensor: GB/s (tensor bytes
// counted once) and the ratio to a plain memcpy of the same bytes measured in
// the same run, just before. Best of N repetitions each.
//
// Part 2, with --model: the peak memory of relayoutd's conversion under the
// budget versus the naive whole-model out-of-place conversion (load every
// tensor, convert each into a new buffer, free the originals at the end, as a
// `transform_params` pass over a state dict does: about 2x the weights).
// Both are measured by the memory ledger in this process.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/conversion/budget.h"
#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/conversion/transform.h"
#include "engine/memory/host_buffer.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
double BestSeconds(int reps, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

struct Case {
  const char* name;
  DType dtype;
  std::vector<int64_t> shape;
  Layout to;
};

void BenchTransforms(int reps) {
  const std::vector<Case> cases = {
      {"F32 4096x4096 rowgroup-g16k16",
       DType::kF32,
       {4096, 4096},
       Layout::RowGroupInterleave(16, 16)},
      {"F16 8192x4096 rowgroup-g8k8", DType::kF16, {8192, 4096}, Layout::RowGroupInterleave(8, 8)},
      {"BF16 8192x4096 bf16-kpair-g16", DType::kBF16, {8192, 4096}, Layout::Bf16KPair(16)},
      {"Q8_0 14336x4096 q-rowgroup-g8",
       DType::kQ8_0,
       {14336, 4096},
       Layout::QuantRowGroupInterleave(8)},
      {"Q4_0 14336x4096 q-rowgroup-g8",
       DType::kQ4_0,
       {14336, 4096},
       Layout::QuantRowGroupInterleave(8)},
      {"Q4_1 14336x4096 q-rowgroup-g8",
       DType::kQ4_1,
       {14336, 4096},
       Layout::QuantRowGroupInterleave(8)},
      {"F32 4096x4096 transposed", DType::kF32, {4096, 4096}, Layout::Transposed()},
      {"BF16 4096x11008 transposed", DType::kBF16, {4096, 11008}, Layout::Transposed()},
  };
  std::printf("%-32s %-18s %10s %10s %9s %12s\n", "transform", "strategy", "GB/s", "memcpy",
              "ratio", "scratch");
  std::mt19937_64 rng(1);
  for (const Case& c : cases) {
    Result<TransformSpec> spec =
        DescribeTransform(c.dtype, c.shape, CommonLayoutFor(c.dtype), c.to);
    if (!spec.ok()) {
      std::printf("%-32s %s\n", c.name, spec.status().ToString().c_str());
      continue;
    }
    std::vector<std::byte> data(spec->from_bytes), copy(spec->from_bytes);
    for (auto& b : data) b = static_cast<std::byte>(rng());
    const double gb = static_cast<double>(data.size()) / 1e9;
    for (const StrategyOption& option : spec->strategies) {
      if (option.strategy == Strategy::kNone) continue;
      // The cycle-following transpose visits elements in cycle order: one
      // repetition is enough to show it is the slow choice.
      const int n = option.strategy == Strategy::kCycleFollowing ? 1 : reps;
      std::vector<std::byte> scratch(option.scratch_bytes);
      const double memcpy_s =
          BestSeconds(n, [&] { std::memcpy(copy.data(), data.data(), data.size()); });
      Direction direction = Direction::kForward;
      const double s = BestSeconds(n, [&] {
        // Alternate directions so every run starts from a valid layout.
        if (!ApplyTransform(*spec, option.strategy, data, scratch, direction).ok()) std::abort();
        direction = direction == Direction::kForward ? Direction::kInverse : Direction::kForward;
      });
      std::printf("%-32s %-18s %10.2f %10.2f %8.2fx %12s\n", c.name,
                  std::string(StrategyName(option.strategy)).c_str(), gb / s, gb / memcpy_s,
                  memcpy_s / s, FormatBytes(option.scratch_bytes).c_str());
    }
  }
}

// The naive baseline: every tensor read, then each converted into a new
// buffer, the originals freed only when all are done.
uint64_t NaivePeak(const PreparedLoad& load) {
  MemoryLedger ledger;
  std::vector<HostBuffer> originals, converted;
  for (const TensorConversion& t : load.plan.tensors) {
    Result<HostBuffer> b =
        HostBuffer::Allocate(&ledger, MemoryCategory::kWeights, t.spec.from_bytes);
    if (!b.ok() || !load.checkpoint.source->ReadTensor(t.source_index, b->span()).ok())
      std::abort();
    originals.push_back(std::move(*b));
  }
  for (size_t i = 0; i < load.plan.tensors.size(); ++i) {
    const TensorConversion& t = load.plan.tensors[i];
    Result<HostBuffer> b = HostBuffer::Allocate(&ledger, MemoryCategory::kScratch, t.spec.to_bytes);
    if (!b.ok()) std::abort();
    std::memcpy(b->data(), originals[i].data(),
                originals[i].size());  // stands in for the conversion
    converted.push_back(std::move(*b));
  }
  originals.clear();
  return ledger.total_peak();
}

int BenchModel(const std::string& model, const std::string& budget) {
  LoadOptions options;
  options.model_path = model;
  options.budget = budget;
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  if (!load.ok()) {
    std::fprintf(stderr, "bench_relayout: %s\n", load.status().message().c_str());
    return 2;
  }
  RelayoutReport report;
  {
    MemoryLedger ledger;
    Result<LoadedWeights> w =
        ExecuteConversion(*load->checkpoint.source, load->plan, &ledger, nullptr, nullptr, &report);
    if (!w.ok()) {
      std::fprintf(stderr, "bench_relayout: %s\n", w.status().message().c_str());
      return 2;
    }
  }
  const uint64_t naive = NaivePeak(*load);
  std::printf("\nmodel %s: weights %s, budget %s\n", model.c_str(),
              FormatBytes(report.weights_bytes).c_str(), FormatBytes(report.budget_bytes).c_str());
  std::printf("%-44s %14s %10s\n", "conversion", "peak", "x weights");
  const double w = static_cast<double>(report.weights_bytes);
  std::printf("%-44s %14s %10.3f\n", "relayoutd (planned, in place)",
              FormatBytes(report.measured_peak_bytes).c_str(),
              static_cast<double>(report.measured_peak_bytes) / w);
  std::printf("%-44s %14s %10.3f\n", "naive whole-model out-of-place", FormatBytes(naive).c_str(),
              static_cast<double>(naive) / w);
  std::printf("peak ratio relayoutd / naive: %.3f; conversion %.2f s, %.2f GB/s\n",
              static_cast<double>(report.measured_peak_bytes) / static_cast<double>(naive),
              report.seconds, report.bytes_per_second / 1e9);
  return 0;
}

}  // namespace
}  // namespace relayout

int main(int argc, char** argv) {
  int reps = 5;
  std::string model, budget = "16MiB";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--reps")
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--model")
      model = argv[i + 1];
    else if (flag == "--budget")
      budget = argv[i + 1];
  }
  relayout::BenchTransforms(reps);
  return model.empty() ? 0 : relayout::BenchModel(model, budget);
}
