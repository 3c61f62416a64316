#include "engine/tokenizer/checkpoint_tokenizer.h"

#include <string>

#include "engine/tokenizer/gguf_tokenizer.h"

namespace relayout {

Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(Env* env, const Checkpoint& checkpoint) {
  if (checkpoint.gguf_metadata != nullptr) {
    return CreateTokenizerFromGguf(*checkpoint.gguf_metadata, checkpoint.path);
  }
  const std::string dir = DirName(checkpoint.config_path);
  std::string tried;
  for (std::string_view name : kCheckpointTokenizerFiles) {
    const std::string path = JoinPath(dir, std::string(name));
    if (env->FileExists(path)) return LoadTokenizerFile(env, path);
    tried += tried.empty() ? "" : ", ";
    tried += name;
  }
  return Status::NotFound(dir.empty() ? "." : dir,
                          StrCat("no tokenizer beside the weights (tried ", tried, ")"));
}

}  // namespace relayout
