// Builds a TokenizerSpec from a Hugging Face tokenizer.json (the `tokenizers`
// library's serialization), for checkpoints that ship one beside their
// safetensors files.
//
// What is read (everything else, e.g. "decoder", "truncation", is ignored):
//   model               {"type": "BPE", "vocab": {piece: id}, "merges": [...],
//                        "byte_fallback", "unk_token", ...}; merges are either
//                        "left right" strings or [left, right] pairs (newer
//                        files). dropout, a continuing_subword_prefix, an
//                        end_of_word_suffix and ignore_merges=true change the
//                        algorithm and are Unimplemented.
//   added_tokens        [{"id", "content", "special", ...}]: special -> control
//                        token (matched only with parse_special), otherwise
//                        user-defined (always matched whole). Ids may extend
//                        the vocabulary; together the ids must cover 0..n-1.
//   normalizer          null, or SentencePiece's Sequence[Prepend("▁"),
//                        Replace(" ", "▁")]
//   pre_tokenizer       ByteLevel                      -> byte-level BPE "gpt2"
//                       Sequence[Digits(individual_digits=true) or
//                                Split(\p{N}, Isolated), ByteLevel]
//                                                      -> byte-level BPE "smollm"
//                       Metaspace("▁")                 -> SentencePiece-style BPE,
//                                                         dummy prefix per
//                                                         prepend_scheme
//                       null with the SentencePiece normalizer
//                                                      -> SentencePiece-style BPE
//                                                         with the dummy prefix
//   post_processor      TemplateProcessing whose single template starts with a
//                        special token -> add_bos, bos id; one that ends with a
//                        special token -> an end-of-generation id. null and
//                        ByteLevel add nothing.
// The file names no bos/eos ids (those live in tokenizer_config.json), so the
// loader infers them: bos from the template, else an added special token
// spelled "<s>", "<|begin_of_text|>" or "<bos>"; end of generation from the
// template and the special tokens spelled like the common end markers
// ("</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", ...).
//
// SentencePiece-style files carry merges, not scores: a piece's score is minus
// the rank of the first merge that produces it, so the highest-scoring pair is
// the lowest-ranked merge, as the two algorithms agree for vocabularies
// converted from a SentencePiece model.
//
// Errors name the key by its JSON path, e.g.
//   tokenizer.json: model.merges[12] is not a "left right" string or a pair
// DataLoss for a malformed structure (wrong type, id out of range, an id with
// no token); Unimplemented, naming the key and value, for a well-formed
// setting this loader does not implement (model.type "WordPiece",
// pre_tokenizer.type "Whitespace", ...).
#pragma once

#include <memory>
#include <string>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/text/json.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// The spec json describes; source names it in messages. Codes as above.
Result<TokenizerSpec> TokenizerSpecFromHfJson(const JsonValue& json, const std::string& source);

// Reads and parses path (a tokenizer.json) into its spec. Codes as
// LoadHfTokenizerJson, less CreateTokenizer's.
Result<TokenizerSpec> ReadHfTokenizerJsonSpec(Env* env, const std::string& path);

// Reads and parses path (a tokenizer.json), then builds its tokenizer.
// NotFound when the file does not exist; DataLoss "path: JSON at byte N: ..."
// when it is not JSON; otherwise as TokenizerSpecFromHfJson and
// CreateTokenizer.
Result<std::unique_ptr<Tokenizer>> LoadHfTokenizerJson(Env* env, const std::string& path);

}  // namespace relayout
