#include "engine/model/generation.h"

#include <algorithm>
#include <chrono>

#include "engine/tokenizer/stop_string_filter.h"
#include "engine/tokenizer/streaming_decoder.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Releases the sequence on every path out of a generation.
class SequenceGuard {
 public:
  SequenceGuard(KvCache* cache) : cache_(cache), id_(cache->CreateSequence()) {}
  ~SequenceGuard() { cache_->Release(id_); }
  SequenceGuard(const SequenceGuard&) = delete;
  SequenceGuard& operator=(const SequenceGuard&) = delete;
  SequenceId id() const { return id_; }

 private:
  KvCache* cache_;
  SequenceId id_;
};

}  // namespace

std::vector<int32_t> StopTokenIds(const Tokenizer& tokenizer, const ModelConfig& config,
                                  const GenerationOptions& options) {
  std::vector<int32_t> ids = tokenizer.eos_ids();
  for (int64_t id : config.eos_token_ids) ids.push_back(static_cast<int32_t>(id));
  if (options.stop_at_bos) {
    if (tokenizer.bos_id() >= 0) ids.push_back(tokenizer.bos_id());
    if (config.bos_token_id >= 0) ids.push_back(static_cast<int32_t>(config.bos_token_id));
  }
  return ids;
}

Result<GenerationResult> Generate(LlamaModel* model, KvCache* cache, const Tokenizer& tokenizer,
                                  std::string_view prompt, const GenerationOptions& options,
                                  const TextCallback& on_text) {
  EncodeOptions encode;
  encode.add_bos = options.add_bos;
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(prompt, encode));
  return GenerateFromIds(model, cache, tokenizer, std::move(ids), options, on_text);
}

Result<GenerationResult> GenerateFromIds(LlamaModel* model, KvCache* cache,
                                         const Tokenizer& tokenizer,
                                         std::vector<int32_t> prompt_ids,
                                         const GenerationOptions& options,
                                         const TextCallback& on_text) {
  RETURN_IF_ERROR(options.sampling.Validate());
  if (options.max_new_tokens < 1) {
    return Status::InvalidArgument("generate", "max new tokens must be at least 1");
  }
  if (prompt_ids.empty()) {
    return Status::InvalidArgument("generate", "the prompt has no tokens (and no BOS)");
  }
  const ModelConfig& config = model->config();
  const int64_t prompt_len = static_cast<int64_t>(prompt_ids.size());
  const int64_t max_positions =
      options.max_positions > 0 ? options.max_positions : config.context_length;
  if (prompt_len >= max_positions) {
    return Status::InvalidArgument(
        "generate", StrCat("the prompt's ", prompt_len,
                           " tokens leave no room in the context window of ", max_positions));
  }
  const std::vector<int32_t> stop_ids = StopTokenIds(tokenizer, config, options);
  auto is_stop = [&](int32_t id) {
    return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
  };

  GenerationResult result;
  result.prompt_ids = std::move(prompt_ids);
  result.timings.prompt_tokens = prompt_len;
  result.ids.reserve(static_cast<size_t>(options.max_new_tokens));
  Sampler sampler(options.sampling);
  sampler.ObservePrompt(result.prompt_ids);
  StreamingDecoder decoder(&tokenizer, result.prompt_ids.back());
  StopStringFilter filter(options.stop_strings);
  // Feeds a piece through the stop strings; true when one appeared.
  auto append = [&](const std::string& piece) {
    bool stopped = false;
    const std::string out = filter.Append(piece, &stopped);
    if (on_text && !out.empty()) on_text(out);
    return stopped;
  };
  SequenceGuard sequence(cache);
  std::vector<float> logits(static_cast<size_t>(config.vocab_size));

  Clock::time_point start = Clock::now();
  BatchEntry entry{sequence.id(), result.prompt_ids, 0, false};
  RETURN_IF_ERROR(model->Forward({&entry, 1}, cache));
  int64_t position = prompt_len;  // of the next token to run
  bool prefill = true;
  while (true) {
    std::span<const float> row = model->Logits(0);
    std::copy(row.begin(), row.end(), logits.begin());
    const int32_t next = sampler.Sample(logits).id;
    if (prefill) {
      result.timings.prefill_seconds = SecondsSince(start);
      start = Clock::now();
      prefill = false;
    }
    if (is_stop(next)) {
      result.finish_reason = FinishReason::kEndOfGeneration;
      break;
    }
    result.ids.push_back(next);
    if (append(decoder.Next(next))) {
      result.finish_reason = FinishReason::kStopString;
      break;
    }
    if (static_cast<int64_t>(result.ids.size()) >= options.max_new_tokens) {
      result.finish_reason = FinishReason::kMaxTokens;
      break;
    }
    if (position >= max_positions) {
      result.finish_reason = FinishReason::kContextFull;
      break;
    }
    entry = BatchEntry{sequence.id(), {&result.ids.back(), 1}, position, false};
    RETURN_IF_ERROR(model->Forward({&entry, 1}, cache));
    ++position;
    ++result.timings.decode_steps;
  }
  if (result.finish_reason != FinishReason::kStopString) {
    if (append(decoder.Flush())) result.finish_reason = FinishReason::kStopString;
  }
  if (const std::string rest = filter.Finish(); on_text && !rest.empty()) on_text(rest);
  result.text = filter.text();
  result.timings.decode_seconds = SecondsSince(start);
  result.timings.generated_tokens = static_cast<int64_t>(result.ids.size());
  return result;
}

}  // namespace relayout
