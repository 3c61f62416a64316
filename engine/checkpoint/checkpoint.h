// Checkpoint: a model opened from a path, validated, and ready to plan.
//
// OpenCheckpoint accepts what a user points at:
//   - a GGUF file (recognised by its magic, not its name);
//   - a .safetensors file, with config.json beside it;
//   - a directory: model.safetensors.index.json (sharded), else
//     model.safetensors, else a single *.gguf file; config.json beside.
// It parses the header(s), reads the config, and binds the model spec, all
// before any tensor byte is read or any weight buffer is allocated. Errors
// are one line naming the file and what is wrong.
#pragma once

#include <memory>
#include <string>

#include "engine/base/env.h"
#include "engine/base/status.h"
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
};

Result<Checkpoint> OpenCheckpoint(Env* env, const std::string& path);

}  // namespace relayout
