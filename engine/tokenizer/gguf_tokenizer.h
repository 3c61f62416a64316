// Builds a TokenizerSpec from a GGUF file's tokenizer.ggml.* metadata.
//
// Keys read (as llama.cpp writes them):
//   tokenizer.ggml.model            "llama" (SentencePiece BPE) or "gpt2"
//                                   (byte-level BPE); others: Unimplemented
//   tokenizer.ggml.tokens           string array, required
//   tokenizer.ggml.scores           float array (llama; zeros when absent)
//   tokenizer.ggml.token_type       int array, values 1..6 (TokenType)
//   tokenizer.ggml.merges           string array "left right" (gpt2, required)
//   tokenizer.ggml.pre              pre-tokenizer name (gpt2; "default")
//   tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id,
//   eot_token_id, eom_token_id      optional ids
//   tokenizer.ggml.add_bos_token    default true for llama, false for gpt2
//   tokenizer.ggml.add_space_prefix default true for llama, false for gpt2
// End of generation: eos, eot and eom, plus control tokens spelled like the
// common chat end markers (<|im_end|>, <|endoftext|>, <|eot_id|>, ...), as
// llama.cpp does, because instruct models end turns with them.
#pragma once

#include <memory>
#include <string>

#include "engine/base/status.h"
#include "engine/checkpoint/gguf_metadata.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// source names the file in messages. NotFound when a required key is
// missing; InvalidArgument "source: metadata key K ..." for a value of the
// wrong type, a count that differs from the tokens', an id out of range or a
// merge without a space; Unimplemented for another tokenizer model.
Result<TokenizerSpec> TokenizerSpecFromGguf(const GgufMetadata& metadata,
                                            const std::string& source);

// TokenizerSpecFromGguf, then CreateTokenizer.
Result<std::unique_ptr<Tokenizer>> CreateTokenizerFromGguf(const GgufMetadata& metadata,
                                                           const std::string& source);

}  // namespace relayout
