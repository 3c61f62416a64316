// relayoutd bench --model PATH [--n-prompt 512] [--n-gen 128] [--pg PP,TG]
//   [--repetitions 5] [--threads 1,2] [--layout auto,native] [--output md|json]
//
// Prefill and decode speed the way llama-bench measures them, so that one
// command each compares the two engines on a model:
//   ppN    one forward pass of N prompt tokens on an empty cache: N / seconds
//   tgN    N decode steps of one token each from an empty cache: N / seconds
//   ppP+tgT  both in a row: (P + T) / seconds
// Tokens are drawn at random from the vocabulary (seeded), as llama-bench
// does; no sampling is timed. Each test runs --repetitions times after one
// untimed warm-up run, on a fresh sequence each time; the rate's mean and
// sample standard deviation are reported. Every layout (a comma list) and
// thread count (a comma list; 0: all hardware threads) loads and converts the
// model afresh.
//
// Beside each decode rate: the weight bytes a decode step reads (every
// matmul weight once; the embedding only when it is also the output head)
// times tokens/s, the achieved GB/s, and that as a fraction of the machine's
// read bandwidth measured in the same run with the same threads (the
// roofline of a decode step; --read-bandwidth-mib 0 skips it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/conversion/model_loader.h"
#include "engine/model/kv_cache.h"
#include "engine/model/llama_model.h"
#include "engine/model/model_placement.h"
#include "engine/text/json_writer.h"
#include "kernels/cpu/runtime/cpu_features.h"
#include "kernels/cpu/runtime/read_bandwidth.h"
#include "server/cli/command.h"
#include "server/cli/load_flags.h"

namespace relayout::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchTest {
  int64_t prompt = 0;
  int64_t gen = 0;
  std::string Name() const {
    if (prompt > 0 && gen > 0) return "pp" + std::to_string(prompt) + "+tg" + std::to_string(gen);
    return prompt > 0 ? "pp" + std::to_string(prompt) : "tg" + std::to_string(gen);
  }
};

struct BenchRow {
  std::string layout;
  int threads = 0;
  BenchTest test;
  std::vector<double> rates;  // tokens/s per repetition
  double load_seconds = 0;
  double mean = 0;
  double stddev = 0;
};

struct ModelFacts {
  std::string name;
  uint64_t bytes = 0;         // all tensors, in their converted layouts
  uint64_t params = 0;        // elements
  uint64_t decode_bytes = 0;  // weight bytes one decode step reads
  std::string device;
};

Result<std::vector<int64_t>> ParseList(const std::string& flag, const std::string& text,
                                       int64_t min) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || end == nullptr || *end != '\0' || v < min) {
      return Status::InvalidArgument(
          "bench: --" + flag,
          "expected a comma list of integers >= " + std::to_string(min) + ", got \"" + text + "\"");
    }
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

std::vector<std::string> SplitNames(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    if (comma > pos) out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

void MeanAndStddev(BenchRow* row) {
  const double n = static_cast<double>(row->rates.size());
  double sum = 0;
  for (double r : row->rates) sum += r;
  row->mean = n > 0 ? sum / n : 0;
  double sq = 0;
  for (double r : row->rates) sq += (r - row->mean) * (r - row->mean);
  row->stddev = n > 1 ? std::sqrt(sq / (n - 1)) : 0;
}

ModelFacts FactsOf(const PreparedLoad& load) {
  ModelFacts f;
  const std::string& path = load.checkpoint.path;
  const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
  f.name = slash == std::string::npos ? path : path.substr(slash + 1);
  f.device = load.plan.device;
  const bool tied = load.checkpoint.config.tie_word_embeddings;
  for (const TensorConversion& t : load.plan.tensors) {
    const Result<uint64_t> bytes = ByteSizeOf(t.dtype, t.shape);
    const uint64_t n = bytes.ok() ? *bytes : 0;
    f.bytes += n;
    f.params += ElementCount(t.shape).value_or(0);
    const bool matmul = t.shape.size() == 2 && (t.internal_name != "token_embd" || tied);
    if (matmul) f.decode_bytes += n;
  }
  return f;
}

std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int64_t vocab, int64_t n) {
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = pick(rng);
  return out;
}

