#include "engine/tokenizer/llama2c_tokenizer_file.h"

#include <cstring>

namespace relayout {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

template <typename T>
T LoadLittleEndian(std::string_view bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));  // little-endian host
  return v;
}

bool IsBytePiece(std::string_view p) {
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.substr(0, 3) == "<0x" && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

}  // namespace

Result<TokenizerSpec> ParseLlama2cTokenizer(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 4) {
    return Status::DataLoss(
        name, StrCat("file is ", bytes.size(), " bytes, too short for the header at offset 0"));
  }
  TokenizerSpec spec;
  spec.algorithm = TokenizerAlgorithm::kSentencePieceBpe;
  spec.source = name;
  size_t pos = 4;  // max_token_length is only a buffer size for llama2.c
  while (pos < bytes.size()) {
    const size_t token_offset = pos;
    if (bytes.size() - pos < 8) {
      return Status::DataLoss(name, StrCat("token ", spec.pieces.size(),
                                           " truncated in its score/length at offset ", pos));
    }
    const auto score = LoadLittleEndian<float>(bytes, pos);
    const auto len = LoadLittleEndian<int32_t>(bytes, pos + 4);
    pos += 8;
    if (len < 0 || static_cast<size_t>(len) > bytes.size() - pos) {
      return Status::DataLoss(
          name, StrCat("token ", spec.pieces.size(), " has length ", len, " but ",
                       bytes.size() - pos, " bytes are left at offset ", token_offset));
    }
    std::string piece;
    for (char c : bytes.substr(pos, static_cast<size_t>(len))) {
      if (c == ' ') {
        piece += kSpaceSymbol;
      } else {
        piece.push_back(c);
      }
    }
    pos += static_cast<size_t>(len);
    spec.pieces.push_back(std::move(piece));
    spec.scores.push_back(score);
  }
  if (spec.pieces.size() < 3) {
    return Status::DataLoss(
        name, StrCat("only ", spec.pieces.size(),
                     " tokens; <unk>, <s> and </s> are required at offset ", bytes.size()));
  }
  spec.types.assign(spec.pieces.size(), TokenType::kNormal);
  for (size_t i = 0; i < spec.pieces.size(); ++i) {
    if (IsBytePiece(spec.pieces[i])) spec.types[i] = TokenType::kByte;
  }
  spec.pieces[0] = "<unk>";
  spec.pieces[1] = "<s>";
  spec.pieces[2] = "</s>";
  spec.types[0] = TokenType::kUnknown;
  spec.types[1] = TokenType::kControl;
  spec.types[2] = TokenType::kControl;
  spec.unk_id = 0;
  spec.bos_id = 1;
  spec.eos_ids = {2};
  spec.add_bos = true;
  spec.add_space_prefix = true;
  return spec;
}

}  // namespace relayout
