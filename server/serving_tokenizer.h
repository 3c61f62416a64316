// The tokenizer of the served checkpoint: the vocabulary embedded in a GGUF
// file, or the tokenizer file beside a safetensors checkpoint
// (tokenizer.model, else tok512.bin, else tokenizer.bin, in the directory
// of config.json).
#pragma once

#include <memory>

#include "engine/checkpoint.h"
#include "engine/env.h"
#include "engine/status.h"
#include "engine/tokenizer.h"

namespace relayout::server {

// NotFound "<dir>: no tokenizer.model, tok512.bin or tokenizer.bin beside
// the checkpoint"; else the loaders' errors (DataLoss, Unimplemented).
Result<std::unique_ptr<Tokenizer>> LoadServingTokenizer(Env* env, const Checkpoint& checkpoint);

}  // namespace relayout::server