// One run of `test` on a fresh sequence: tokens per second.
Result<double> RunOnce(LlamaModel* model, KvCache* cache, const BenchTest& test,
                       std::mt19937_64& rng) {
  const int64_t vocab = model->config().vocab_size;
  const std::vector<int32_t> prompt = RandomTokens(rng, vocab, test.prompt);
  const std::vector<int32_t> gen = RandomTokens(rng, vocab, test.gen);
  const SequenceId seq = cache->CreateSequence();
  Status status;
  const Clock::time_point start = Clock::now();
  if (test.prompt > 0) {
    const BatchEntry entry{seq, prompt, 0, false};
    status = model->Forward({&entry, 1}, cache);
  }
  for (int64_t i = 0; status.ok() && i < test.gen; ++i) {
    const BatchEntry entry{seq, {&gen[static_cast<size_t>(i)], 1}, test.prompt + i, false};
    status = model->Forward({&entry, 1}, cache);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  cache->Release(seq);
  if (!status.ok()) return status.WithPrefix("bench: " + test.Name());
  return static_cast<double>(test.prompt + test.gen) / std::max(seconds, 1e-9);
}

std::string HumanBytes(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  return buf;
}

std::string HumanParams(uint64_t p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f B", static_cast<double>(p) / 1e9);
  return buf;
}

void WriteMarkdown(std::ostream& out, const ModelFacts& m, const std::vector<BenchRow>& rows,
                   const std::vector<kernels::ReadBandwidth>& bw) {
  out << "| model | size | params | device | layout | threads | test | t/s | weight GB/s | "
         "of read BW |\n";
  out << "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const BenchRow& r : rows) {
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.2f ± %.2f", r.mean, r.stddev);
    std::string gbps = "-";
    std::string roof = "-";
    if (r.test.prompt == 0) {
      const double g = static_cast<double>(m.decode_bytes) * r.mean / 1e9;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", g);
      gbps = buf;
      for (const kernels::ReadBandwidth& b : bw) {
        if (b.threads == r.threads && b.bytes_per_second > 0) {
          std::snprintf(buf, sizeof buf, "%.0f%% of %.1f", 100 * g * 1e9 / b.bytes_per_second,
                        b.bytes_per_second / 1e9);
          roof = buf;
        }
      }
    }
    out << "| " << m.name << " | " << HumanBytes(m.bytes) << " | " << HumanParams(m.params) << " | "
        << m.device << " | " << r.layout << " | " << r.threads << " | " << r.test.Name() << " | "
        << rate << " | " << gbps << " | " << roof << " |\n";
  }
  for (const kernels::ReadBandwidth& b : bw) {
    char line[160];
    std::snprintf(line, sizeof line,
                  "\nread bandwidth, %d thread%s: %.2f GB/s (best of 3 passes over %s)", b.threads,
                  b.threads == 1 ? "" : "s", b.bytes_per_second / 1e9,
                  HumanBytes(b.buffer_bytes).c_str());
    out << line;
  }
  if (!bw.empty()) out << "\n";
  out << "\ndecode reads " << HumanBytes(m.decode_bytes) << " of weights per token\n";
}

