// bench_forward: the forward pass's speed on the CPU, without a tokenizer, so
// that any checkpoint (a real one or tools/gen_checkpoint.py's) can be timed.
//
//   build/bench/bench_forward --model PATH [--layout auto] [--threads N]
//                             [--prompt 256] [--decode 64] [--reps 3]
//
// Loads the model through the start-up path (PrepareLoad, ExecuteConversion,
// LlamaModel::Create on the CPU), then per repetition: one prefill of
// --prompt token ids (a fixed pseudo-random sequence) into a fresh sequence,
// and --decode greedy steps of one token each. Prints one JSON line with the
// best repetition's prefill and decode tokens/s. bench/seam.py runs two
// builds of it against each other; it uses only the engine API that both
// sides of the device seam have.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/model/kv_cache.h"
#include "engine/model/llama_model.h"
#include "engine/model/sampler.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Run(int argc, char** argv) {
  std::string model, layout = "auto";
  int threads = 0, prompt = 256, decode = 64, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--model") {
      model = value;
    } else if (flag == "--layout") {
      layout = value;
    } else if (flag == "--threads") {
      threads = std::atoi(value);
    } else if (flag == "--prompt") {
      prompt = std::atoi(value);
    } else if (flag == "--decode") {
      decode = std::atoi(value);
    } else if (flag == "--reps") {
      reps = std::atoi(value);
    } else {
      std::fprintf(stderr, "bench_forward: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (model.empty() || prompt < 1 || decode < 1 || reps < 1) {
    std::fprintf(stderr,
                 "usage: bench_forward --model PATH [--layout L] [--threads N] "
                 "[--prompt N] [--decode N] [--reps N]\n");
    return 2;
  }
  LoadOptions options;
  options.model_path = model;
  options.layout = layout;
  options.device = "cpu";
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  if (!load.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", load.status().ToString().c_str());
    return 1;
  }
  MemoryLedger ledger;
  Result<LoadedWeights> weights =
      ExecuteConversion(*load->checkpoint.source, load->plan, &ledger, nullptr, nullptr, nullptr);
  if (!weights.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", weights.status().ToString().c_str());
    return 1;
  }
  kernels::ThreadPool pool(threads);
  Result<std::unique_ptr<LlamaModel>> created = LlamaModel::Create(
      load->checkpoint.config, load->checkpoint.naming, std::move(*weights), &pool, &ledger);
  if (!created.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", created.status().ToString().c_str());
    return 1;
  }
  LlamaModel& m = **created;
  const KvCacheShape shape = m.kv_cache_shape();
  Result<std::unique_ptr<KvCache>> cache =
      KvCache::Create(shape, shape.BytesForTokens(prompt + decode + 16), &ledger);
  if (!cache.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", cache.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(m.config().vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (int32_t& id : ids) id = token(rng);

  double best_prefill = 1e30, best_decode = 1e30;
  std::vector<int32_t> generated;
  for (int r = 0; r < reps; ++r) {
    const SequenceId seq = (*cache)->CreateSequence();
    BatchEntry entry{seq, ids, 0, false};
    auto start = Clock::now();
    if (Status s = m.Forward({&entry, 1}, cache->get()); !s.ok()) {
      std::fprintf(stderr, "bench_forward: %s\n", s.ToString().c_str());
      return 1;
    }
    best_prefill = std::min(best_prefill, Since(start));
    generated.clear();
    int32_t next = ArgMax(m.Logits(0));
    start = Clock::now();
    for (int i = 0; i < decode; ++i) {
      generated.push_back(next);
      entry = {seq, {&generated.back(), 1}, prompt + i, false};
      if (Status s = m.Forward({&entry, 1}, cache->get()); !s.ok()) {
        std::fprintf(stderr, "bench_forward: %s\n", s.ToString().c_str());
        return 1;
      }
      next = ArgMax(m.Logits(0));
    }
    best_decode = std::min(best_decode, Since(start));
    (*cache)->Release(seq);
  }
  uint64_t checksum = 0;
  for (int32_t id : generated) checksum = checksum * 1000003u + static_cast<uint64_t>(id);
  std::printf(
      "{\"model\": \"%s\", \"layout\": \"%s\", \"threads\": %d, \"prompt_tokens\": %d, "
      "\"decode_tokens\": %d, \"prefill_tokens_per_second\": %.3f, "
      "\"decode_tokens_per_second\": %.3f, \"greedy_checksum\": %llu}\n",
      model.c_str(), layout.c_str(), pool.size(), prompt, decode, prompt / best_prefill,
      decode / best_decode, static_cast<unsigned long long>(checksum));
  return 0;
}

}  // namespace
}  // namespace relayout

int main(int argc, char** argv) { return relayout::Run(argc, argv); }
