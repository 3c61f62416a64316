#include "engine/tokenizer/streaming_decoder.h"

#include "engine/text/unicode.h"

namespace relayout {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Whether tail is the start of a UTF-8 sequence that more bytes may complete.
bool IsUnfinishedSequence(std::string_view tail) {
  const size_t want = Utf8SequenceLength(static_cast<unsigned char>(tail[0]));
  if (want < 2 || tail.size() >= want) return false;
  for (size_t i = 1; i < tail.size(); ++i) {
    if (!IsContinuation(tail[i])) return false;
  }
  return true;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer* tokenizer, int32_t previous_token)
    : tokenizer_(tokenizer), previous_token_(previous_token) {}

std::string StreamingDecoder::Next(int32_t id) {
  const int32_t previous = previous_token_;
  previous_token_ = id;
  if (id < 0 || id >= tokenizer_->vocab_size()) return {};
  if (tokenizer_->token_type(id) == TokenType::kControl) return {};
  std::string piece = tokenizer_->DecodePiece(id);
  if (previous >= 0 && previous == tokenizer_->bos_id() && tokenizer_->StripsSpaceAfterBos() &&
      !piece.empty() && piece[0] == ' ') {
    piece.erase(0, 1);
  }
  pending_ += piece;

  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const Utf8Char c = DecodeUtf8(pending_, pos);
    if (c.code_point != kInvalidCodePoint) {
      out.append(pending_, pos, c.length);
      pos += c.length;
    } else if (IsUnfinishedSequence(std::string_view(pending_).substr(pos))) {
      break;
    } else {
      out += kReplacement;
      ++pos;
    }
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out += kReplacement;
  pending_.clear();
  return out;
}

}  // namespace relayout
