#include "server/rpc/generation_messages.h"

#include "engine/text/unicode.h"

namespace relayout::server {
namespace {

// Bounds the tokenizer's work: text longer than 64 bytes per admitted token
// cannot fit the limit with any real vocabulary.
Status CheckPromptBytes(uint64_t bytes, std::string_view what, const ServingLimits& limits) {
  const uint64_t max_bytes = static_cast<uint64_t>(limits.max_prompt_tokens) * 64 + 1024;
  if (bytes <= max_bytes) return Status::OK();
  return Status::ResourceExhausted(
      "prompt", StrCat(bytes, " bytes of ", what, ", far above the limit of ",
                       limits.max_prompt_tokens, " tokens (--max-prompt-tokens)"));
}

Status CheckPromptTokens(size_t tokens, const ServingLimits& limits) {
  if (static_cast<int64_t>(tokens) <= limits.max_prompt_tokens) return Status::OK();
  return Status::ResourceExhausted(
      "prompt", StrCat(tokens, " tokens, above the limit of ", limits.max_prompt_tokens,
                       " (--max-prompt-tokens)"));
}

}  // namespace

Result<std::vector<int32_t>> PromptTokenIds(const v1::Prompt& prompt, const Tokenizer& tokenizer,
                                            const ServingLimits& limits,
                                            const ChatTemplate* chat_template) {
  std::vector<int32_t> ids;
  switch (prompt.kind_case()) {
    case v1::Prompt::kMessages: {
      const v1::ChatMessages& chat = prompt.messages();
      std::vector<ChatMessage> messages;
      messages.reserve(chat.messages_size());
      for (const v1::ChatMessage& m : chat.messages()) messages.push_back({m.role(), m.content()});
      return ChatPromptTokenIds(messages,
                                !chat.has_add_generation_prompt() || chat.add_generation_prompt(),
                                nullptr, chat_template, tokenizer, limits);
    }
    case v1::Prompt::kText: {
      if (prompt.text().empty()) return Status::InvalidArgument("prompt", "text is empty");
      RETURN_IF_ERROR(CheckPromptBytes(prompt.text().size(), "text", limits));
      EncodeOptions options;
      options.add_bos = !prompt.has_add_bos() || prompt.add_bos();
      options.parse_special = prompt.parse_special();
      Result<std::vector<int32_t>> encoded = tokenizer.Encode(prompt.text(), options);
      if (!encoded.ok()) {
        return Status::InvalidArgument("prompt", encoded.status().message());
      }
      ids = std::move(*encoded);
      break;
    }
    case v1::Prompt::kTokenIds: {
      const auto& given = prompt.token_ids().ids();
      for (int i = 0; i < given.size(); ++i) {
        if (given[i] < 0 || given[i] >= tokenizer.vocab_size()) {
          return Status::InvalidArgument(
              StrCat("prompt.token_ids[", i, "]"),
              StrCat(given[i], " is outside the vocabulary [0, ", tokenizer.vocab_size(), ")"));
        }
      }
      ids.assign(given.begin(), given.end());
      break;
    }
    case v1::Prompt::KIND_NOT_SET:
      break;
  }
  if (ids.empty()) {
    return Status::InvalidArgument("prompt", "empty: give text, token_ids or messages");
  }
  RETURN_IF_ERROR(CheckPromptTokens(ids.size(), limits));
  return ids;
}

Result<std::vector<int32_t>> ChatPromptTokenIds(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt, const JsonValue* extra,
                                                const ChatTemplate* chat_template,
                                                const Tokenizer& tokenizer,
                                                const ServingLimits& limits) {
  if (chat_template == nullptr) return Status::FailedPrecondition(kNoChatTemplateMessage);
  if (messages.empty()) return Status::InvalidArgument("prompt", "messages: empty");
  uint64_t message_bytes = 0;
  for (const ChatMessage& m : messages) message_bytes += m.role.size() + m.content.size();
  RETURN_IF_ERROR(CheckPromptBytes(message_bytes, "messages", limits));
  ASSIGN_OR_RETURN(std::string text, chat_template->Apply(messages, add_generation_prompt, extra));
  RETURN_IF_ERROR(CheckPromptBytes(text.size(), "rendered chat template", limits));
  EncodeOptions options;
  options.add_bos = false;
  options.parse_special = true;
  Result<std::vector<int32_t>> ids = tokenizer.Encode(text, options);
  if (!ids.ok()) return Status::InvalidArgument("prompt", ids.status().message());
  if (ids->empty()) return Status::InvalidArgument("prompt", "the chat template rendered no text");
  RETURN_IF_ERROR(CheckPromptTokens(ids->size(), limits));
  return std::move(*ids);
}

Result<GenerationRequest> ToGenerationRequest(const v1::Prompt& prompt,
                                              const v1::SamplingParams& sampling,
                                              const Tokenizer& tokenizer,
                                              const ServingLimits& limits,
                                              const SamplingDefaults& defaults,
                                              const ChatTemplate* chat_template) {
  GenerationRequest request;
  ASSIGN_OR_RETURN(request.prompt_ids, PromptTokenIds(prompt, tokenizer, limits, chat_template));
  SamplingParams& p = request.sampling;
  p.temperature = sampling.has_temperature() ? sampling.temperature()
                                             : defaults.temperature.value_or(p.temperature);
  // top_k has no presence in the proto: 0 (off) is also "unset".
  p.top_k = sampling.top_k() != 0 ? sampling.top_k() : defaults.top_k.value_or(0);
  p.top_p = sampling.has_top_p() ? sampling.top_p() : defaults.top_p.value_or(p.top_p);
  p.min_p = sampling.min_p();
  if (sampling.has_repetition_penalty()) p.repetition_penalty = sampling.repetition_penalty();
  p.frequency_penalty = sampling.frequency_penalty();
  p.presence_penalty = sampling.presence_penalty();
  request.seed_given = sampling.has_seed();
  if (sampling.has_seed()) p.seed = sampling.seed();
  p.top_logprobs = sampling.top_logprobs();
  RETURN_IF_ERROR(p.Validate());
  request.logprobs = sampling.logprobs() || sampling.top_logprobs() > 0;

  if (sampling.stop_size() > kMaxStopStrings) {
    return Status::InvalidArgument(
        "sampling.stop", StrCat(sampling.stop_size(), " strings, at most ", kMaxStopStrings));
  }
  for (int i = 0; i < sampling.stop_size(); ++i) {
    const std::string& s = sampling.stop(i);
    if (s.empty() || s.size() > kMaxStopStringBytes) {
      return Status::InvalidArgument(StrCat("sampling.stop[", i, "]"),
                                     StrCat(s.size(), " bytes, must be 1..", kMaxStopStringBytes));
    }
    request.stop_strings.push_back(s);
  }
  if (sampling.stop_token_ids_size() > kMaxStopTokenIds) {
    return Status::InvalidArgument(
        "sampling.stop_token_ids",
        StrCat(sampling.stop_token_ids_size(), " ids, at most ", kMaxStopTokenIds));
  }
  for (int i = 0; i < sampling.stop_token_ids_size(); ++i) {
    const int32_t id = sampling.stop_token_ids(i);
    if (id < 0 || id >= tokenizer.vocab_size()) {
      return Status::InvalidArgument(
          StrCat("sampling.stop_token_ids[", i, "]"),
          StrCat(id, " is outside the vocabulary [0, ", tokenizer.vocab_size(), ")"));
    }
    request.stop_token_ids.push_back(id);
  }
  const int64_t asked = sampling.max_new_tokens();
  if (asked > limits.max_new_tokens) {
    return Status::ResourceExhausted(
        "sampling.max_new_tokens",
        StrCat(asked, " is above the limit of ", limits.max_new_tokens, " (--max-new-tokens)"));
  }
  request.max_new_tokens = asked == 0 ? limits.max_new_tokens : asked;
  request.ignore_eos = sampling.ignore_eos();
  return request;
}

Result<int64_t> DecodeTokenCount(const v1::DecodeRequest& request, const ServingLimits& limits) {
  if (request.session_id().empty()) return Status::InvalidArgument("session_id", "empty");
  const int64_t n = request.num_tokens() == 0 ? 1 : request.num_tokens();
  if (n > limits.max_new_tokens) {
    return Status::ResourceExhausted(
        "num_tokens",
        StrCat(n, " is above the limit of ", limits.max_new_tokens, " (--max-new-tokens)"));
  }
  return n;
}

std::string ToValidUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Utf8Char c = DecodeUtf8(bytes, pos);
    if (c.code_point == kInvalidCodePoint) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      pos += 1;
    } else {
      out.append(bytes.substr(pos, c.length));
      pos += c.length;
    }
  }
  return out;
}

v1::FinishReason ToProtoFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kMaxTokens:
    case FinishReason::kContextFull:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kEndOfGeneration:
      return v1::FINISH_REASON_END_OF_GENERATION;
    case FinishReason::kStopString:
      return v1::FINISH_REASON_STOP_STRING;
    case FinishReason::kStopToken:
      return v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void ToProtoToken(const GeneratedToken& token, const Tokenizer& tokenizer, v1::Token* out) {
  out->set_id(token.id);
  out->set_text(ToValidUtf8(token.text));
  if (!token.has_logprob) return;
  out->set_logprob(token.logprob);
  for (const TokenLogprob& alt : token.top) {
    v1::TokenLogprob* p = out->add_top_logprobs();
    p->set_id(alt.id);
    p->set_text(ToValidUtf8(tokenizer.DecodePiece(alt.id)));
    p->set_logprob(alt.logprob);
  }
}

}  // namespace relayout::server
