// The JSON files a Hugging Face checkpoint folder carries beside config.json
// that shape how the model is served rather than its math:
//
//   tokenizer_config.json   special tokens by their text ("bos_token": "<s>",
//                           or an AddedToken object {"content": "<s>", ...}),
//                           add_bos_token / add_eos_token, and the chat
//                           template (a string, or a list of {"name",
//                           "template"}); newer exports keep the template in
//                           chat_template.jinja instead, read when the config
//                           has none.
//   generation_config.json  eos_token_id (an int or a list), which joins the
//                           stop set, and the default sampling (temperature,
//                           top_p, top_k) a request gets when it leaves them
//                           unset.
//
// Every field is optional: a missing file or key leaves it unset, so the
// tokenizer file's and config.json's own values stand. Unknown keys are
// ignored (both files carry many that do not concern serving). A key of the
// wrong type is InvalidArgument naming the file and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/env.h"
#include "engine/base/status.h"

namespace relayout {

class JsonValue;

struct ChatTemplateSource {
  std::string name;    // "default" for a template given as a single string
  std::string source;  // the Jinja text
};

struct HfTokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> pad_token;
  std::optional<bool> add_bos_token;
  // Kept for a client to see; Encode never appends EOS to a prompt.
  std::optional<bool> add_eos_token;
  std::vector<ChatTemplateSource> chat_templates;

  // The template named name, or nullptr.
  const ChatTemplateSource* FindChatTemplate(std::string_view name = "default") const;
};

// A request's sampling fields that the checkpoint gives defaults for.
struct SamplingDefaults {
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int32_t> top_k;
};

struct HfGenerationConfig {
  std::vector<int64_t> eos_token_ids;
  SamplingDefaults sampling;
};

inline constexpr std::string_view kHfTokenizerConfigFile = "tokenizer_config.json";
inline constexpr std::string_view kHfChatTemplateFile = "chat_template.jinja";
inline constexpr std::string_view kHfGenerationConfigFile = "generation_config.json";

// From parsed JSON; source names the file in messages.
Result<HfTokenizerConfig> HfTokenizerConfigFromJson(const JsonValue& json, std::string_view source);
Result<HfGenerationConfig> HfGenerationConfigFromJson(const JsonValue& json,
                                                      std::string_view source);

// The files in dir; an absent file gives the empty struct. InvalidArgument
// "<path>: ..." for a file that is not JSON or has a key of the wrong type.
Result<HfTokenizerConfig> ReadHfTokenizerConfig(Env* env, const std::string& dir);
Result<HfGenerationConfig> ReadHfGenerationConfig(Env* env, const std::string& dir);

}  // namespace relayout
