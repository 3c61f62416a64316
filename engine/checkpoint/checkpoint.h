// Checkpoint: a model opened from a path, validated, and ready to plan.
//
// OpenCheckpoint accepts what a user points at:
//   - a GGUF file (recognised by its magic, not its name);
//   - a .safetensors file, with config.json beside it;
//   - a directory: model.safetensors.index.json (sharded), else
//     model.safetensors, else a single *.gguf file; config.json beside,
//     and optionally tokenizer_config.json and generation_config.json
//     (hf_side_files.h).
// It parses the header(s), reads the config, and binds the model spec, all
// before any tensor byte is read or any weight buffer is allocated. Errors
// are one line naming the file and what is wrong.
#pragma once

#include <memory>
#include <string>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/checkpoint/hf_side_files.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/model_spec.h"
#include "engine/checkpoint/weight_source.h"

namespace relayout {

class GgufMetadata;

struct Checkpoint {
  std::string path;                      // as given by the user
  std::string config_path;               // config.json, or the GGUF file itself
  std::unique_ptr<WeightSource> source;  // never null in a returned Checkpoint
  NamingScheme naming = NamingScheme::kHf;
  ModelConfig config;
  BoundModel model;
  // The GGUF metadata (tokenizer, chat template, ...); nullptr for safetensors.
  const GgufMetadata* gguf_metadata = nullptr;
  // Safetensors: tokenizer_config.json (or chat_template.jinja) beside
  // config.json. GGUF: only chat_templates, from tokenizer.chat_template.
  HfTokenizerConfig tokenizer_config;
  // Safetensors: generation_config.json, whose eos ids are already merged
  // into config.eos_token_ids. GGUF: empty.
  HfGenerationConfig generation_config;
};

Result<Checkpoint> OpenCheckpoint(Env* env, const std::string& path);

}  // namespace relayout
