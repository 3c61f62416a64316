// relayoutd generate --model PATH --prompt TEXT [--max-tokens N]
//   [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N]
//   [--layout auto|native|NAME] [--budget SIZE] [--timings-json FILE]
//
// Loads and converts the checkpoint as `convert` does, then generates: stdout
// gets the prompt followed by the generated text and one newline, nothing
// else (the golden tests compare it byte for byte with llama2.c's output);
// stderr gets the timings. Temperature 0 is greedy.
#include <chrono>
#include <fstream>
#include <iomanip>
#include <random>
#include <thread>

#include "engine/conversion/relayout_executor.h"
#include "engine/memory/process_memory.h"
#include "engine/model/generation.h"
#include "engine/model/kv_cache.h"
#include "engine/model/llama_model.h"
#include "engine/model/model_placement.h"
#include "engine/text/json_writer.h"
#include "engine/tokenizer/checkpoint_tokenizer.h"
#include "server/cli/command.h"
#include "server/cli/load_flags.h"

namespace relayout::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t PeakRss() {
  const Result<uint64_t> hwm = ReadPeakResidentBytes();
  return hwm.ok() ? *hwm : 0;
}

// peak_rss_bytes: VmHWM once generation is done (prefill workspace included);
// ready_peak_rss_bytes: VmHWM once the model is converted and its KV cache
// made, before the prompt: what a server holds at ready, the figure to set
// against another engine's RSS at ready.
std::string TimingsJson(const GenerationTimings& t, double load_seconds, uint64_t peak_rss,
                        uint64_t ready_rss) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  w.Key("prompt_tokens").Int(t.prompt_tokens);
  w.Key("generated_tokens").Int(t.generated_tokens);
  w.Key("prefill_seconds").Double(t.prefill_seconds);
  w.Key("decode_seconds").Double(t.decode_seconds);
  w.Key("prefill_tokens_per_second").Double(t.prefill_tokens_per_second());
  w.Key("decode_tokens_per_second").Double(t.decode_tokens_per_second());
  w.Key("load_seconds").Double(load_seconds);
  w.Key("peak_rss_bytes").Uint(peak_rss);
  w.Key("ready_peak_rss_bytes").Uint(ready_rss);
  w.EndObject();
  return json;
}

}  // namespace

