// bench_forward: the forward pass's speed, without a tokenizer, so that any
// checkpoint (a real one or tools/gen_checkpoint.py's) can be timed.
//
//   build/bench/bench_forward --model PATH [--layout auto] [--threads N]
//                             [--prompt 256] [--decode 64] [--reps 3]
//                             [--device cpu|cuda|hostref] [--budget 64MiB]
//                             [--batch 1,8,32]
//
// Loads the model through the start-up path (PrepareLoad, then the
// conversion and the model on the CPU, or with --device on that plugin
// device, as relayoutd does), then per repetition: one prefill of --prompt
// token ids (a fixed pseudo-random sequence) into a fresh sequence, and
// --decode greedy steps of one token each. Prints one JSON line with the
// best repetition's prefill and decode tokens/s. bench/seam.py runs two
// builds of it against each other; without --device and --batch it runs
// the steps it ran before the device seam (the CPU's conversion and model).
//
// --batch B1,B2,...: one JSON line per batch size B instead: B sequences
// each prefilled with --prompt ids (one sequence per forward pass), then
// --decode steps that decode all B at once (one token each, the serving
// engine's decode step), best of --reps; decode_tokens_per_second counts
// B tokens per step. The line carries the model's weight bytes (what a
// decode step streams, the embedding table aside) and the KV cache's bytes
// per token, so that a run can be held against the device's memory
// bandwidth (tools/gpu_check.sh). The CUDA plugin's step graphs follow its
// environment (RELAYOUT_CUDA_GRAPHS=0: off), echoed as "cuda_graphs_env".
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
#include "engine/model/model_placement.h"
#include "engine/model/sampler.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The comma-separated positive integers of `list`; empty on a bad one.
std::vector<int> ParseList(const std::string& list) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= list.size()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const int v = std::atoi(list.substr(at, comma - at).c_str());
    if (v < 1) return {};
    out.push_back(v);
    at = comma + 1;
  }
  return out;
}

// --batch: B sequences prefilled one by one, then decoded together; one
// JSON line per batch size.
int RunBatches(LlamaModel& m, KvCache& cache, const KvCacheShape& shape,
               const std::vector<int32_t>& ids, const std::vector<int>& batches, int decode,
               int reps, const std::string& head) {
  const char* graphs_env = std::getenv("RELAYOUT_CUDA_GRAPHS");
  for (int b : batches) {
    double best_prefill = 1e30, best_decode = 1e30;
    uint64_t checksum = 0;
    for (int r = 0; r < reps; ++r) {
      std::vector<SequenceId> seqs(static_cast<size_t>(b));
      std::vector<int32_t> next(static_cast<size_t>(b));
      auto start = Clock::now();
      for (int i = 0; i < b; ++i) {
        seqs[static_cast<size_t>(i)] = cache.CreateSequence();
        BatchEntry entry{seqs[static_cast<size_t>(i)], ids, 0, false};
        if (Status s = m.Forward({&entry, 1}, &cache); !s.ok()) {
          std::fprintf(stderr, "bench_forward: batch %d prefill: %s\n", b, s.ToString().c_str());
          return 1;
        }
        next[static_cast<size_t>(i)] = ArgMax(m.Logits(0));
      }
      best_prefill = std::min(best_prefill, Since(start));
      const int64_t prompt = static_cast<int64_t>(ids.size());
      std::vector<BatchEntry> batch(static_cast<size_t>(b));
      checksum = 0;
      start = Clock::now();
      for (int step = 0; step < decode; ++step) {
        for (int i = 0; i < b; ++i) {
          const size_t k = static_cast<size_t>(i);
          batch[k] = {seqs[k], {&next[k], 1}, prompt + step, false};
        }
        if (Status s = m.Forward(batch, &cache); !s.ok()) {
          std::fprintf(stderr, "bench_forward: batch %d decode: %s\n", b, s.ToString().c_str());
          return 1;
        }
        for (int i = 0; i < b; ++i) {
          next[static_cast<size_t>(i)] = ArgMax(m.Logits(static_cast<size_t>(i)));
          checksum = checksum * 1000003u + static_cast<uint64_t>(next[static_cast<size_t>(i)]);
        }
      }
      best_decode = std::min(best_decode, Since(start));
      for (SequenceId seq : seqs) cache.Release(seq);
    }
    std::printf(
        "{%s, \"batch\": %d, \"prompt_tokens\": %zu, \"decode_steps\": %d, "
        "\"prefill_tokens_per_second\": %.3f, \"decode_tokens_per_second\": %.3f, "
        "\"decode_step_ms\": %.4f, \"weight_bytes\": %llu, \"kv_bytes_per_token\": %llu, "
        "\"cuda_graphs_env\": \"%s\", \"greedy_checksum\": %llu}\n",
        head.c_str(), b, ids.size(), decode, static_cast<double>(b) * ids.size() / best_prefill,
        static_cast<double>(b) * decode / best_decode, 1e3 * best_decode / decode,
        static_cast<unsigned long long>(m.weight_bytes()),
        static_cast<unsigned long long>(shape.BlockBytes() / shape.block_size),
        graphs_env != nullptr ? graphs_env : "", static_cast<unsigned long long>(checksum));
    std::fflush(stdout);
  }
  return 0;
}

