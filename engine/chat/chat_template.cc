#include "engine/chat/chat_template.h"

#include <utility>

namespace relayout {
namespace {

// The ChatML template as Hugging Face spells it; ChatMl renders it natively
// until the Jinja engine compiles it.
constexpr std::string_view kChatMlSource =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

class ChatMlTemplate final : public ChatTemplate {
 public:
  ChatMlTemplate() : source_(kChatMlSource) {}

  Result<std::string> Apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                            const JsonValue* /*extra*/) const override {
    std::string out;
    for (const ChatMessage& m : messages) {
      out += "<|im_start|>";
      out += m.role;
      out += '\n';
      out += m.content;
      out += "<|im_end|>\n";
    }
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }

  const std::string& source() const override { return source_; }

 private:
  std::string source_;
};

}  // namespace

Result<std::shared_ptr<const ChatTemplate>> ChatTemplate::Compile(std::string_view /*source*/,
                                                                  std::string /*bos_token*/,
                                                                  std::string /*eos_token*/) {
  return Status::Unimplemented("chat template", "the Jinja engine is not built yet");
}

std::shared_ptr<const ChatTemplate> ChatTemplate::ChatMl(std::string /*bos_token*/,
                                                         std::string /*eos_token*/) {
  return std::make_shared<ChatMlTemplate>();
}

}  // namespace relayout