void WriteJson(std::ostream& out, const ModelFacts& m, const std::vector<BenchRow>& rows,
               const std::vector<kernels::ReadBandwidth>& bw, int repetitions) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  w.Key("model").String(m.name);
  w.Key("model_bytes").Uint(m.bytes);
  w.Key("params").Uint(m.params);
  w.Key("decode_weight_bytes").Uint(m.decode_bytes);
  w.Key("device").String(m.device);
  w.Key("cpu").String(kernels::CpuFeaturesToString(kernels::DetectCpuFeatures()));
  w.Key("repetitions").Int(repetitions);
  w.Key("read_bandwidth").BeginArray();
  for (const kernels::ReadBandwidth& b : bw) {
    w.BeginObject();
    w.Key("threads").Int(b.threads);
    w.Key("bytes_per_second").Double(b.bytes_per_second);
    w.Key("buffer_bytes").Uint(b.buffer_bytes);
    w.EndObject();
  }
  w.EndArray();
  w.Key("results").BeginArray();
  for (const BenchRow& r : rows) {
    w.BeginObject();
    w.Key("layout").String(r.layout);
    w.Key("threads").Int(r.threads);
    w.Key("test").String(r.test.Name());
    w.Key("n_prompt").Int(r.test.prompt);
    w.Key("n_gen").Int(r.test.gen);
    w.Key("avg_ts").Double(r.mean);
    w.Key("stddev_ts").Double(r.stddev);
    w.Key("samples_ts").BeginArray();
    for (double v : r.rates) w.Double(v);
    w.EndArray();
    w.Key("load_seconds").Double(r.load_seconds);
    if (r.test.prompt == 0) {
      const double bps = static_cast<double>(m.decode_bytes) * r.mean;
      w.Key("weight_bytes_per_second").Double(bps);
      for (const kernels::ReadBandwidth& b : bw) {
        if (b.threads == r.threads && b.bytes_per_second > 0) {
          w.Key("fraction_of_read_bandwidth").Double(bps / b.bytes_per_second);
        }
      }
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  out << json << "\n";
}

}  // namespace

