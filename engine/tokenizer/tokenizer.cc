#include "engine/tokenizer/tokenizer.h"

#include <algorithm>

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/llama2c_tokenizer_file.h"
#include "engine/tokenizer/sentencepiece_model.h"
#include "engine/tokenizer/spm_tokenizer.h"
#include "engine/tokenizer/streaming_decoder.h"

namespace relayout {
namespace {

// Tokenizer files are a few MB at most (Llama 3's tokenizer.json is 9 MB);
// anything far larger is not a tokenizer.
constexpr uint64_t kMaxTokenizerFileBytes = 256ull << 20;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Status Tokenizer::InitVocabulary(TokenizerSpec& spec) {
  const std::string& src = spec.source.empty() ? std::string("tokenizer") : spec.source;
  const size_t n = spec.pieces.size();
  if (n == 0) return Status::InvalidArgument(src, "vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX))
    return Status::InvalidArgument(src, "vocabulary too large");
  if (!spec.types.empty() && spec.types.size() != n) {
    return Status::InvalidArgument(src,
                                   StrCat(spec.types.size(), " token types for ", n, " pieces"));
  }
  const auto in_range = [n](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n; };
  if (spec.bos_id != -1 && !in_range(spec.bos_id)) {
    return Status::InvalidArgument(src,
                                   StrCat("bos id ", spec.bos_id, " out of range [0, ", n, ")"));
  }
  if (spec.unk_id != -1 && !in_range(spec.unk_id)) {
    return Status::InvalidArgument(src,
                                   StrCat("unk id ", spec.unk_id, " out of range [0, ", n, ")"));
  }
  for (int32_t id : spec.eos_ids) {
    if (!in_range(id)) {
      return Status::InvalidArgument(src, StrCat("eos id ", id, " out of range [0, ", n, ")"));
    }
  }
  pieces_ = std::move(spec.pieces);
  types_ = std::move(spec.types);
  if (types_.empty()) types_.assign(n, TokenType::kNormal);
  bos_id_ = spec.bos_id;
  unk_id_ = spec.unk_id;
  eos_ids_ = std::move(spec.eos_ids);
  add_bos_ = spec.add_bos && bos_id_ >= 0;
  source_ = src;

  piece_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // First id wins on duplicates, as in llama.cpp's vocabulary map.
    piece_to_id_.emplace(std::string_view(pieces_[i]), static_cast<int32_t>(i));
    const TokenType type = types_[i];
    if ((type == TokenType::kControl || type == TokenType::kUserDefined) && !pieces_[i].empty()) {
      special_by_first_byte_[static_cast<unsigned char>(pieces_[i][0])].push_back(
          static_cast<int32_t>(i));
    }
  }
  for (std::vector<int32_t>& ids : special_by_first_byte_) {
    std::stable_sort(ids.begin(), ids.end(), [this](int32_t a, int32_t b) {
      return pieces_[static_cast<size_t>(a)].size() > pieces_[static_cast<size_t>(b)].size();
    });
  }
  return Status::OK();
}

std::vector<Tokenizer::Fragment> Tokenizer::SplitOnSpecialTokens(std::string_view text,
                                                                 bool parse_special) const {
  std::vector<Fragment> out;
  size_t raw_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t match = -1;
    for (int32_t id : special_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (!parse_special && types_[static_cast<size_t>(id)] == TokenType::kControl) continue;
      const std::string& p = pieces_[static_cast<size_t>(id)];
      if (text.substr(pos, p.size()) == p) {
        match = id;
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    if (pos > raw_start) out.push_back({-1, text.substr(raw_start, pos - raw_start)});
    out.push_back({match, text.substr(pos, pieces_[static_cast<size_t>(match)].size())});
    pos += pieces_[static_cast<size_t>(match)].size();
    raw_start = pos;
  }
  if (raw_start < text.size()) out.push_back({-1, text.substr(raw_start)});
  return out;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  StreamingDecoder decoder(this);
  std::string out;
  for (int32_t id : ids) out += decoder.Next(id);
  out += decoder.Flush();
  return out;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return TokenType::kUnknown;
  return types_[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::PieceToId(std::string_view text) const {
  auto it = piece_to_id_.find(text);
  if (it == piece_to_id_.end()) return std::nullopt;
  return it->second;
}

Result<std::unique_ptr<Tokenizer>> CreateTokenizer(TokenizerSpec spec) {
  switch (spec.algorithm) {
    case TokenizerAlgorithm::kSentencePieceBpe:
      return SpmTokenizer::Create(std::move(spec));
    case TokenizerAlgorithm::kByteLevelBpe:
      return BpeTokenizer::Create(std::move(spec));
  }
  return Status::InvalidArgument(spec.source, "unknown tokenizer algorithm");
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFile(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, LoadTokenizerSpecFile(env, path));
  return CreateTokenizer(std::move(spec));
}

Result<TokenizerSpec> LoadTokenizerSpecFile(Env* env, const std::string& path) {
  if (EndsWith(path, ".json")) return ReadHfTokenizerJsonSpec(env, path);
  ASSIGN_OR_RETURN(std::string bytes, env->ReadSmallFile(path, kMaxTokenizerFileBytes));
  // A llama2.c file starts with a small little-endian int32 (the longest
  // piece), so bytes 1..3 are zero; a ModelProto starts with a field-1 tag
  // followed by a non-zero length.
  const bool llama2c = EndsWith(path, ".bin") || (!EndsWith(path, ".model") && bytes.size() >= 4 &&
                                                  bytes[1] == 0 && bytes[2] == 0 && bytes[3] == 0);
  TokenizerSpec spec;
  if (llama2c) {
    ASSIGN_OR_RETURN(spec, ParseLlama2cTokenizer(bytes, path));
  } else {
    ASSIGN_OR_RETURN(spec, ParseSentencePieceModel(bytes, path));
  }
  return spec;
}

}  // namespace relayout
