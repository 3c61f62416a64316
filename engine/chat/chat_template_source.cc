#include "engine/chat/chat_template_source.h"

namespace relayout {
namespace {

std::string TokenText(const Tokenizer& tokenizer, int32_t id) {
  if (id < 0 || id >= tokenizer.vocab_size()) return "";
  return tokenizer.piece(id);
}

}  // namespace

Result<std::shared_ptr<const ChatTemplate>> LoadChatTemplate(Env* env, const std::string& flag,
                                                             const Checkpoint& checkpoint,
                                                             const Tokenizer& tokenizer) {
  std::string bos = TokenText(tokenizer, tokenizer.bos_id());
  std::string eos =
      tokenizer.eos_ids().empty() ? std::string() : TokenText(tokenizer, tokenizer.eos_ids()[0]);
  if (flag == "chatml") return ChatTemplate::ChatMl(std::move(bos), std::move(eos));
  std::string source;
  std::string origin;
  if (flag.empty()) {
    const ChatTemplateSource* own = checkpoint.tokenizer_config.FindChatTemplate();
    if (own == nullptr) return std::shared_ptr<const ChatTemplate>();
    source = own->source;
    origin = "the model's chat template";
  } else {
    ASSIGN_OR_RETURN(source, env->ReadSmallFile(flag, kMaxChatTemplateFileBytes));
    origin = flag;
  }
  Result<std::shared_ptr<const ChatTemplate>> compiled =
      ChatTemplate::Compile(source, std::move(bos), std::move(eos));
  if (!compiled.ok()) return compiled.status().WithPrefix(origin);
  return compiled;
}

}  // namespace relayout
