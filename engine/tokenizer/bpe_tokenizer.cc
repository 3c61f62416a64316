#include "engine/tokenizer/bpe_tokenizer.h"

#include <queue>
#include <unordered_map>

#include "engine/text/unicode.h"

namespace relayout {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct Symbol {
  int prev;
  int next;
  int32_t id;  // -1 once merged into its left neighbour
};

struct Candidate {
  int32_t rank;
  int left;
  int right;
  int32_t left_id;  // ids at push time, to detect stale entries
  int32_t right_id;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

char32_t BpeTokenizer::ByteToCodePoint(uint8_t b) {
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
  // The 68 other bytes take U+0100.. in byte order.
  int n = 0;
  for (int x = 0; x < b; ++x) {
    if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++n;
  }
  return static_cast<char32_t>(0x100 + n);
}

Result<std::unique_ptr<Tokenizer>> BpeTokenizer::Create(TokenizerSpec spec) {
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer());
  const std::optional<PreTokenizerKind> pre = PreTokenizerKindFromName(spec.pre);
  if (!pre) {
    return Status::Unimplemented(spec.source.empty() ? "tokenizer" : spec.source,
                                 StrCat("pre-tokenizer \"", spec.pre, "\" is not supported"));
  }
  tok->pre_ = *pre;
  std::vector<std::pair<std::string, std::string>> merges = std::move(spec.merges);
  RETURN_IF_ERROR(tok->InitVocabulary(spec));

  std::unordered_map<char32_t, uint8_t> code_point_to_byte;
  std::string spelled;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = ByteToCodePoint(static_cast<uint8_t>(b));
    code_point_to_byte[cp] = static_cast<uint8_t>(b);
    spelled.clear();
    AppendUtf8(cp, &spelled);
    tok->byte_to_id_[static_cast<size_t>(b)] = tok->PieceToId(spelled).value_or(-1);
  }

  tok->merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto left = tok->PieceToId(merges[rank].first);
    const auto right = tok->PieceToId(merges[rank].second);
    joined = merges[rank].first + merges[rank].second;
    const auto result = tok->PieceToId(joined);
    if (!left || !right || !result) continue;
    // The first (lowest-rank) entry for a pair wins.
    tok->merges_.emplace(PairKey(*left, *right), Merge{static_cast<int32_t>(rank), *result});
  }

  tok->decoded_.resize(tok->pieces_.size());
  for (size_t id = 0; id < tok->pieces_.size(); ++id) {
    const std::string& piece = tok->pieces_[id];
    const TokenType type = tok->types_[id];
    std::string& raw = tok->decoded_[id];
    // Added tokens are stored as plain text, not in the byte alphabet.
    bool plain = type == TokenType::kControl || type == TokenType::kUserDefined;
    for (size_t pos = 0; !plain && pos < piece.size();) {
      const Utf8Char c = DecodeUtf8(piece, pos);
      auto it = code_point_to_byte.find(c.code_point);
      if (it == code_point_to_byte.end()) {
        plain = true;
        break;
      }
      raw.push_back(static_cast<char>(it->second));
      pos += c.length;
    }
    if (plain) raw = piece;
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

Status BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    int32_t id = byte_to_id_[static_cast<unsigned char>(word[i])];
    if (id < 0) id = unk_id_;
    if (id < 0) {
      return Status::InvalidArgument(
          source_,
          StrCat("byte 0x", std::hex, static_cast<int>(static_cast<unsigned char>(word[i])),
                 " has no token and there is no unk token"));
    }
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, id});
  }
  if (symbols.empty()) return Status::OK();
  symbols.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  const auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t l = symbols[static_cast<size_t>(left)].id;
    const int32_t r = symbols[static_cast<size_t>(right)].id;
    auto it = merges_.find(PairKey(l, r));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, right, l, r});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(top.left)];
    Symbol& r = symbols[static_cast<size_t>(top.right)];
    if (l.id != top.left_id || r.id != top.right_id || l.next != top.right) continue;
    l.id = merges_.find(PairKey(l.id, r.id))->second.result;
    r.id = -1;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = top.left;
    try_add(l.prev, top.left);
    try_add(top.left, l.next);
  }
  for (int i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    out->push_back(symbols[static_cast<size_t>(i)].id);
  }
  return Status::OK();
}

Result<std::vector<int32_t>> BpeTokenizer::Encode(std::string_view text,
                                                  const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (options.add_bos && add_bos_) out.push_back(bos_id_);
  for (const Fragment& fragment : SplitOnSpecialTokens(text, options.parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      continue;
    }
    for (std::string_view word : PreTokenize(fragment.text, pre_)) {
      RETURN_IF_ERROR(EncodeWord(word, &out));
    }
  }
  return out;
}

std::string BpeTokenizer::DecodePiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return decoded_[static_cast<size_t>(id)];
}

}  // namespace relayout