int RunGenerate(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  LoadFlags load_flags;
  std::string prompt;
  int64_t max_tokens = 256;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 0.9;
  int64_t seed = 0;
  int64_t threads = 0;
  int64_t context = 0;
  std::string timings_json;
  bool help = false;
  FlagSet flags("generate");
  load_flags.Register(&flags);
  flags.AddString("prompt", &prompt, "the text to continue (may be empty: BOS only)");
  flags.AddInt("max-tokens", &max_tokens, "tokens to generate at most");
  flags.AddDouble("temperature", &temperature, "sampling temperature; 0 is greedy");
  flags.AddInt("top-k", &top_k, "sample from the k most likely tokens (0: off)");
  flags.AddDouble("top-p", &top_p, "sample from the smallest set of mass >= p (1: off)");
  flags.AddInt("seed", &seed, "random seed (default: from the clock)");
  flags.AddInt("threads", &threads, "compute threads (0: all hardware threads)");
  flags.AddInt("context", &context,
               "positions the sequence may fill (0: prompt + max-tokens, as llama.cpp sizes it; "
               "a warning when past the model's trained context)");
  flags.AddString("timings-json", &timings_json, "also write the timings as JSON to this file");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << flags.Usage();
    return 0;
  }
  if (Status s = load_flags.Finish(); !s.ok()) return ReportError(err, s.WithPrefix("generate"));
  if (load_flags.options.layout == "transposed") {
    return ReportError(
        err, Status::InvalidArgument("generate: --layout transposed",
                                     "no inference kernel reads the transposed layout; use auto, "
                                     "native or a row-group layout"));
  }
  if (max_tokens < 1) {
    return ReportError(err,
                       Status::InvalidArgument("generate: --max-tokens", "must be at least 1"));
  }
  if (context < 0) {
    return ReportError(err, Status::InvalidArgument("generate: --context", "must be 0 or more"));
  }
  if (threads < 0) {
    return ReportError(err, Status::InvalidArgument("generate: --threads", "must be 0 or more"));
  }
  GenerationOptions options;
  options.max_new_tokens = max_tokens;
  options.sampling.temperature = static_cast<float>(temperature);
  options.sampling.top_k = static_cast<int32_t>(top_k);
  options.sampling.top_p = static_cast<float>(top_p);
  options.sampling.seed = flags.WasSet("seed")
                              ? static_cast<uint64_t>(seed)
                              : static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  if (Status s = options.sampling.Validate(); !s.ok()) {
    return ReportError(err, s.WithPrefix("generate"));
  }

  const Clock::time_point load_start = Clock::now();
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), load_flags.options);
  if (!load.ok()) return ReportError(err, load.status());
  Result<std::unique_ptr<Tokenizer>> tokenizer =
      LoadCheckpointTokenizer(Env::Default(), load->checkpoint);
  if (!tokenizer.ok()) return ReportError(err, tokenizer.status());
  MemoryLedger ledger(load->plan.device_capacity);
  Result<PlacedWeights> weights = ConvertForLoad(*load, &ledger, nullptr, nullptr, nullptr);
  if (!weights.ok()) return ReportError(err, weights.status());
  kernels::ThreadPool pool(static_cast<int>(threads));
  Result<std::unique_ptr<LlamaModel>> model =
      CreateModel(*load, std::move(*weights), &pool, &ledger);
  if (!model.ok()) return ReportError(err, model.status());
  const double load_seconds = SecondsSince(load_start);

  EncodeOptions encode;
  Result<std::vector<int32_t>> prompt_ids = (*tokenizer)->Encode(prompt, encode);
  if (!prompt_ids.ok()) return ReportError(err, prompt_ids.status());
  // The cache holds exactly this one generation.
  const ModelConfig& config = (*model)->config();
  const int64_t wanted = static_cast<int64_t>(prompt_ids->size()) + max_tokens;
  const int64_t kv_tokens = context > 0 ? std::min(context, wanted) : wanted;
  options.max_positions = kv_tokens;
  if (kv_tokens > config.context_length) {
    err << "generate: warning: " << kv_tokens << " positions exceed the model's trained context of "
        << config.context_length << "\n";
  }
  const KvCacheShape kv_shape = (*model)->kv_cache_shape();
  Result<std::unique_ptr<KvCache>> cache =
      KvCache::Create(kv_shape, kv_shape.BytesForTokens(kv_tokens), (*model)->device());
  if (!cache.ok()) return ReportError(err, cache.status());
  const uint64_t ready_rss = PeakRss();

  out << prompt << std::flush;
  Result<GenerationResult> result =
      GenerateFromIds(model->get(), cache->get(), **tokenizer, std::move(*prompt_ids), options,
                      [&out](std::string_view piece) { out << piece << std::flush; });
  out << "\n" << std::flush;
  if (!result.ok()) return ReportError(err, result.status());

  const GenerationTimings& t = result->timings;
  const uint64_t peak_rss = PeakRss();
  err << std::fixed << std::setprecision(2) << "generate: prompt " << t.prompt_tokens
      << " tokens in " << t.prefill_seconds << " s (" << t.prefill_tokens_per_second()
      << " tokens/s), generated " << t.generated_tokens << " tokens, decode "
      << t.decode_tokens_per_second() << " tokens/s, finish "
      << FinishReasonName(result->finish_reason) << ", load " << load_seconds << " s, "
      << pool.size() << " threads\n";
  if (!timings_json.empty()) {
    std::ofstream file(timings_json, std::ios::trunc);
    file << TimingsJson(t, load_seconds, peak_rss, ready_rss) << "\n";
    if (!file.good()) {
      return ReportError(err, Status::Unavailable(timings_json, "cannot write the timings"));
    }
  }
  return 0;
}

}  // namespace relayout::cli
