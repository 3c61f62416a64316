// Which chat template a server uses, from `relayoutd serve --chat-template
// VALUE`:
//
//   ""        the checkpoint's own (GGUF tokenizer.chat_template, or the
//             Hugging Face folder's tokenizer_config.json chat_template /
//             chat_template.jinja); none: null, and chat requests are refused
//   "chatml"  the built-in ChatML template
//   a path    a Jinja file
//
// BOS and EOS are the tokenizer's special tokens' text (the first EOS id's);
// empty when the model has none.
#pragma once

#include <memory>
#include <string>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/chat/chat_template.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// Largest template file read.
inline constexpr uint64_t kMaxChatTemplateFileBytes = 1 << 20;

// The compiled template, or null when flag is empty and the checkpoint has
// none. NotFound for a missing file; InvalidArgument "chat template: ..."
// naming the source (the file, or "the model's chat template") and the line
// and construct for one that does not compile.
Result<std::shared_ptr<const ChatTemplate>> LoadChatTemplate(Env* env, const std::string& flag,
                                                             const Checkpoint& checkpoint,
                                                             const Tokenizer& tokenizer);

}  // namespace relayout
