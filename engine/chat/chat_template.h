// ChatTemplate: a model's chat template (the Jinja source a checkpoint
// ships: GGUF `tokenizer.chat_template`, or `chat_template` in a Hugging
// Face folder's tokenizer_config.json), compiled once at start-up and
// rendered per request into the prompt text the model was trained on.
//
// Rendering sees the variables Hugging Face's apply_chat_template passes:
// `messages` (a list of {role, content} objects), `add_generation_prompt`,
// `bos_token`, `eos_token`, plus any extra variables a request gives
// (`chat_template_kwargs`), and the function `raise_exception`.
//
// Thread safety: a compiled template is immutable; Apply may be called from
// any number of threads at once.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/text/json.h"

namespace relayout {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;  // UTF-8
};

class ChatTemplate {
 public:
  // Compiles `source`. InvalidArgument "chat template: line L: <what>" naming
  // the construct it cannot parse or does not support.
  static Result<std::shared_ptr<const ChatTemplate>> Compile(std::string_view source,
                                                             std::string bos_token,
                                                             std::string eos_token);

  // The ChatML template (<|im_start|>role\ncontent<|im_end|>\n), for
  // `--chat-template chatml` when a model ships none.
  static std::shared_ptr<const ChatTemplate> ChatMl(std::string bos_token, std::string eos_token);

  virtual ~ChatTemplate() = default;

  // The prompt text. `extra` is a JSON object of additional template
  // variables (null: none). InvalidArgument for a message list the template
  // refuses (raise_exception's message) or a render error (an undefined
  // method, a type error), naming it.
  virtual Result<std::string> Apply(std::span<const ChatMessage> messages,
                                    bool add_generation_prompt,
                                    const JsonValue* extra = nullptr) const = 0;

  // The source it was compiled from.
  virtual const std::string& source() const = 0;
};

}  // namespace relayout
