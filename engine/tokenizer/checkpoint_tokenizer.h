// The tokenizer that belongs to a checkpoint.
//
//   GGUF         the vocabulary embedded in its tokenizer.ggml.* metadata;
//   safetensors  a tokenizer file beside the weights (the config.json's
//                folder), the first that exists of kCheckpointTokenizerFiles.
// Extension point: a new file format (Hugging Face tokenizer.json) is one
// more entry in that list, in front of the ones it should win over, and one
// more branch in LoadTokenizerFile (tokenizer.h), which picks the loader by
// the file's contents.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// Tried in this order beside safetensors weights.
inline constexpr std::string_view kCheckpointTokenizerFiles[] = {
    "tokenizer.model",  // SentencePiece ModelProto
    "tok512.bin",       // llama2.c export (the 512-piece story models)
    "tokenizer.bin",    // llama2.c export under its usual name
};

// NotFound "<dir>: no tokenizer beside the weights (tried tokenizer.model,
// ...)" when none exists; otherwise the loader's errors (DataLoss for a
// malformed file, the GGUF metadata's NotFound/InvalidArgument).
Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(Env* env, const Checkpoint& checkpoint);

}  // namespace relayout
