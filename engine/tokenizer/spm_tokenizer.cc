#include "engine/tokenizer/spm_tokenizer.h"

#include <queue>

#include "engine/text/unicode.h"

namespace relayout {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

// The value of a "<0xNN>" piece, or -1.
int ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

// One symbol of the working sequence: a byte range of the normalized text,
// linked to its live neighbours (-1 at the ends).
struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t size;  // 0 once merged into its left neighbour
};

// A candidate merge of symbols left and right (left's next at push time).
// 16 bytes: the heap's sift loops dominate encoding time.
struct Bigram {
  float score;
  int left;
  int right;
  uint32_t size;  // left.size + right.size at push time, to detect stale entries
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> SpmTokenizer::Create(TokenizerSpec spec) {
  if (spec.scores.size() != spec.pieces.size()) {
    return Status::InvalidArgument(
        spec.source.empty() ? "tokenizer" : spec.source,
        StrCat(spec.scores.size(), " scores for ", spec.pieces.size(), " pieces"));
  }
  std::unique_ptr<SpmTokenizer> tok(new SpmTokenizer());
  tok->scores_ = std::move(spec.scores);
  tok->add_space_prefix_ = spec.add_space_prefix;
  RETURN_IF_ERROR(tok->InitVocabulary(spec));
  tok->byte_to_id_.fill(-1);
  for (int32_t id = 0; id < tok->vocab_size(); ++id) {
    if (tok->types_[static_cast<size_t>(id)] != TokenType::kByte) continue;
    const int value = ParseBytePiece(tok->pieces_[static_cast<size_t>(id)]);
    if (value >= 0 && tok->byte_to_id_[static_cast<size_t>(value)] < 0) {
      tok->byte_to_id_[static_cast<size_t>(value)] = id;
    }
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

int32_t SpmTokenizer::MergeableId(std::string_view text) const {
  auto it = piece_to_id_.find(text);
  if (it == piece_to_id_.end()) return -1;
  // As in SentencePiece: control, byte and unused pieces are never produced
  // by merging characters.
  const TokenType type = types_[static_cast<size_t>(it->second)];
  return (type == TokenType::kNormal || type == TokenType::kUserDefined) ? it->second : -1;
}

Status SpmTokenizer::EncodeNormalized(std::string_view text, std::vector<int32_t>* out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = DecodeUtf8(text, pos).length;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, pos, len});
    pos += len;
  }
  if (symbols.empty()) return Status::OK();
  symbols.back().next = -1;

  // The initial pairs are heapified at once (linear) rather than pushed.
  std::vector<Bigram> initial;
  initial.reserve(symbols.size());
  const auto make_bigram = [&](int left, int right, Bigram* out) {
    if (left < 0 || right < 0) return false;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const int32_t id = MergeableId(text.substr(l.begin, l.size + r.size));
    if (id < 0) return false;
    *out = {scores_[static_cast<size_t>(id)], left, right, static_cast<uint32_t>(l.size + r.size)};
    return true;
  };
  for (size_t i = 1; i < symbols.size(); ++i) {
    Bigram b;
    if (make_bigram(static_cast<int>(i) - 1, static_cast<int>(i), &b)) initial.push_back(b);
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{},
                                                                      std::move(initial));
  const auto try_add = [&](int left, int right) {
    Bigram b;
    if (make_bigram(left, right, &b)) queue.push(b);
  };

  while (!queue.empty()) {
    const Bigram top = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(top.left)];
    Symbol& r = symbols[static_cast<size_t>(top.right)];
    // Stale: one side merged away since the push.
    if (l.size == 0 || r.size == 0 || l.size + r.size != top.size || l.next != top.right) continue;
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = top.left;
    try_add(l.prev, top.left);
    try_add(top.left, l.next);
  }

  for (int i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece = text.substr(s.begin, s.size);
    auto it = piece_to_id_.find(piece);
    if (it != piece_to_id_.end()) {
      out->push_back(it->second);
      continue;
    }
    for (char c : piece) {
      const int32_t byte_id = byte_to_id_[static_cast<unsigned char>(c)];
      if (byte_id >= 0) {
        out->push_back(byte_id);
      } else if (unk_id_ >= 0) {
        out->push_back(unk_id_);
        break;  // one unk per character, as SentencePiece emits
      } else {
        return Status::InvalidArgument(source_, StrCat("no token for the text at byte ", s.begin,
                                                       " and no byte or unk token"));
      }
    }
  }
  return Status::OK();
}

Result<std::vector<int32_t>> SpmTokenizer::Encode(std::string_view text,
                                                  const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (options.add_bos && add_bos_) out.push_back(bos_id_);
  bool after_special = true;  // the text's start counts as after a special token
  std::string normalized;
  for (const Fragment& fragment : SplitOnSpecialTokens(text, options.parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    normalized.clear();
    if (add_space_prefix_ && after_special) normalized += kSpaceSymbol;
    for (char c : fragment.text) {
      if (c == ' ') {
        normalized += kSpaceSymbol;
      } else {
        normalized.push_back(c);
      }
    }
    RETURN_IF_ERROR(EncodeNormalized(normalized, &out));
    after_special = false;
  }
  return out;
}

std::string SpmTokenizer::DecodePiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  const std::string& piece = pieces_[static_cast<size_t>(id)];
  if (types_[static_cast<size_t>(id)] == TokenType::kByte) {
    const int value = ParseBytePiece(piece);
    if (value >= 0) return std::string(1, static_cast<char>(value));
  }
  std::string out;
  out.reserve(piece.size());
  for (size_t pos = 0; pos < piece.size();) {
    if (piece.compare(pos, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      out.push_back(' ');
      pos += kSpaceSymbol.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

}  // namespace relayout
