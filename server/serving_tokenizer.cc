#include "server/serving_tokenizer.h"

#include "engine/gguf_tokenizer.h"

namespace relayout::server {

Result<std::unique_ptr<Tokenizer>> LoadServingTokenizer(Env* env, const Checkpoint& checkpoint) {
  if (checkpoint.gguf_metadata != nullptr) {
    return CreateTokenizerFromGguf(*checkpoint.gguf_metadata, checkpoint.path);
  }
  const std::string dir = DirName(checkpoint.config_path);
  for (const char* name : {"tokenizer.model", "tok512.bin", "tokenizer.bin"}) {
    const std::string path = JoinPath(dir, name);
    if (env->FileExists(path)) return LoadTokenizerFile(env, path);
  }
  return Status::NotFound(dir,
                          "no tokenizer.model, tok512.bin or tokenizer.bin beside the checkpoint");
}

}  // namespace relayout::server
