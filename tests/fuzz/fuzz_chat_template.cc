// libFuzzer target: arbitrary bytes as a chat template (the text a GGUF's
// tokenizer.chat_template or a tokenizer_config.json carries), compiled and
// rendered over a few message lists. Compile and Apply must each either fail
// with a Status or succeed; no crash, hang, leak or sanitizer report, and
// the render limits bound the output however the template loops or recurses.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "engine/chat/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  relayout::Result<std::shared_ptr<const relayout::ChatTemplate>> compiled =
      relayout::ChatTemplate::Compile(source, "<s>", "</s>");
  if (!compiled.ok()) return 0;
  const std::vector<relayout::ChatMessage> chats[] = {
      {},
      {{"user", "Hello"}},
      {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hey."}, {"user", "{{ x }} é"}},
  };
  for (const auto& messages : chats) {
    for (const bool cue : {true, false}) (void)(*compiled)->Apply(messages, cue);
  }
  return 0;
}
