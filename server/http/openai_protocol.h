// The JSON of OpenAI's /v1/completions and /v1/chat/completions, as pure
// functions: requests parsed and checked into our types (a v1::Prompt and
// v1::SamplingParams, so that ToGenerationRequest applies the same limits,
// defaults and error texts as the gRPC API), and responses, stream chunks
// and errors written in OpenAI's shapes.
//
// Requests. Fields are read as OpenAI documents them, plus vLLM's extra
// sampling fields (top_k, min_p, repetition_penalty, ignore_eos,
// stop_token_ids, chat_template_kwargs, add_generation_prompt). null is the
// same as absent. Unknown fields are ignored, as OpenAI and vLLM do; a
// known field whose value we cannot honour is refused rather than ignored
// (n > 1, best_of > 1, echo, suffix, logit_bias, tools, a response_format
// other than text, content parts other than text, roles other than system,
// developer, user and assistant). Wrong types are InvalidArgument naming the
// field ("temperature: must be a number, got string"). max_tokens (or
// max_completion_tokens) must be >= 1; absent, the server's
// --max-new-tokens is used (vLLM: the rest of the context; OpenAI's legacy
// completions: 16).
//
// Errors: every Status maps to one OpenAI error object and HTTP status in
// ToOpenAiError (the table is there).
//
// Thread safety: free functions on their arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/chat/chat_template.h"
#include "engine/model/finish_reason.h"
#include "engine/text/json.h"
#include "engine/tokenizer/tokenizer.h"
#include "relayout/v1/generation.pb.h"
#include "server/rpc/generation_backend.h"

namespace relayout::server {

enum class OpenAiEndpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
  std::string model;  // "" when absent
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // Completions: the prompt (text with control tokens matched, or ids).
  v1::Prompt prompt;
  // Chat: the messages, the template's switch and extra variables.
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
  std::optional<JsonValue> chat_template_kwargs;  // an object when set
  // Sampling as the gRPC API takes it; max_new_tokens 0 means the server's
  // limit. logprobs/top_logprobs set as OpenAI asked.
  v1::SamplingParams sampling;
};

// Parses and checks a request body (a JSON object of at most max_bytes).
// InvalidArgument "<field>: <why>" (the JSON parser's message for malformed
// JSON).
Result<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body,
                                         size_t max_bytes);

// An OpenAI error object and its HTTP status.
struct OpenAiError {
  int http_status = 500;
  std::string type;
  std::string message;
  std::string param;  // "" is written as null
  std::string code;   // "" is written as null
  // The code counted in relayout_requests_total.
  StatusCode status_code = StatusCode::kInternal;
};

// The one mapping from our Status to OpenAI's errors:
//   InvalidArgument, OutOfRange,
//   FailedPrecondition (no chat template)  400 invalid_request_error
//   Unauthenticated                        401 authentication_error, invalid_api_key
//   PermissionDenied                       403 permission_error
//   NotFound                               404 not_found_error
//   AlreadyExists, Aborted                 409 conflict_error
//   ResourceExhausted (queue full)         429 rate_limit_error
//   Cancelled                              499 (the client left; never sent)
//   Unimplemented                          501 not_implemented_error
//   Unavailable (loading, draining)        503 service_unavailable_error
//   DeadlineExceeded                       504 timeout_error
//   anything else                          500 server_error
// param is the request field the message names ("temperature",
// "max_tokens", "messages[0].role"), when it names one.
OpenAiError ToOpenAiError(const Status& status, OpenAiEndpoint endpoint);

// A request's own limits (prompt too long, max_tokens above
// --max-new-tokens) are the caller's error, 400 as in vLLM, not a full
// server's 429: ResourceExhausted becomes InvalidArgument, others pass.
Status AsRequestError(const Status& status);

// {"error": {"message", "type", "param", "code"}}
std::string OpenAiErrorJson(const OpenAiError& error);
// The same as one server-sent event, for an error after a stream started.
std::string OpenAiErrorEvent(const OpenAiError& error);

// "stop" (end of generation, a stop string or token), "length" (max_tokens
// or the context), "abort" (cancelled: the server drained; vLLM's word).
std::string_view OpenAiFinishReason(FinishReason reason);

// What every response and chunk of one request repeats.
struct OpenAiResponseContext {
  OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  bool logprobs = false;
  bool include_usage = false;
  // Completions' logprobs.text_offset: bytes of text streamed so far.
  int64_t text_offset = 0;
};

// A new response id: "chatcmpl-" or "cmpl-" and 32 random hex digits.
std::string NewOpenAiResponseId(OpenAiEndpoint endpoint);

struct OpenAiUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// Stream chunks, each a whole event "data: {...}\n\n".
// Chat's first chunk: delta {role: "assistant", content: ""}.
std::string OpenAiRoleEvent(const OpenAiResponseContext& ctx);
// One event per token with text (every token when logprobs are asked).
std::string OpenAiTokenEvents(OpenAiResponseContext* ctx, std::span<const GeneratedToken> tokens,
                              const Tokenizer& tokenizer);
// The last choice chunk: empty delta (or text), finish_reason set.
std::string OpenAiFinishEvent(const OpenAiResponseContext& ctx, FinishReason reason);
// With include_usage: choices [] and the usage.
std::string OpenAiUsageEvent(const OpenAiResponseContext& ctx, const OpenAiUsage& usage);

// The tokens of a response that is not streamed, and its JSON at the end.
class OpenAiResponseAccumulator {
 public:
  void Add(std::span<const GeneratedToken> tokens);
  // "chat.completion" or "text_completion", with usage.
  std::string Finish(const OpenAiResponseContext& ctx, FinishReason reason,
                     const OpenAiUsage& usage, const Tokenizer& tokenizer) const;

 private:
  std::vector<GeneratedToken> tokens_;
};

}  // namespace relayout::server