int RunBench(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  LoadFlags load_flags;
  std::string n_prompt = "512";
  std::string n_gen = "128";
  std::string pg;
  std::string threads_text = "0";
  std::string output = "md";
  int64_t repetitions = 5;
  int64_t seed = 1;
  int64_t read_bw_mib = 1024;
  bool no_warmup = false;
  bool help = false;
  FlagSet flags("bench");
  load_flags.Register(&flags);
  flags.AddString("n-prompt", &n_prompt, "prefill tests: prompt lengths, a comma list (0: none)");
  flags.AddString("n-gen", &n_gen, "decode tests: tokens generated, a comma list (0: none)");
  flags.AddString("pg", &pg, "a prefill+decode test: PP,TG (empty: none)");
  flags.AddInt("repetitions", &repetitions, "timed runs of each test");
  flags.AddString("threads", &threads_text,
                  "thread counts, a comma list (0: all hardware threads)");
  flags.AddString("output", &output, "md (a markdown table) or json");
  flags.AddInt("seed", &seed, "seed of the random token ids");
  flags.AddInt("read-bandwidth-mib", &read_bw_mib,
               "MiB streamed to measure the read bandwidth per thread count (0: skip)");
  flags.AddBool("no-warmup", &no_warmup, "skip the untimed run before each test");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << "relayoutd bench: prefill (ppN) and decode (tgN) tokens/s as llama-bench measures "
           "them;\n--layout takes a comma list here (auto,native,...).\n\n"
        << flags.Usage();
    return 0;
  }
  if (Status s = load_flags.Finish(); !s.ok()) return ReportError(err, s.WithPrefix("bench"));
  if (repetitions < 1) {
    return ReportError(err, Status::InvalidArgument("bench: --repetitions", "must be at least 1"));
  }
  if (output != "md" && output != "json") {
    return ReportError(err, Status::InvalidArgument("bench: --output", "must be md or json"));
  }
  if (read_bw_mib < 0) {
    return ReportError(err,
                       Status::InvalidArgument("bench: --read-bandwidth-mib", "must be 0 or more"));
  }
  Result<std::vector<int64_t>> prompts = ParseList("n-prompt", n_prompt, 0);
  if (!prompts.ok()) return ReportError(err, prompts.status());
  Result<std::vector<int64_t>> gens = ParseList("n-gen", n_gen, 0);
  if (!gens.ok()) return ReportError(err, gens.status());
  Result<std::vector<int64_t>> thread_counts = ParseList("threads", threads_text, 0);
  if (!thread_counts.ok()) return ReportError(err, thread_counts.status());
  std::vector<BenchTest> tests;
  for (int64_t p : *prompts) {
    if (p > 0) tests.push_back({p, 0});
  }
  for (int64_t g : *gens) {
    if (g > 0) tests.push_back({0, g});
  }
  if (!pg.empty()) {
    Result<std::vector<int64_t>> pair = ParseList("pg", pg, 1);
    if (!pair.ok() || pair->size() != 2) {
      return ReportError(
          err, Status::InvalidArgument("bench: --pg", "expected PP,TG, got \"" + pg + "\""));
    }
    tests.push_back({(*pair)[0], (*pair)[1]});
  }
  if (tests.empty()) {
    return ReportError(err, Status::InvalidArgument("bench", "no test: every length is 0"));
  }
  const std::vector<std::string> layouts = SplitNames(load_flags.options.layout);
  if (layouts.empty()) {
    return ReportError(err, Status::InvalidArgument("bench: --layout", "is empty"));
  }
  int64_t max_positions = 0;
  for (const BenchTest& t : tests) max_positions = std::max(max_positions, t.prompt + t.gen);

  ModelFacts facts;
  std::vector<BenchRow> rows;
  std::vector<kernels::ReadBandwidth> bandwidth;
  for (int64_t threads_wanted : *thread_counts) {
    kernels::ThreadPool pool(static_cast<int>(threads_wanted));
    if (read_bw_mib > 0) {
      bandwidth.push_back(
          kernels::MeasureReadBandwidth(&pool, static_cast<uint64_t>(read_bw_mib) << 20));
    }
    for (const std::string& layout : layouts) {
      LoadOptions options = load_flags.options;
      options.layout = layout;
      const Clock::time_point load_start = Clock::now();
      Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
      if (!load.ok()) return ReportError(err, load.status().WithPrefix("bench"));
      facts = FactsOf(*load);
      MemoryLedger ledger(load->plan.device_capacity);
      Result<PlacedWeights> weights = ConvertForLoad(*load, &ledger, nullptr, nullptr, nullptr);
      if (!weights.ok()) return ReportError(err, weights.status().WithPrefix("bench"));
      Result<std::unique_ptr<LlamaModel>> model =
          CreateModel(*load, std::move(*weights), &pool, &ledger);
      if (!model.ok()) return ReportError(err, model.status().WithPrefix("bench"));
      const KvCacheShape shape = (*model)->kv_cache_shape();
      Result<std::unique_ptr<KvCache>> cache =
          KvCache::Create(shape, shape.BytesForTokens(max_positions), (*model)->device());
      if (!cache.ok()) return ReportError(err, cache.status().WithPrefix("bench"));
      const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
      std::mt19937_64 rng(static_cast<uint64_t>(seed));
      for (const BenchTest& test : tests) {
        BenchRow row;
        row.layout = layout;
        row.threads = pool.size();
        row.test = test;
        row.load_seconds = load_seconds;
        for (int64_t r = no_warmup ? 0 : -1; r < repetitions; ++r) {
          Result<double> rate = RunOnce(model->get(), cache->get(), test, rng);
          if (!rate.ok()) return ReportError(err, rate.status());
          if (r >= 0) row.rates.push_back(*rate);
        }
        MeanAndStddev(&row);
        err << "bench: " << layout << ", " << row.threads << " threads, " << test.Name() << ": "
            << row.mean << " t/s\n";
        rows.push_back(std::move(row));
      }
    }
  }
  if (output == "json") {
    WriteJson(out, facts, rows, bandwidth, static_cast<int>(repetitions));
  } else {
    WriteMarkdown(out, facts, rows, bandwidth);
  }
  return 0;
}

}  // namespace relayout::cli