int Run(int argc, char** argv) {
  std::string model, layout = "auto", device = "cpu", budget = "64MiB", batch_list;
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
    } else if (flag == "--device") {
      device = value;
    } else if (flag == "--budget") {
      budget = value;
    } else if (flag == "--batch") {
      batch_list = value;
    } else {
      std::fprintf(stderr, "bench_forward: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const std::vector<int> batches = ParseList(batch_list);
  if (model.empty() || prompt < 1 || decode < 1 || reps < 1 ||
      (!batch_list.empty() && batches.empty())) {
    std::fprintf(stderr,
                 "usage: bench_forward --model PATH [--layout L] [--threads N] "
                 "[--prompt N] [--decode N] [--reps N] [--device SPEC] [--budget SIZE] "
                 "[--batch B1,B2,...]\n");
    return 2;
  }
  LoadOptions options;
  options.model_path = model;
  options.layout = layout;
  options.device = device;
  options.budget = budget;
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  if (!load.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", load.status().ToString().c_str());
    return 1;
  }
  MemoryLedger ledger;
  kernels::ThreadPool pool(threads);
  const auto load_start = Clock::now();
  Result<std::unique_ptr<LlamaModel>> created = [&]() -> Result<std::unique_ptr<LlamaModel>> {
    if (load->device == nullptr) {  // the CPU, as before the device seam
      ASSIGN_OR_RETURN(LoadedWeights weights,
                       ExecuteConversion(*load->checkpoint.source, load->plan, &ledger, nullptr,
                                         nullptr, nullptr));
      return LlamaModel::Create(load->checkpoint.config, load->checkpoint.naming,
                                std::move(weights), &pool, &ledger);
    }
    ASSIGN_OR_RETURN(PlacedWeights weights,
                     ConvertForLoad(*load, &ledger, nullptr, nullptr, nullptr));
    return CreateModel(*load, std::move(weights), &pool, &ledger);
  }();
  if (!created.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", created.status().ToString().c_str());
    return 1;
  }
  const double load_seconds = Since(load_start);
  LlamaModel& m = **created;
  const KvCacheShape shape = m.kv_cache_shape();
  const int64_t sequences = batches.empty() ? 1 : *std::max_element(batches.begin(), batches.end());
  const uint64_t kv_bytes = shape.BytesForTokens(prompt + decode + 16) * sequences;
  Result<std::unique_ptr<KvCache>> cache =
      load->device != nullptr ? KvCache::Create(shape, kv_bytes, load->device.get())
                              : KvCache::Create(shape, kv_bytes, &ledger);
  if (!cache.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", cache.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(m.config().vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (int32_t& id : ids) id = token(rng);
  if (!batches.empty()) {
    char head[1024];
    std::snprintf(head, sizeof head,
                  "\"model\": \"%s\", \"device\": \"%s\", \"layout\": \"%s\", "
                  "\"load_seconds\": %.3f",
                  model.c_str(), load->device != nullptr ? load->device->spec().c_str() : "cpu",
                  layout.c_str(), load_seconds);
    return RunBatches(m, **cache, shape, ids, batches, decode, reps, head);
  }

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
