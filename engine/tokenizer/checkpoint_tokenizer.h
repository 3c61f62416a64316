// The tokenizer that belongs to a checkpoint.
//
//   GGUF         the vocabulary embedded in its tokenizer.ggml.* metadata;
//   safetensors  a tokenizer file beside the weights (the config.json's
//                folder), the first that exists of kCheckpointTokenizerFiles,
//                with the special tokens of tokenizer_config.json
//                (Checkpoint::tokenizer_config) laid over it: bos_token and
//                unk_token replace the ids the file implies, eos_token joins
//                the end-of-generation ids, add_bos_token overrides whether
//                Encode prepends BOS. A token named there that is not in the
//                vocabulary is InvalidArgument naming tokenizer_config.json.
// Extension point: a new file format is one more entry in that list, in front
// of the ones it should win over, and one more branch in
// LoadTokenizerSpecFile (tokenizer.h), which picks the loader by the file's
// name and contents.
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
    "tokenizer.json",   // Hugging Face tokenizers (what checkpoints publish today)
    "tokenizer.model",  // SentencePiece ModelProto
    "tok512.bin",       // llama2.c export (the 512-piece story models)
    "tokenizer.bin",    // llama2.c export under its usual name
};

// NotFound "<dir>: no tokenizer beside the weights (tried tokenizer.json,
// ...)" when none exists; otherwise the loader's errors (DataLoss for a
// malformed file, the GGUF metadata's NotFound/InvalidArgument).
Result<std::unique_ptr<Tokenizer>> LoadCheckpointTokenizer(Env* env, const Checkpoint& checkpoint);

}  // namespace relayout
