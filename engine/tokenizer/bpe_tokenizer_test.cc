#include "engine/tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/text/unicode.h"

namespace relayout {
namespace {

std::string Spell(std::string_view raw) {
  std::string out;
  for (char c : raw) AppendUtf8(BpeTokenizer::ByteToCodePoint(static_cast<uint8_t>(c)), &out);
  return out;
}

// A byte-level vocabulary: the 256 one-byte pieces (ids 0..255 in byte
// order), merged pieces after them, then an end-of-text control token.
struct TinyVocab {
  TokenizerSpec spec;
  int32_t Id(std::string_view raw) const {
    const std::string spelled = Spell(raw);
    for (size_t i = 0; i < spec.pieces.size(); ++i) {
      if (spec.pieces[i] == spelled) return static_cast<int32_t>(i);
    }
    ADD_FAILURE() << "no piece for \"" << raw << "\"";
    return -1;
  }
};

TinyVocab MakeVocab(const std::vector<std::pair<std::string, std::string>>& raw_merges,
                    const std::string& pre = "gpt2") {
  TinyVocab v;
  v.spec.algorithm = TokenizerAlgorithm::kByteLevelBpe;
  v.spec.pre = pre;
  v.spec.source = "tiny";
  for (int b = 0; b < 256; ++b)
    v.spec.pieces.push_back(Spell(std::string(1, static_cast<char>(b))));
  for (const auto& [a, b] : raw_merges) {
    v.spec.merges.emplace_back(Spell(a), Spell(b));
    v.spec.pieces.push_back(Spell(a + b));
  }
  v.spec.pieces.push_back("<|endoftext|>");
  v.spec.types.assign(v.spec.pieces.size(), TokenType::kNormal);
  v.spec.types.back() = TokenType::kControl;
  v.spec.eos_ids = {static_cast<int32_t>(v.spec.pieces.size()) - 1};
  v.spec.bos_id = v.spec.eos_ids[0];
  v.spec.add_bos = false;
  return v;
}

std::vector<int32_t> Encode(const Tokenizer& tok, std::string_view text, bool special = false) {
  Result<std::vector<int32_t>> ids = tok.Encode(text, {.add_bos = true, .parse_special = special});
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(BpeTokenizerTest, ByteAlphabetMatchesGpt2) {
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint('a'), U'a');
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(0x00), 0x100u);
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(0x7F), 0x121u);
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(0xA0), 0x142u);
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(0xAD), 0x143u);
  EXPECT_EQ(BpeTokenizer::ByteToCodePoint(0xFF), 0xFFu);
}

TEST(BpeTokenizerTest, MergesApplyByRankWithinEachWord) {
  TinyVocab v = MakeVocab({{" ", "t"}, {"h", "e"}, {" t", "he"}});
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Encode(**tok, "the the"), (std::vector<int32_t>{v.Id("t"), v.Id("he"), v.Id(" the")}));
}

TEST(BpeTokenizerTest, LowerRankWinsOverPosition) {
  TinyVocab v = MakeVocab({{"b", "c"}, {"a", "b"}});
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Encode(**tok, "abc"), (std::vector<int32_t>{v.Id("a"), v.Id("bc")}));
}

TEST(BpeTokenizerTest, EqualRanksMergeLeftmostFirst) {
  TinyVocab v = MakeVocab({{"a", "a"}});
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Encode(**tok, "aaa"), (std::vector<int32_t>{v.Id("aa"), v.Id("a")}));
  EXPECT_EQ(Encode(**tok, "aaaa"), (std::vector<int32_t>{v.Id("aa"), v.Id("aa")}));
}

TEST(BpeTokenizerTest, MergesNeverCrossPreTokens) {
  TinyVocab v = MakeVocab({{"a", " "}});
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Encode(**tok, "a b"), (std::vector<int32_t>{v.Id("a"), v.Id(" "), v.Id("b")}));
}

TEST(BpeTokenizerTest, SmolLmSplitsDigitsBeforeMerging) {
  TinyVocab v = MakeVocab({{"1", "2"}, {" ", "1"}}, "smollm");
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Encode(**tok, " 12"), (std::vector<int32_t>{v.Id(" "), v.Id("1"), v.Id("2")}));
}

TEST(BpeTokenizerTest, ControlTokensMatchOnlyWithParseSpecial) {
  TinyVocab v = MakeVocab({});
  const int32_t eot = v.spec.eos_ids[0];
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> special = Encode(**tok, "a<|endoftext|>", true);
  EXPECT_EQ(special, (std::vector<int32_t>{v.Id("a"), eot}));
  const std::vector<int32_t> plain = Encode(**tok, "a<|endoftext|>", false);
  // Without merges every byte is its own token; the control token never appears.
  EXPECT_EQ(plain.size(), 14u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
}

TEST(BpeTokenizerTest, DecodeRoundTripsBytesIncludingInvalidUtf8) {
  TinyVocab v = MakeVocab({{" ", "t"}, {"h", "e"}, {" t", "he"}});
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  for (std::string_view text : {"the the", "\xF0\x9F\x99\x82 \n\tend", "caf\xC3\xA9 12 34"}) {
    std::string decoded;
    for (int32_t id : Encode(**tok, text)) decoded += (*tok)->DecodePiece(id);
    EXPECT_EQ(decoded, text);
    EXPECT_EQ((*tok)->Decode(Encode(**tok, text)), text);
  }
  EXPECT_EQ((*tok)->DecodePiece(v.spec.eos_ids[0]), "<|endoftext|>");
  EXPECT_FALSE((*tok)->StripsSpaceAfterBos());
}

TEST(BpeTokenizerTest, UnknownPreTokenizerIsUnimplemented) {
  TinyVocab v = MakeVocab({}, "qwen2");
  Status s = CreateTokenizer(v.spec).status();
  EXPECT_TRUE(s.IsUnimplemented()) << s;
  EXPECT_NE(s.message().find("tiny: pre-tokenizer \"qwen2\" is not supported"), std::string::npos);
}

TEST(BpeTokenizerTest, MissingByteWithoutUnkIsInvalidArgument) {
  TinyVocab v = MakeVocab({});
  v.spec.pieces['z'] = "unused-z";  // no piece spells byte 'z' any more
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(v.spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  Status s = (*tok)->Encode("z", {}).status();
  EXPECT_TRUE(s.IsInvalidArgument()) << s;
  EXPECT_NE(s.message().find("byte 0x7a has no token"), std::string::npos) << s;
}

}  // namespace
}  // namespace relayout
