// SentencePiece-style BPE: merges chosen by piece score, with byte fallback.
//
// Encoding follows SentencePiece's bpe_model and llama.cpp's SPM tokenizer,
// whose outputs the tests pin: spaces become "▁" (U+2581), a "▁" is prepended
// to the text and after every special token (the dummy prefix) when the
// model asks for it, the text is split into UTF-8 characters, and the
// adjacent pair whose concatenation is a piece with the highest score merges
// first (ties: leftmost), via a priority queue so a prompt costs O(n log n).
// Characters left without a piece become byte tokens <0xNN>, or unk when the
// vocabulary has no byte tokens. The normalizer's other rules (NFKC maps,
// remove_extra_whitespaces) are not applied: the Llama tokenizers that this
// serves have an identity normalizer, and llama.cpp and llama2.c skip them too.
//
// Thread safety: immutable after Create.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace relayout {

class SpmTokenizer final : public Tokenizer {
 public:
  // REQUIRES: spec.algorithm == kSentencePieceBpe. InvalidArgument naming
  // spec.source when scores and pieces differ in number or an id is out of
  // range.
  static Result<std::unique_ptr<Tokenizer>> Create(TokenizerSpec spec);

  Result<std::vector<int32_t>> Encode(std::string_view text,
                                      const EncodeOptions& options) const override;
  std::string DecodePiece(int32_t id) const override;
  bool StripsSpaceAfterBos() const override { return add_space_prefix_; }

 private:
  SpmTokenizer() = default;
  // Appends the ids of normalized (already "▁"-escaped) text.
  Status EncodeNormalized(std::string_view normalized, std::vector<int32_t>* out) const;
  // The id that may take part in a merge for piece text, or -1.
  int32_t MergeableId(std::string_view text) const;

  std::vector<float> scores_;
  std::array<int32_t, 256> byte_to_id_{};  // -1: no <0xNN> piece for the byte
  bool add_space_prefix_ = true;
};

}  // namespace relayout
