#include "engine/checkpoint/checkpoint.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "engine/checkpoint/gguf_metadata.h"
#include "engine/checkpoint/gguf_source.h"
#include "engine/checkpoint/safetensors_source.h"
#include "engine/text/json.h"

namespace relayout {
namespace {

constexpr uint64_t kMaxConfigBytes = 16u << 20;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True if the file starts with the GGUF magic.
Result<bool> HasGgufMagic(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env->OpenForRead(path));
  if (file->size() < 4) return false;
  std::array<std::byte, 4> magic{};
  RETURN_IF_ERROR(file->ReadAt(0, magic));
  return std::memcmp(magic.data(), "GGUF", 4) == 0;
}

// The only *.gguf file in dir, or an empty string.
std::string FindSingleGguf(Env* env, const std::string& dir) {
  Result<std::vector<std::string>> names = env->ListDirectory(dir);
  if (!names.ok()) return {};
  std::string found;
  int count = 0;
  for (const std::string& name : *names) {
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) {
      found = JoinPath(dir, name);
      ++count;
    }
  }
  return count == 1 ? found : std::string();
}

Result<ModelConfig> ReadHfConfig(Env* env, const std::string& config_path) {
  if (!env->FileExists(config_path)) {
    return Status::NotFound(config_path,
                            "missing: a safetensors checkpoint needs config.json beside it");
  }
  ASSIGN_OR_RETURN(std::string text, env->ReadSmallFile(config_path, kMaxConfigBytes));
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) return Status::InvalidArgument(config_path, json.status().message());
  return ModelConfigFromHfJson(*json, config_path);
}

Status Bind(Checkpoint* c) {
  const ModelSpec spec = ModelSpec::ForLlama(c->config);
  ASSIGN_OR_RETURN(
      c->model, BindModelSpec(spec, c->source->tensors(), c->naming, c->source->paths().front()));
  return Status::OK();
}

Result<Checkpoint> OpenGguf(Env* env, const std::string& user_path, const std::string& file) {
  Checkpoint c;
  c.path = user_path;
  c.config_path = file;
  c.naming = NamingScheme::kGguf;
  ASSIGN_OR_RETURN(std::unique_ptr<GgufSource> gguf, GgufSource::Open(env, file));
  ASSIGN_OR_RETURN(c.config, ModelConfigFromGguf(gguf->metadata(), gguf->tensors(), file));
  c.gguf_metadata = &gguf->metadata();
  if (const GgufValue* t = c.gguf_metadata->Find("tokenizer.chat_template");
      t != nullptr && t->AsString() != nullptr) {
    c.tokenizer_config.chat_templates.push_back({"default", *t->AsString()});
  }
  c.source = std::move(gguf);
  RETURN_IF_ERROR(Bind(&c));
  return c;
}

Result<Checkpoint> OpenSafetensors(Env* env, const std::string& user_path, const std::string& file,
                                   bool sharded) {
  Checkpoint c;
  c.path = user_path;
  c.config_path = JoinPath(DirName(file), "config.json");
  c.naming = NamingScheme::kHf;
  if (sharded) {
    ASSIGN_OR_RETURN(c.source, SafetensorsSource::OpenSharded(env, file));
  } else {
    ASSIGN_OR_RETURN(c.source, SafetensorsSource::Open(env, file));
  }
  ASSIGN_OR_RETURN(c.config, ReadHfConfig(env, c.config_path));
  const std::string dir = DirName(c.config_path);
  ASSIGN_OR_RETURN(c.tokenizer_config, ReadHfTokenizerConfig(env, dir));
  ASSIGN_OR_RETURN(c.generation_config, ReadHfGenerationConfig(env, dir));
  // generation_config.json's ids are what generate() stops on (Llama 3
  // Instruct lists <|eot_id|> there, config.json only <|end_of_text|>).
  std::vector<int64_t>& eos = c.config.eos_token_ids;
  for (int64_t id : c.generation_config.eos_token_ids) {
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  }
  RETURN_IF_ERROR(c.config.Validate(JoinPath(dir, std::string(kHfGenerationConfigFile))));
  RETURN_IF_ERROR(Bind(&c));
  return c;
}

}  // namespace

Result<Checkpoint> OpenCheckpoint(Env* env, const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("model path", "is empty");
  if (env->IsDirectory(path)) {
    const std::string index = JoinPath(path, "model.safetensors.index.json");
    if (env->FileExists(index)) return OpenSafetensors(env, path, index, /*sharded=*/true);
    const std::string single = JoinPath(path, "model.safetensors");
    if (env->FileExists(single)) return OpenSafetensors(env, path, single, /*sharded=*/false);
    if (const std::string gguf = FindSingleGguf(env, path); !gguf.empty())
      return OpenGguf(env, path, gguf);
    return Status::NotFound(
        path,
        "directory holds no model.safetensors.index.json, model.safetensors or single .gguf file");
  }
  if (!env->FileExists(path)) return Status::NotFound(path, "no such file or directory");
  if (path.size() > 11 && path.compare(path.size() - 11, 11, ".index.json") == 0) {
    return OpenSafetensors(env, path, path, /*sharded=*/true);
  }
  ASSIGN_OR_RETURN(bool is_gguf, HasGgufMagic(env, path));
  // A file named .gguf is read as GGUF even when its magic is missing (an
  // empty or truncated download), so the error speaks in GGUF's terms.
  if (is_gguf || EndsWith(path, ".gguf")) return OpenGguf(env, path, path);
  return OpenSafetensors(env, path, path, /*sharded=*/false);
}

}  // namespace relayout
