// GPT-2-style byte-level BPE with ranked merges (SmolLM2, GPT-2, StarCoder).
//
// Encoding: special tokens are split off first (SplitOnSpecialTokens), the
// rest is pre-tokenized (gpt2_pretokenizer.h), each pre-token's bytes are
// mapped to GPT-2's printable byte alphabet ("Ġ" for a space, ...) and start
// as one symbol per byte; then the adjacent pair whose merge has the lowest
// rank (its index in the merges list) merges first, ties leftmost, via a
// priority queue. No dummy prefix, no normalization.
//
// Thread safety: immutable after Create.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/gpt2_pretokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

class BpeTokenizer final : public Tokenizer {
 public:
  // REQUIRES: spec.algorithm == kByteLevelBpe. Unimplemented for an unknown
  // spec.pre; InvalidArgument naming spec.source when an id is out of range.
  // Merges whose parts or result are not pieces are skipped (they can never
  // apply).
  static Result<std::unique_ptr<Tokenizer>> Create(TokenizerSpec spec);

  Result<std::vector<int32_t>> Encode(std::string_view text,
                                      const EncodeOptions& options) const override;
  std::string DecodePiece(int32_t id) const override;
  bool StripsSpaceAfterBos() const override { return false; }

  // GPT-2's printable spelling of byte b (bytes_to_unicode): printable
  // Latin-1 bytes map to themselves, the others to U+0100 upwards.
  static char32_t ByteToCodePoint(uint8_t b);

 private:
  BpeTokenizer() = default;
  Status EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  struct Merge {
    int32_t rank;
    int32_t result;
  };
  PreTokenizerKind pre_ = PreTokenizerKind::kGpt2;
  std::array<int32_t, 256> byte_to_id_{};  // the one-byte symbol's id; -1: none
  // (left id << 32 | right id) -> merge.
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::string> decoded_;  // raw bytes of each id
};

}  // namespace relayout
