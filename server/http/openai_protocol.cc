#include "server/http/openai_protocol.h"

#include <algorithm>
#include <limits>
#include <random>

#include "engine/text/json_writer.h"
#include "server/rpc/generation_messages.h"

namespace relayout::server {
namespace {

// ---- Reading fields --------------------------------------------------------

// The member, or nullptr when absent or null.
const JsonValue* Member(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.Find(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

Status WrongType(std::string_view field, std::string_view want, const JsonValue& got) {
  return Status::InvalidArgument(
      field, StrCat("must be ", want, ", got ", JsonValue::TypeName(got.type())));
}

Result<bool> ReadBool(const JsonValue& v, std::string_view field) {
  if (!v.is_bool()) return WrongType(field, "a boolean", v);
  return v.as_bool();
}

Result<float> ReadFloat(const JsonValue& v, std::string_view field) {
  if (!v.is_number()) return WrongType(field, "a number", v);
  return static_cast<float>(v.as_double());
}

Result<int64_t> ReadInt(const JsonValue& v, std::string_view field) {
  if (!v.is_number()) return WrongType(field, "an integer", v);
  if (!v.as_int64()) return Status::InvalidArgument(field, "must be an integer");
  return *v.as_int64();
}

Result<std::string> ReadString(const JsonValue& v, std::string_view field) {
  if (!v.is_string()) return WrongType(field, "a string", v);
  return v.as_string();
}

// An int32 in [lo, hi].
Result<int32_t> ReadIntIn(const JsonValue& v, std::string_view field, int64_t lo, int64_t hi) {
  ASSIGN_OR_RETURN(int64_t n, ReadInt(v, field));
  if (n < lo || n > hi) {
    return Status::InvalidArgument(field, StrCat(n, " is outside [", lo, ", ", hi, "]"));
  }
  return static_cast<int32_t>(n);
}

Status Unsupported(std::string_view field, std::string_view what) {
  return Status::InvalidArgument(field, StrCat(what, " is not supported"));
}

// ---- The fields both endpoints share ---------------------------------------

Status ReadStop(const JsonValue& v, v1::SamplingParams* s) {
  if (v.is_string()) {
    s->add_stop(v.as_string());
    return Status::OK();
  }
  if (!v.is_array()) return WrongType("stop", "a string or an array of strings", v);
  for (size_t i = 0; i < v.as_array().size(); ++i) {
    ASSIGN_OR_RETURN(std::string stop, ReadString(v.as_array()[i], StrCat("stop[", i, "]")));
    s->add_stop(std::move(stop));
  }
  return Status::OK();
}

Status ReadCommon(const JsonValue& body, OpenAiRequest* r) {
  v1::SamplingParams* s = &r->sampling;
  if (const JsonValue* v = Member(body, "model")) {
    ASSIGN_OR_RETURN(r->model, ReadString(*v, "model"));
  }
  if (const JsonValue* v = Member(body, "stream")) {
    ASSIGN_OR_RETURN(r->stream, ReadBool(*v, "stream"));
  }
  if (const JsonValue* v = Member(body, "stream_options")) {
    if (!v->is_object()) return WrongType("stream_options", "an object", *v);
    if (!r->stream) {
      return Status::InvalidArgument("stream_options", "only allowed when stream is true");
    }
    if (const JsonValue* u = Member(*v, "include_usage")) {
      ASSIGN_OR_RETURN(r->include_usage, ReadBool(*u, "stream_options.include_usage"));
    }
  }
  if (const JsonValue* v = Member(body, "n")) {
    ASSIGN_OR_RETURN(int64_t n, ReadInt(*v, "n"));
    if (n != 1) return Status::InvalidArgument("n", StrCat(n, ": only n = 1 is supported"));
  }
  // Chat's max_completion_tokens replaces max_tokens; either may be given.
  const JsonValue* max_tokens = Member(body, "max_completion_tokens");
  std::string_view max_field = "max_completion_tokens";
  if (max_tokens == nullptr || r->endpoint != OpenAiEndpoint::kChatCompletions) {
    max_tokens = Member(body, "max_tokens");
    max_field = "max_tokens";
  }
  if (max_tokens != nullptr) {
    ASSIGN_OR_RETURN(int64_t n, ReadInt(*max_tokens, max_field));
    if (n < 1) return Status::InvalidArgument(max_field, StrCat(n, ", must be >= 1"));
    // Above uint32, ToGenerationRequest reports it as above the limit.
    s->set_max_new_tokens(
        static_cast<uint32_t>(std::min<int64_t>(n, std::numeric_limits<uint32_t>::max())));
  }
  if (const JsonValue* v = Member(body, "temperature")) {
    ASSIGN_OR_RETURN(float t, ReadFloat(*v, "temperature"));
    s->set_temperature(t);
  }
  if (const JsonValue* v = Member(body, "top_p")) {
    ASSIGN_OR_RETURN(float p, ReadFloat(*v, "top_p"));
    s->set_top_p(p);
  }
  if (const JsonValue* v = Member(body, "seed")) {
    ASSIGN_OR_RETURN(int64_t seed, ReadInt(*v, "seed"));
    s->set_seed(static_cast<uint64_t>(seed));  // negative seeds keep their bits
  }
  if (const JsonValue* v = Member(body, "stop")) RETURN_IF_ERROR(ReadStop(*v, s));
  if (const JsonValue* v = Member(body, "frequency_penalty")) {
    ASSIGN_OR_RETURN(float p, ReadFloat(*v, "frequency_penalty"));
    s->set_frequency_penalty(p);
  }
  if (const JsonValue* v = Member(body, "presence_penalty")) {
    ASSIGN_OR_RETURN(float p, ReadFloat(*v, "presence_penalty"));
    s->set_presence_penalty(p);
  }
  if (const JsonValue* v = Member(body, "logit_bias")) {
    if (!v->is_object()) return WrongType("logit_bias", "an object", *v);
    if (!v->as_object().empty()) return Unsupported("logit_bias", "logit_bias");
  }
  // vLLM's extra sampling fields.
  if (const JsonValue* v = Member(body, "top_k")) {
    ASSIGN_OR_RETURN(int32_t k, ReadIntIn(*v, "top_k", -1, std::numeric_limits<int32_t>::max()));
    s->set_top_k(k < 0 ? 0 : k);  // vLLM: -1 is off
  }
  if (const JsonValue* v = Member(body, "min_p")) {
    ASSIGN_OR_RETURN(float p, ReadFloat(*v, "min_p"));
    s->set_min_p(p);
  }
  if (const JsonValue* v = Member(body, "repetition_penalty")) {
    ASSIGN_OR_RETURN(float p, ReadFloat(*v, "repetition_penalty"));
    s->set_repetition_penalty(p);
  }
  if (const JsonValue* v = Member(body, "ignore_eos")) {
    ASSIGN_OR_RETURN(bool b, ReadBool(*v, "ignore_eos"));
    s->set_ignore_eos(b);
  }
  if (const JsonValue* v = Member(body, "stop_token_ids")) {
    if (!v->is_array()) return WrongType("stop_token_ids", "an array of integers", *v);
    for (size_t i = 0; i < v->as_array().size(); ++i) {
      ASSIGN_OR_RETURN(int32_t id, ReadIntIn(v->as_array()[i], StrCat("stop_token_ids[", i, "]"), 0,
                                             std::numeric_limits<int32_t>::max()));
      s->add_stop_token_ids(id);
    }
  }
  return Status::OK();
}

// ---- Completions -----------------------------------------------------------

Status ReadTokenIds(const JsonValue& list, std::string_view field, v1::Prompt* prompt) {
  auto* ids = prompt->mutable_token_ids()->mutable_ids();
  for (size_t i = 0; i < list.as_array().size(); ++i) {
    ASSIGN_OR_RETURN(int32_t id, ReadIntIn(list.as_array()[i], StrCat(field, "[", i, "]"), 0,
                                           std::numeric_limits<int32_t>::max()));
    ids->Add(id);
  }
  if (ids->empty()) return Status::InvalidArgument(field, "empty");
  return Status::OK();
}

// A string, a list of one string, a list of token ids, or a list of one
// such list.
Status ReadPrompt(const JsonValue& body, v1::Prompt* prompt) {
  const JsonValue* v = Member(body, "prompt");
  if (v == nullptr) return Status::InvalidArgument("prompt", "required");
  const JsonValue* one = v;
  if (v->is_array() && !v->as_array().empty() && !v->as_array()[0].is_number()) {
    if (v->as_array().size() != 1) {
      return Status::InvalidArgument(
          "prompt",
          StrCat(v->as_array().size(), " prompts: only one prompt per request is supported"));
    }
    one = &v->as_array()[0];
  }
  if (one->is_string()) {
    prompt->set_text(one->as_string());
    prompt->set_parse_special(true);  // as vLLM and Hugging Face tokenizers do
    return Status::OK();
  }
  if (one->is_array()) return ReadTokenIds(*one, "prompt", prompt);
  return WrongType("prompt", "a string, an array of strings or an array of token ids", *v);
}

Status ReadCompletion(const JsonValue& body, OpenAiRequest* r) {
  RETURN_IF_ERROR(ReadPrompt(body, &r->prompt));
  if (const JsonValue* v = Member(body, "logprobs")) {
    // An integer: that many alternatives per token, with the chosen token's.
    ASSIGN_OR_RETURN(int32_t n, ReadIntIn(*v, "logprobs", 0, 20));
    r->sampling.set_logprobs(true);
    r->sampling.set_top_logprobs(n);
  }
  if (const JsonValue* v = Member(body, "echo")) {
    ASSIGN_OR_RETURN(bool echo, ReadBool(*v, "echo"));
    if (echo) return Unsupported("echo", "echo");
  }
  if (const JsonValue* v = Member(body, "best_of")) {
    ASSIGN_OR_RETURN(int64_t n, ReadInt(*v, "best_of"));
    if (n != 1) return Status::InvalidArgument("best_of", StrCat(n, ": only 1 is supported"));
  }
  if (const JsonValue* v = Member(body, "suffix")) {
    ASSIGN_OR_RETURN(std::string suffix, ReadString(*v, "suffix"));
    if (!suffix.empty()) return Unsupported("suffix", "suffix");
  }
  return Status::OK();
}

// ---- Chat ------------------------------------------------------------------

// A message's content: a string, or text parts joined by newlines (as vLLM).
Result<std::string> ReadContent(const JsonValue& v, std::string_view field) {
  if (v.is_string()) return v.as_string();
  if (!v.is_array()) return WrongType(field, "a string or an array of content parts", v);
  std::string text;
  for (size_t i = 0; i < v.as_array().size(); ++i) {
    const JsonValue& part = v.as_array()[i];
    const std::string name = StrCat(field, "[", i, "]");
    if (!part.is_object()) return WrongType(name, "an object", part);
    const JsonValue* type = Member(part, "type");
    if (type == nullptr) return Status::InvalidArgument(StrCat(name, ".type"), "required");
    ASSIGN_OR_RETURN(std::string type_name, ReadString(*type, StrCat(name, ".type")));
    if (type_name != "text") {
      return Status::InvalidArgument(StrCat(name, ".type"),
                                     StrCat("\"", type_name, "\": only text parts are supported"));
    }
    const JsonValue* part_text = Member(part, "text");
    if (part_text == nullptr) return Status::InvalidArgument(StrCat(name, ".text"), "required");
    ASSIGN_OR_RETURN(std::string t, ReadString(*part_text, StrCat(name, ".text")));
    if (i > 0) text += "\n";
    text += t;
  }
  return text;
}

Status ReadMessages(const JsonValue& body, std::vector<ChatMessage>* messages) {
  const JsonValue* v = Member(body, "messages");
  if (v == nullptr) return Status::InvalidArgument("messages", "required");
  if (!v->is_array()) return WrongType("messages", "an array", *v);
  if (v->as_array().empty()) return Status::InvalidArgument("messages", "empty");
  for (size_t i = 0; i < v->as_array().size(); ++i) {
    const JsonValue& m = v->as_array()[i];
    const std::string name = StrCat("messages[", i, "]");
    if (!m.is_object()) return WrongType(name, "an object", m);
    const JsonValue* role = Member(m, "role");
    if (role == nullptr) return Status::InvalidArgument(StrCat(name, ".role"), "required");
    ChatMessage message;
    ASSIGN_OR_RETURN(message.role, ReadString(*role, StrCat(name, ".role")));
    // OpenAI's newer "developer" is the system message of older templates.
    if (message.role == "developer") message.role = "system";
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      return Status::InvalidArgument(
          StrCat(name, ".role"),
          StrCat("\"", message.role, "\": must be system, developer, user or assistant"));
    }
    if (const JsonValue* tool_calls = Member(m, "tool_calls");
        tool_calls != nullptr && !(tool_calls->is_array() && tool_calls->as_array().empty())) {
      return Unsupported(StrCat(name, ".tool_calls"), "tool_calls");
    }
    const JsonValue* content = Member(m, "content");
    if (content == nullptr && message.role != "assistant") {
      return Status::InvalidArgument(StrCat(name, ".content"), "required");
    }
    if (content != nullptr) {
      ASSIGN_OR_RETURN(message.content, ReadContent(*content, StrCat(name, ".content")));
    }
    messages->push_back(std::move(message));
  }
  return Status::OK();
}

Status ReadChat(const JsonValue& body, OpenAiRequest* r) {
  RETURN_IF_ERROR(ReadMessages(body, &r->messages));
  bool logprobs = false;
  if (const JsonValue* v = Member(body, "logprobs")) {
    ASSIGN_OR_RETURN(logprobs, ReadBool(*v, "logprobs"));
  }
  if (const JsonValue* v = Member(body, "top_logprobs")) {
    ASSIGN_OR_RETURN(int32_t n, ReadIntIn(*v, "top_logprobs", 0, 20));
    if (n > 0 && !logprobs) {
      return Status::InvalidArgument("top_logprobs", "needs logprobs set to true");
    }
    r->sampling.set_top_logprobs(n);
  }
  r->sampling.set_logprobs(logprobs);
  if (const JsonValue* v = Member(body, "add_generation_prompt")) {
    ASSIGN_OR_RETURN(r->add_generation_prompt, ReadBool(*v, "add_generation_prompt"));
  }
  if (const JsonValue* v = Member(body, "chat_template_kwargs")) {
    if (!v->is_object()) return WrongType("chat_template_kwargs", "an object", *v);
    r->chat_template_kwargs = *v;
  }
  if (const JsonValue* v = Member(body, "tools")) {
    if (!v->is_array()) return WrongType("tools", "an array", *v);
    if (!v->as_array().empty()) return Unsupported("tools", "tools");
  }
  if (const JsonValue* v = Member(body, "tool_choice")) {
    if (!(v->is_string() && v->as_string() == "none")) {
      return Unsupported("tool_choice", "a tool_choice other than \"none\"");
    }
  }
  if (const JsonValue* v = Member(body, "response_format")) {
    if (!v->is_object()) return WrongType("response_format", "an object", *v);
    const JsonValue* type = Member(*v, "type");
    if (type == nullptr || !type->is_string() || type->as_string() != "text") {
      return Unsupported("response_format", "a response_format other than {\"type\": \"text\"}");
    }
  }
  return Status::OK();
}

// ---- Errors ----------------------------------------------------------------

// The field a "subject: reason" message names, in the request's words.
std::string ParamOf(std::string_view message, OpenAiEndpoint endpoint) {
  const size_t colon = message.find(": ");
  if (colon == std::string_view::npos) return "";
  std::string_view subject = message.substr(0, colon);
  for (const char c : subject) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '[' || c == ']';
    if (!ok) return "";
  }
  if (subject == "sampling") {  // "sampling: temperature is 3, ..."
    const std::string_view rest = message.substr(colon + 2);
    return std::string(rest.substr(0, rest.find(' ')));
  }
  if (subject.starts_with("sampling.")) subject.remove_prefix(9);
  if (subject.starts_with("max_new_tokens")) return "max_tokens";
  if (subject.starts_with("stop[")) return "stop";
  if (subject == "prompt" || subject.starts_with("prompt.")) {
    return endpoint == OpenAiEndpoint::kChatCompletions ? "messages" : "prompt";
  }
  return std::string(subject);
}

// ---- Writing ---------------------------------------------------------------

std::string Event(const std::string& json) { return StrCat("data: ", json, "\n\n"); }

void BeginChunk(const OpenAiResponseContext& ctx, JsonWriter& w) {
  const bool chat = ctx.endpoint == OpenAiEndpoint::kChatCompletions;
  w.BeginObject();
  w.Key("id").String(ctx.id);
  w.Key("object").String(chat ? "chat.completion.chunk" : "text_completion");
  w.Key("created").Int(ctx.created);
  w.Key("model").String(ctx.model);
}

void EndChunk(const OpenAiResponseContext& ctx, JsonWriter& w) {
  if (ctx.include_usage) w.Key("usage").Null();
  w.EndObject();
}

void WriteBytes(std::string_view bytes, JsonWriter& w) {
  w.BeginArray();
  for (const char c : bytes) w.Int(static_cast<unsigned char>(c));
  w.EndArray();
}

// One entry of chat's logprobs.content.
void WriteChatLogprob(const GeneratedToken& t, const Tokenizer& tokenizer, JsonWriter& w) {
  const std::string piece = tokenizer.DecodePiece(t.id);
  w.BeginObject();
  w.Key("token").String(ToValidUtf8(piece));
  w.Key("logprob").Double(t.logprob);
  w.Key("bytes");
  WriteBytes(piece, w);
  w.Key("top_logprobs").BeginArray();
  for (const TokenLogprob& alt : t.top) {
    const std::string alt_piece = tokenizer.DecodePiece(alt.id);
    w.BeginObject();
    w.Key("token").String(ToValidUtf8(alt_piece));
    w.Key("logprob").Double(alt.logprob);
    w.Key("bytes");
    WriteBytes(alt_piece, w);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void WriteChatLogprobs(std::span<const GeneratedToken> tokens, const Tokenizer& tokenizer,
                       JsonWriter& w) {
  w.BeginObject();
  w.Key("content").BeginArray();
  for (const GeneratedToken& t : tokens) WriteChatLogprob(t, tokenizer, w);
  w.EndArray();
  w.Key("refusal").Null();
  w.EndObject();
}

// The legacy completions shape: parallel arrays.
void WriteLegacyLogprobs(std::span<const GeneratedToken> tokens, const Tokenizer& tokenizer,
                         int64_t text_offset, JsonWriter& w) {
  w.BeginObject();
  w.Key("tokens").BeginArray();
  for (const GeneratedToken& t : tokens) w.String(ToValidUtf8(tokenizer.DecodePiece(t.id)));
  w.EndArray();
  w.Key("token_logprobs").BeginArray();
  for (const GeneratedToken& t : tokens) w.Double(t.logprob);
  w.EndArray();
  w.Key("top_logprobs").BeginArray();
  for (const GeneratedToken& t : tokens) {
    w.BeginObject();
    // Two alternatives that decode to the same text keep the first (better).
    std::vector<std::string> seen;
    for (const TokenLogprob& alt : t.top) {
      std::string text = ToValidUtf8(tokenizer.DecodePiece(alt.id));
      if (std::find(seen.begin(), seen.end(), text) != seen.end()) continue;
      w.Key(text).Double(alt.logprob);
      seen.push_back(std::move(text));
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("text_offset").BeginArray();
  for (const GeneratedToken& t : tokens) {
    w.Int(text_offset);
    text_offset += static_cast<int64_t>(ToValidUtf8(t.text).size());
  }
  w.EndArray();
  w.EndObject();
}

void WriteUsage(const OpenAiUsage& usage, JsonWriter& w) {
  w.BeginObject();
  w.Key("prompt_tokens").Int(usage.prompt_tokens);
  w.Key("completion_tokens").Int(usage.completion_tokens);
  w.Key("total_tokens").Int(usage.prompt_tokens + usage.completion_tokens);
  w.EndObject();
}

}  // namespace

Result<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body,
                                         size_t max_bytes) {
  JsonLimits limits;
  limits.max_bytes = max_bytes;
  limits.max_depth = 32;
  Result<JsonValue> parsed = ParseJson(body, limits);
  if (!parsed.ok()) {
    return Status::InvalidArgument("body", StrCat("not valid JSON: ", parsed.status().message()));
  }
  if (!parsed->is_object()) return WrongType("body", "a JSON object", *parsed);
  OpenAiRequest r;
  r.endpoint = endpoint;
  RETURN_IF_ERROR(ReadCommon(*parsed, &r));
  if (endpoint == OpenAiEndpoint::kChatCompletions) {
    RETURN_IF_ERROR(ReadChat(*parsed, &r));
  } else {
    RETURN_IF_ERROR(ReadCompletion(*parsed, &r));
  }
  return r;
}

OpenAiError ToOpenAiError(const Status& status, OpenAiEndpoint endpoint) {
  OpenAiError e;
  e.status_code = status.code();
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::kOk:  // not an error; never asked
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
      e.http_status = 400;
      e.type = "invalid_request_error";
      e.param = ParamOf(e.message, endpoint);
      break;
    case StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      break;
    case StatusCode::kPermissionDenied:
      e.http_status = 403;
      e.type = "permission_error";
      break;
    case StatusCode::kNotFound:
      e.http_status = 404;
      e.type = "not_found_error";
      break;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      e.http_status = 409;
      e.type = "conflict_error";
      break;
    case StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      break;
    case StatusCode::kCancelled:
      e.http_status = 499;
      e.type = "cancelled";
      break;
    case StatusCode::kUnimplemented:
      e.http_status = 501;
      e.type = "not_implemented_error";
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "service_unavailable_error";
      break;
    case StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      e.type = "timeout_error";
      break;
    case StatusCode::kUnknown:
    case StatusCode::kInternal:
    case StatusCode::kDataLoss:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

Status AsRequestError(const Status& status) {
  if (!status.IsResourceExhausted()) return status;
  return Status::InvalidArgument(status.message());
}

std::string OpenAiErrorJson(const OpenAiError& error) {
  std::string out;
  JsonWriter w(&out, /*pretty=*/false);
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(ToValidUtf8(error.message));
  w.Key("type").String(error.type);
  w.Key("param");
  error.param.empty() ? w.Null() : w.String(error.param);
  w.Key("code");
  error.code.empty() ? w.Null() : w.String(error.code);
  w.EndObject().EndObject();
  return out;
}

std::string OpenAiErrorEvent(const OpenAiError& error) { return Event(OpenAiErrorJson(error)); }

std::string_view OpenAiFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kMaxTokens:
    case FinishReason::kContextFull:
      return "length";
    case FinishReason::kCancelled:
      return "abort";
    case FinishReason::kNone:
    case FinishReason::kEndOfGeneration:
    case FinishReason::kStopString:
    case FinishReason::kStopToken:
      break;
  }
  return "stop";
}

std::string NewOpenAiResponseId(OpenAiEndpoint endpoint) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = endpoint == OpenAiEndpoint::kChatCompletions ? "chatcmpl-" : "cmpl-";
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = rng();
    for (int i = 0; i < 16; ++i, bits >>= 4) id += kHex[bits & 15];
  }
  return id;
}

std::string OpenAiRoleEvent(const OpenAiResponseContext& ctx) {
  std::string out;
  JsonWriter w(&out, false);
  BeginChunk(ctx, w);
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  w.Key("delta").BeginObject().Key("role").String("assistant").Key("content").String("");
  w.EndObject();
  w.Key("logprobs").Null();
  w.Key("finish_reason").Null();
  w.EndObject().EndArray();
  EndChunk(ctx, w);
  return Event(out);
}

std::string OpenAiTokenEvents(OpenAiResponseContext* ctx, std::span<const GeneratedToken> tokens,
                              const Tokenizer& tokenizer) {
  const bool chat = ctx->endpoint == OpenAiEndpoint::kChatCompletions;
  std::string events;
  for (const GeneratedToken& t : tokens) {
    const std::string text = ToValidUtf8(t.text);
    if (text.empty() && !ctx->logprobs) continue;
    std::string out;
    JsonWriter w(&out, false);
    BeginChunk(*ctx, w);
    w.Key("choices").BeginArray().BeginObject();
    w.Key("index").Int(0);
    if (chat) {
      w.Key("delta").BeginObject().Key("content").String(text).EndObject();
    } else {
      w.Key("text").String(text);
    }
    w.Key("logprobs");
    const std::span<const GeneratedToken> one(&t, 1);
    if (!ctx->logprobs) {
      w.Null();
    } else if (chat) {
      WriteChatLogprobs(one, tokenizer, w);
    } else {
      WriteLegacyLogprobs(one, tokenizer, ctx->text_offset, w);
    }
    ctx->text_offset += static_cast<int64_t>(text.size());
    w.Key("finish_reason").Null();
    w.EndObject().EndArray();
    EndChunk(*ctx, w);
    events += Event(out);
  }
  return events;
}

std::string OpenAiFinishEvent(const OpenAiResponseContext& ctx, FinishReason reason) {
  std::string out;
  JsonWriter w(&out, false);
  BeginChunk(ctx, w);
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  if (ctx.endpoint == OpenAiEndpoint::kChatCompletions) {
    w.Key("delta").BeginObject().EndObject();
  } else {
    w.Key("text").String("");
  }
  w.Key("logprobs").Null();
  w.Key("finish_reason").String(OpenAiFinishReason(reason));
  w.EndObject().EndArray();
  EndChunk(ctx, w);
  return Event(out);
}

std::string OpenAiUsageEvent(const OpenAiResponseContext& ctx, const OpenAiUsage& usage) {
  std::string out;
  JsonWriter w(&out, false);
  BeginChunk(ctx, w);
  w.Key("choices").BeginArray().EndArray();
  w.Key("usage");
  WriteUsage(usage, w);
  w.EndObject();
  return Event(out);
}

void OpenAiResponseAccumulator::Add(std::span<const GeneratedToken> tokens) {
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
}

std::string OpenAiResponseAccumulator::Finish(const OpenAiResponseContext& ctx, FinishReason reason,
                                              const OpenAiUsage& usage,
                                              const Tokenizer& tokenizer) const {
  const bool chat = ctx.endpoint == OpenAiEndpoint::kChatCompletions;
  std::string text;
  for (const GeneratedToken& t : tokens_) text += t.text;
  std::string out;
  JsonWriter w(&out, false);
  w.BeginObject();
  w.Key("id").String(ctx.id);
  w.Key("object").String(chat ? "chat.completion" : "text_completion");
  w.Key("created").Int(ctx.created);
  w.Key("model").String(ctx.model);
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  if (chat) {
    w.Key("message").BeginObject();
    w.Key("role").String("assistant");
    w.Key("content").String(ToValidUtf8(text));
    w.EndObject();
  } else {
    w.Key("text").String(ToValidUtf8(text));
  }
  w.Key("logprobs");
  if (!ctx.logprobs) {
    w.Null();
  } else if (chat) {
    WriteChatLogprobs(tokens_, tokenizer, w);
  } else {
    WriteLegacyLogprobs(tokens_, tokenizer, 0, w);
  }
  w.Key("finish_reason").String(OpenAiFinishReason(reason));
  w.EndObject().EndArray();
  w.Key("usage");
  WriteUsage(usage, w);
  w.EndObject();
  return out;
}

}  // namespace relayout::server
