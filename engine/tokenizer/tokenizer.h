// Tokenizer: text <-> token ids for the served model.
//
// Two algorithms sit behind one interface:
//   - SentencePiece-style BPE with scores (Llama 1/2, the llama2.c models):
//     SpmTokenizer in spm_tokenizer.h.
//   - GPT-2-style byte-level BPE with ranked merges (SmolLM2): BpeTokenizer in
//     bpe_tokenizer.h.
// Both are built from a TokenizerSpec: plain vectors that the format loaders
// (sentencepiece_model.h, llama2c_tokenizer_file.h, gguf_tokenizer.h,
// hf_tokenizer_json.h) fill from their files. The algorithms never see a file
// format, so a new format is a new loader only.
//
// Thread safety: a built Tokenizer is immutable; Encode and every accessor may
// be called concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/base/env.h"
#include "engine/base/status.h"

namespace relayout {

// Numbered as SentencePiece's ModelProto.SentencePiece.Type and GGUF's
// tokenizer.ggml.token_type, which share the numbering.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, </s>, <|im_start|>: matched only with parse_special
  kUserDefined = 4,  // always matched as a whole string before BPE
  kUnused = 5,
  kByte = 6,  // <0xNN>: one raw byte
};

enum class TokenizerAlgorithm {
  kSentencePieceBpe,  // merges chosen by piece score
  kByteLevelBpe,      // merges chosen by rank in the merges list
};

// What a loader extracts from a tokenizer file. Ids are indexes into pieces.
struct TokenizerSpec {
  TokenizerAlgorithm algorithm = TokenizerAlgorithm::kSentencePieceBpe;
  // Piece text as the model's vocabulary spells it: "▁the" (U+2581 for a
  // space) for SentencePiece, "Ġthe" (GPT-2 byte-to-unicode) for byte-level.
  std::vector<std::string> pieces;
  std::vector<float> scores;     // SentencePiece only; empty or pieces.size()
  std::vector<TokenType> types;  // empty (all normal) or pieces.size()
  // Byte-level BPE only: merge pairs in rank order (rank 0 merges first).
  std::vector<std::pair<std::string, std::string>> merges;
  int32_t bos_id = -1;  // -1: none
  int32_t unk_id = -1;
  std::vector<int32_t> eos_ids;  // end-of-generation ids (eos, eot, ...)
  bool add_bos = true;           // the model's metadata asks for BOS
  bool add_space_prefix = true;  // SentencePiece dummy prefix "▁"
  // Byte-level pre-tokenizer name, as GGUF tokenizer.ggml.pre spells it:
  // "gpt2", "smollm" (digits split one by one first), "default" (= gpt2).
  std::string pre = "gpt2";
  // Names the source in error messages ("stories260K/tok512.bin").
  std::string source;
};

struct EncodeOptions {
  bool add_bos = true;         // prepend BOS when the model's metadata asks for it
  bool parse_special = false;  // match control tokens' text ("<s>") as tokens
};

class Tokenizer {
 public:
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  virtual ~Tokenizer() = default;

  // Token ids of text. With options.add_bos and the model's add_bos, BOS
  // comes first. Invalid UTF-8 is encoded byte by byte (byte tokens or unk).
  // InvalidArgument when a character has no token at all (no byte tokens and
  // no unk piece).
  virtual Result<std::vector<int32_t>> Encode(std::string_view text,
                                              const EncodeOptions& options) const = 0;

  // The raw bytes token id stands for: "▁the" -> " the", "<0x0A>" -> "\n",
  // "Ġthe" -> " the". Control and unknown tokens give their piece text.
  // Empty for ids outside [0, vocab_size()).
  virtual std::string DecodePiece(int32_t id) const = 0;

  // Whether a decoder drops the space that starts the first piece after BOS
  // (SentencePiece's dummy prefix, as llama2.c prints it).
  virtual bool StripsSpaceAfterBos() const = 0;

  // Concatenated DecodePiece of ids, control tokens skipped, with the space
  // after a leading BOS stripped as a StreamingDecoder would.
  std::string Decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t unk_id() const { return unk_id_; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool add_bos() const { return add_bos_; }
  bool IsEndOfGeneration(int32_t id) const;
  // REQUIRES: 0 <= id < vocab_size().
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  TokenType token_type(int32_t id) const;
  // The id whose piece text is exactly text; nullopt when none.
  std::optional<int32_t> PieceToId(std::string_view text) const;

 protected:
  // Validates the ids in spec (InvalidArgument "source: bos id 7 out of range")
  // and takes its pieces. Called by the subclasses' factories.
  Tokenizer() = default;
  Status InitVocabulary(TokenizerSpec& spec);

  // A stretch of input: a special token (token >= 0) or raw text to run
  // through the algorithm (token == -1).
  struct Fragment {
    int32_t token = -1;
    std::string_view text;
  };
  // Splits text at whole-string matches of user-defined pieces, and of
  // control pieces when parse_special; leftmost match first, longest piece
  // when several start at one byte.
  std::vector<Fragment> SplitOnSpecialTokens(std::string_view text, bool parse_special) const;

  std::vector<std::string> pieces_;
  std::vector<TokenType> types_;
  // Keys view into pieces_, which never changes after InitVocabulary.
  std::unordered_map<std::string_view, int32_t> piece_to_id_;
  // Control and user-defined ids by their piece's first byte, longest piece
  // first, so the split probes only candidates that can match.
  std::array<std::vector<int32_t>, 256> special_by_first_byte_;
  int32_t bos_id_ = -1;
  int32_t unk_id_ = -1;
  std::vector<int32_t> eos_ids_;
  bool add_bos_ = true;
  std::string source_;
};

// Builds the tokenizer spec.algorithm names. InvalidArgument naming
// spec.source when the spec is inconsistent (sizes differ, ids out of range).
Result<std::unique_ptr<Tokenizer>> CreateTokenizer(TokenizerSpec spec);

// Loads a tokenizer file: a Hugging Face tokenizer.json (by its ".json"
// name; see hf_tokenizer_json.h), else by its contents a SentencePiece
// tokenizer.model (protobuf) or a llama2.c tokenizer.bin/tok512.bin. NotFound
// when the file does not exist; DataLoss naming the file and offset (or JSON
// key) when it is malformed.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFile(Env* env, const std::string& path);

// The spec LoadTokenizerFile builds its tokenizer from, for a caller that
// adjusts it first (special tokens from a tokenizer_config.json). Codes as
// LoadTokenizerFile, less CreateTokenizer's.
Result<TokenizerSpec> LoadTokenizerSpecFile(Env* env, const std::string& path);

}  // namespace relayout
