// The pre-tokenizer of GPT-2-style byte-level BPE: splits text into the
// words that BPE then encodes one by one, as the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does (leftmost alternative first, each greedy). std::regex has no \p{..}
// classes, so this is a hand-written scanner over code points with the
// Unicode tables of unicode.h.
//
// Variants by GGUF tokenizer.ggml.pre (llama.cpp's llama-vocab.cpp):
//   "gpt2", "default"         the regex above
//   "smollm", "starcoder", "refact", "codeshell", "command-r", "exaone",
//   "minerva"                 every \p{N} character split off alone first,
//                             then the regex on the text between (the same as
//                             HF's Sequence[Digits(individual_digits), ByteLevel])
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace relayout {

enum class PreTokenizerKind {
  kGpt2,
  kGpt2SplitDigits,
};

// The kind for a tokenizer.ggml.pre name; nullopt when it is not one of the
// names above (the caller reports Unimplemented).
std::optional<PreTokenizerKind> PreTokenizerKindFromName(std::string_view name);

// The pre-tokens of text, in order; they are views into text and together
// cover it exactly. Invalid UTF-8 bytes count as punctuation (neither letter,
// number nor space), one byte per character.
std::vector<std::string_view> PreTokenize(std::string_view text, PreTokenizerKind kind);

}  // namespace relayout
