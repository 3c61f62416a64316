#include "engine/chat/chat_template.h"

#include <cassert>
#include <utility>

#include "engine/chat/jinja.h"

namespace relayout {
namespace {

// The ChatML template as Hugging Face spells it.
constexpr std::string_view kChatMlSource =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

class JinjaChatTemplate final : public ChatTemplate {
 public:
  JinjaChatTemplate(std::string source, std::unique_ptr<const jinja::Template> compiled,
                    std::string bos_token, std::string eos_token)
      : source_(std::move(source)),
        compiled_(std::move(compiled)),
        bos_token_(std::move(bos_token)),
        eos_token_(std::move(eos_token)) {}

  Result<std::string> Apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                            const JsonValue* extra) const override {
    using jinja::Value;
    // The variables apply_chat_template passes: the special tokens, the
    // request's extra variables over them, then messages, tools, documents
    // and add_generation_prompt, which extra cannot replace.
    jinja::ValueDict vars;
    vars.Set(Value::String("bos_token"), Value::String(bos_token_));
    vars.Set(Value::String("eos_token"), Value::String(eos_token_));
    vars.Set(Value::String("tools"), Value::None());
    vars.Set(Value::String("documents"), Value::None());
    if (extra != nullptr && extra->is_object()) {
      for (const auto& [key, value] : extra->as_object()) {
        if (key == "messages" || key == "add_generation_prompt") continue;
        vars.Set(Value::String(key), Value::FromJson(value));
      }
    }
    std::vector<Value> list;
    list.reserve(messages.size());
    for (const ChatMessage& m : messages) {
      jinja::ValueDict message;
      message.items.emplace_back(Value::String("role"), Value::String(m.role));
      message.items.emplace_back(Value::String("content"), Value::String(m.content));
      list.push_back(Value::Dict(std::move(message)));
    }
    vars.Set(Value::String("messages"), Value::List(std::move(list)));
    vars.Set(Value::String("add_generation_prompt"), Value::Bool(add_generation_prompt));
    return compiled_->Render(vars);
  }

  const std::string& source() const override { return source_; }

 private:
  std::string source_;
  std::unique_ptr<const jinja::Template> compiled_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace

Result<std::shared_ptr<const ChatTemplate>> ChatTemplate::Compile(std::string_view source,
                                                                  std::string bos_token,
                                                                  std::string eos_token) {
  ASSIGN_OR_RETURN(std::unique_ptr<const jinja::Template> compiled,
                   jinja::Template::Compile(source));
  return std::shared_ptr<const ChatTemplate>(std::make_shared<JinjaChatTemplate>(
      std::string(source), std::move(compiled), std::move(bos_token), std::move(eos_token)));
}

std::shared_ptr<const ChatTemplate> ChatTemplate::ChatMl(std::string bos_token,
                                                         std::string eos_token) {
  Result<std::shared_ptr<const ChatTemplate>> t =
      Compile(kChatMlSource, std::move(bos_token), std::move(eos_token));
  assert(t.ok() && "the built-in ChatML template compiles");
  return std::move(*t);
}

}  // namespace relayout
