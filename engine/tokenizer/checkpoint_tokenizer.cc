#include "engine/tokenizer/checkpoint_tokenizer.h"

#include <algorithm>
#include <string>

#include "engine/tokenizer/gguf_tokenizer.h"

namespace relayout {
namespace {

// Lays tokenizer_config.json's special tokens over spec; source names that
// file in messages.
Status ApplyTokenizerConfig(const HfTokenizerConfig& config, const std::string& source,
                            TokenizerSpec* spec) {
  const auto id_of = [&](std::string_view key, const std::string& text) -> Result<int32_t> {
    const auto it = std::find(spec->pieces.begin(), spec->pieces.end(), text);
    if (it == spec->pieces.end()) {
      return Status::InvalidArgument(
          source, StrCat(key, " \"", text, "\" is not in the vocabulary of ", spec->source));
    }
    return static_cast<int32_t>(it - spec->pieces.begin());
  };
  if (config.bos_token) {
    ASSIGN_OR_RETURN(spec->bos_id, id_of("bos_token", *config.bos_token));
  }
  if (config.unk_token) {
    ASSIGN_OR_RETURN(spec->unk_id, id_of("unk_token", *config.unk_token));
  }
  if (config.eos_token) {
    ASSIGN_OR_RETURN(const int32_t eos, id_of("eos_token", *config.eos_token));
    if (std::find(spec->eos_ids.begin(), spec->eos_ids.end(), eos) == spec->eos_ids.end()) {
      spec->eos_ids.push_back(eos);
    }
  }
  if (config.add_bos_token) spec->add_bos = *config.add_bos_token;
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(Env* env, const Checkpoint& checkpoint) {
  if (checkpoint.gguf_metadata != nullptr) {
    return CreateTokenizerFromGguf(*checkpoint.gguf_metadata, checkpoint.path);
  }
  const std::string dir = DirName(checkpoint.config_path);
  std::string tried;
  for (std::string_view name : kCheckpointTokenizerFiles) {
    const std::string path = JoinPath(dir, std::string(name));
    if (!env->FileExists(path)) {
      tried += tried.empty() ? "" : ", ";
      tried += name;
      continue;
    }
    ASSIGN_OR_RETURN(TokenizerSpec spec, LoadTokenizerSpecFile(env, path));
    RETURN_IF_ERROR(ApplyTokenizerConfig(
        checkpoint.tokenizer_config, JoinPath(dir, std::string(kHfTokenizerConfigFile)), &spec));
    return CreateTokenizer(std::move(spec));
  }
  return Status::NotFound(dir.empty() ? "." : dir,
                          StrCat("no tokenizer beside the weights (tried ", tried, ")"));
}

}  // namespace relayout
