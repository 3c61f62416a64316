// The Generation service's messages to and from engine types: requests are
// validated and converted at the API edge (so the backend only sees
// requests within the model's vocabulary and the ServingLimits), and
// results are converted back, with every string made valid UTF-8 (protobuf
// refuses anything else in a string field).
//
// Errors, as the service returns them:
//   InvalidArgument   "prompt: ...", "sampling: <field> is <value>, <rule>",
//                     "prompt.token_ids[i]: ...", "sampling.stop[i]: ...",
//                     "session_id: empty"
//   ResourceExhausted "prompt: N tokens, above the limit of M (--max-prompt-tokens)",
//                     "sampling.max_new_tokens: ..."
//
// Thread safety: free functions on their arguments.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/chat/chat_template.h"
#include "engine/serving/serving_limits.h"
#include "engine/tokenizer/tokenizer.h"
#include "relayout/v1/generation.pb.h"
#include "server/rpc/generation_backend.h"

namespace relayout::server {

// Stop conditions a request may name, so a request cannot make every
// generated token scan an unbounded list.
inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopStringBytes = 256;
inline constexpr int kMaxStopTokenIds = 64;

// The prompt's token ids: text tokenized (BOS per add_bos), the ids as
// given after a range check, or messages through ChatPromptTokenIds with
// chat_template (null: the model has none). InvalidArgument for an empty
// prompt or an id outside the vocabulary; ResourceExhausted above
// limits.max_prompt_tokens; ChatPromptTokenIds's errors for messages.
Result<std::vector<int32_t>> PromptTokenIds(const v1::Prompt& prompt, const Tokenizer& tokenizer,
                                            const ServingLimits& limits,
                                            const ChatTemplate* chat_template = nullptr);

// The prompt's token ids for a chat: messages rendered by chat_template
// (add_generation_prompt and extra passed through), then tokenized with
// control tokens matched (parse_special) and no BOS added, since the
// template places BOS itself; so Hugging Face's apply_chat_template followed
// by tokenize(add_special_tokens=False), and vLLM's chat path. (llama-server
// instead strips a leading BOS text from the render and lets the tokenizer
// add it, which gives the same ids when the template starts with BOS.)
// FailedPrecondition "the model has no chat template; ..." for a null
// chat_template; InvalidArgument for no messages or a message list the
// template refuses (its message); ResourceExhausted for messages or a
// rendered prompt above limits.max_prompt_tokens, as PromptTokenIds.
Result<std::vector<int32_t>> ChatPromptTokenIds(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt, const JsonValue* extra,
                                                const ChatTemplate* chat_template,
                                                const Tokenizer& tokenizer,
                                                const ServingLimits& limits);

// The message ChatPromptTokenIds gives for a model without a chat template.
inline constexpr std::string_view kNoChatTemplateMessage =
    "the model has no chat template; start the server with --chat-template chatml or a "
    "template file";

// The engine's request for a Prefill or Generate call. temperature and top_p
// left unset, and top_k 0, take the model's defaults where it has them
// (GenerationBackend::sampling_defaults), else the proto's neutral values.
Result<GenerationRequest> ToGenerationRequest(const v1::Prompt& prompt,
                                              const v1::SamplingParams& sampling,
                                              const Tokenizer& tokenizer,
                                              const ServingLimits& limits,
                                              const SamplingDefaults& defaults = {},
                                              const ChatTemplate* chat_template = nullptr);

// Tokens to generate for a Decode call: num_tokens (0 means 1).
// InvalidArgument for an empty session id; ResourceExhausted above
// limits.max_new_tokens.
Result<int64_t> DecodeTokenCount(const v1::DecodeRequest& request, const ServingLimits& limits);

// Valid UTF-8: each byte that does not belong to a valid sequence becomes
// U+FFFD.
std::string ToValidUtf8(std::string_view bytes);

v1::FinishReason ToProtoFinishReason(FinishReason reason);

// Fills `out` from a generated token; alternatives get their pieces' text.
void ToProtoToken(const GeneratedToken& token, const Tokenizer& tokenizer, v1::Token* out);

}  // namespace relayout::server
