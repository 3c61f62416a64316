#include "engine/tokenizer/hf_tokenizer_json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace relayout {
namespace {

constexpr char kByteLevelPre[] =
    R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})";
constexpr char kSmolLmPre[] =
    R"({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]})";
// Ġ+a outranks a+b, so " ab" becomes Ġab rather than Ġ ab.
constexpr char kStringMerges[] = R"(["Ġ a", "a b", "Ġa b", "1 2"])";

// A byte-level vocabulary: <s> a b c Ġ 1 2 < s > ab Ġa Ġab 12, plus the added
// tokens "cc" (not special, id 14) and <|endoftext|> (special, id 15).
std::string ByteLevelDoc(const std::string& pre, const std::string& merges = kStringMerges) {
  return std::string(R"({"version": "1.0", "added_tokens": [
      {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": false, "special": true},
      {"id": 14, "content": "cc", "special": false},
      {"id": 15, "content": "<|endoftext|>", "special": true}],
    "normalizer": null, "pre_tokenizer": )") +
         pre + R"(, "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false,
      "byte_fallback": false, "ignore_merges": false,
      "vocab": {"<s>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "1": 5, "2": 6, "<": 7, "s": 8,
                ">": 9, "ab": 10, "Ġa": 11, "Ġab": 12, "12": 13},
      "merges": )" +
         merges + "}}";
}

// A SentencePiece vocabulary: <unk> <s> </s> <0x0A> ▁ a b ▁a ab, with the
// merges ▁+a before a+b, and the given pre-tokenizer and normalizer.
std::string SpmDoc(const std::string& pre, const std::string& normalizer) {
  return R"({"added_tokens": [
      {"id": 0, "content": "<unk>", "special": true},
      {"id": 1, "content": "<s>", "special": true},
      {"id": 2, "content": "</s>", "special": true}],
    "normalizer": )" +
         normalizer + R"(, "pre_tokenizer": )" + pre + R"(,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁": 4, "a": 5, "b": 6, "▁a": 7, "ab": 8},
      "merges": ["▁ a", "a b"]}})";
}

Result<std::unique_ptr<Tokenizer>> Build(const std::string& doc) {
  Result<JsonValue> json = ParseJson(doc);
  if (!json.ok()) return json.status();
  ASSIGN_OR_RETURN(TokenizerSpec spec, TokenizerSpecFromHfJson(*json, "tok.json"));
  return CreateTokenizer(std::move(spec));
}

std::vector<int32_t> Ids(const Tokenizer& tok, const std::string& text, EncodeOptions options) {
  Result<std::vector<int32_t>> ids = tok.Encode(text, options);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

// The status of building doc, which must fail.
Status Error(const std::string& doc) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(doc);
  EXPECT_FALSE(tok.ok());
  return tok.ok() ? Status::OK() : tok.status();
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(HfTokenizerJsonTest, ByteLevelBuildsGpt2Tokenizer) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(ByteLevelDoc(kByteLevelPre));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // "cc" is user-defined: matched whole; "<s>" is control: plain text here.
  EXPECT_EQ(Ids(**tok, "ab ab<s>cc12", {}), (std::vector<int32_t>{10, 12, 7, 8, 9, 14, 13}));
  EXPECT_EQ(Ids(**tok, "ab<s>", {.add_bos = true, .parse_special = true}),
            (std::vector<int32_t>{10, 0}));
  EXPECT_FALSE((*tok)->add_bos());
  EXPECT_EQ((*tok)->bos_id(), 0);
  EXPECT_EQ((*tok)->eos_ids(), std::vector<int32_t>{15});
  EXPECT_EQ((*tok)->token_type(14), TokenType::kUserDefined);
  EXPECT_EQ((*tok)->token_type(15), TokenType::kControl);
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{10, 12}), "ab ab");
}

TEST(HfTokenizerJsonTest, MergePairsEqualMergeStrings) {
  Result<std::unique_ptr<Tokenizer>> tok =
      Build(ByteLevelDoc(kByteLevelPre, R"([["Ġ", "a"], ["a", "b"], ["Ġa", "b"], ["1", "2"]])"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Ids(**tok, "ab ab12", {}), (std::vector<int32_t>{10, 12, 13}));
}

TEST(HfTokenizerJsonTest, DigitsSequenceSplitsDigitsOneByOne) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(ByteLevelDoc(kSmolLmPre));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Ids(**tok, "ab12", {}), (std::vector<int32_t>{10, 5, 6}));
}

TEST(HfTokenizerJsonTest, SplitOnNumbersSequenceSplitsDigitsOneByOne) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(ByteLevelDoc(
      R"({"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": false},
          {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]})"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Ids(**tok, "12", {}), (std::vector<int32_t>{5, 6}));
}

TEST(HfTokenizerJsonTest, MetaspaceBuildsSentencePieceTokenizerWithDummyPrefix) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(SpmDoc(
      R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})",
      "null"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // "▁ab\na": ▁a (merge rank 0) before ab (rank 1), then b, <0x0A>, a.
  EXPECT_EQ(Ids(**tok, "ab\na", {}), (std::vector<int32_t>{1, 7, 6, 3, 5}));
  EXPECT_TRUE((*tok)->add_bos());
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->unk_id(), 0);
  EXPECT_EQ((*tok)->eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ((*tok)->token_type(3), TokenType::kByte);
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{1, 7, 6, 3, 5}), "ab\na");
}

TEST(HfTokenizerJsonTest, MetaspaceNeverPrependsNoDummyPrefix) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(
      SpmDoc(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"})", "null"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Ids(**tok, "ab", {.add_bos = false}), (std::vector<int32_t>{8}));
}

TEST(HfTokenizerJsonTest, SentencePieceNormalizerWithoutPreTokenizerAddsDummyPrefix) {
  Result<std::unique_ptr<Tokenizer>> tok = Build(SpmDoc("null", R"({"type": "Sequence",
      "normalizers": [{"type": "Prepend", "prepend": "▁"},
                      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(Ids(**tok, "ab a", {.add_bos = false}), (std::vector<int32_t>{7, 6, 7}));
}

TEST(HfTokenizerJsonTest, AddedTokensMustNotLeaveAHole) {
  const Status s = Error(Replace(ByteLevelDoc(kByteLevelPre), R"("id": 14,)", R"("id": 16,)"));
  EXPECT_TRUE(s.IsDataLoss()) << s;
  EXPECT_EQ(s.message(), "tok.json: model.vocab has no token for id 14 (nor has added_tokens)");
}

TEST(HfTokenizerJsonTest, AddedTokenMayNotRenameAVocabularyToken) {
  const Status s = Error(Replace(ByteLevelDoc(kByteLevelPre), R"("id": 14,)", R"("id": 3,)"));
  EXPECT_TRUE(s.IsDataLoss()) << s;
  EXPECT_NE(s.message().find("added_tokens give id 3 to \"cc\""), std::string::npos) << s;
}

TEST(HfTokenizerJsonTest, MalformedStructuresAreDataLossNamingTheKey) {
  const std::string doc = ByteLevelDoc(kByteLevelPre);
  const struct {
    std::string from, to, message;
  } cases[] = {
      {R"("vocab": {)", R"("vocab": [], "x": {)", "tok.json: model.vocab is not a JSON object"},
      {R"("Ġ a", "a b")", R"("Ġ a", 7)",
       "tok.json: model.merges[1] is not a \"left right\" string or a pair"},
      {R"(["Ġ a")", R"(["Ġa")",
       "tok.json: model.merges[0] is not a \"left right\" string or a pair"},
      {R"("Ġab": 12)", R"("Ġab": 99)",
       "tok.json: model.vocab[\"Ġab\"] = 99 is out of range [0, 17)"},
      {R"("Ġab": 12)", R"("Ġab": 1.5)", "tok.json: model.vocab[\"Ġab\"] is not an integer id"},
      {R"("Ġab": 12)", R"("Ġab": 11)", "tok.json: model.vocab[\"Ġab\"] reuses id 11 of \"Ġa\""},
      {R"("id": 14, )", "", "tok.json: added_tokens[1].id is missing"},
      {R"("content": "cc")", R"("content": 5)",
       "tok.json: added_tokens[1].content is not a JSON string"},
      {R"("special": false)", R"("special": "no")",
       "tok.json: added_tokens[1].special is not a JSON bool"},
      {R"("model": {)", R"("model": 3, "m": {)", "tok.json: model is not a JSON object"},
      {R"("byte_fallback": false)", R"("byte_fallback": 0)",
       "tok.json: model.byte_fallback is not a JSON bool"},
      {R"("unk_token": null)", R"("unk_token": "<zz>")",
       "tok.json: model.unk_token \"<zz>\" is not a token"},
      {R"("pre_tokenizer": {"type": "ByteLevel",)", R"("pre_tokenizer": {"kind": "ByteLevel",)",
       "tok.json: pre_tokenizer.type is missing"},
  };
  for (const auto& c : cases) {
    const Status s = Error(Replace(doc, c.from, c.to));
    EXPECT_TRUE(s.IsDataLoss()) << c.from << " -> " << c.to << ": " << s;
    EXPECT_EQ(s.message(), c.message);
  }
  const Status top = Error("[1, 2]");
  EXPECT_TRUE(top.IsDataLoss()) << top;
  const Status no_model = Error(R"({"added_tokens": []})");
  EXPECT_EQ(no_model.message(), "tok.json: model is missing");
}

TEST(HfTokenizerJsonTest, UnsupportedSettingsAreUnimplementedNamingTheKey) {
  const std::string doc = ByteLevelDoc(kByteLevelPre);
  const struct {
    std::string from, to, message;
  } cases[] = {
      {R"("type": "BPE")", R"("type": "WordPiece")",
       "tok.json: model.type \"WordPiece\" is not supported"},
      {R"("pre_tokenizer": {"type": "ByteLevel")", R"("pre_tokenizer": {"type": "Whitespace")",
       "tok.json: pre_tokenizer.type \"Whitespace\" is not supported"},
      {R"("add_prefix_space": false, "trim)", R"("add_prefix_space": true, "trim)",
       "tok.json: pre_tokenizer.add_prefix_space true is not supported"},
      {R"("dropout": null)", R"("dropout": 0.1)", "tok.json: model.dropout is not supported"},
      {R"("ignore_merges": false)", R"("ignore_merges": true)",
       "tok.json: model.ignore_merges true is not supported"},
      {R"("normalizer": null)", R"("normalizer": {"type": "NFC"})",
       "tok.json: normalizer.type \"NFC\" is not supported"},
      {R"("post_processor": null)", R"("post_processor": {"type": "BertProcessing"})",
       "tok.json: post_processor.type \"BertProcessing\" is not supported"},
      {R"("lstrip": false)", R"("lstrip": true)",
       "tok.json: added_tokens[0].lstrip true is not supported"},
  };
  for (const auto& c : cases) {
    const Status s = Error(Replace(doc, c.from, c.to));
    EXPECT_TRUE(s.IsUnimplemented()) << c.from << " -> " << c.to << ": " << s;
    EXPECT_EQ(s.message(), c.message);
  }
  const Status digits = Error(Replace(ByteLevelDoc(kSmolLmPre), R"("individual_digits": true)",
                                      R"("individual_digits": false)"));
  EXPECT_EQ(digits.message(),
            "tok.json: pre_tokenizer.pretokenizers[0].individual_digits false is not supported");
}

TEST(HfTokenizerJsonTest, LoadReadsTheFileThroughEnv) {
  InMemoryEnv env;
  env.AddFile("m/tokenizer.json", ByteLevelDoc(kByteLevelPre));
  Result<std::unique_ptr<Tokenizer>> tok = LoadHfTokenizerJson(&env, "m/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 16);
  // The generic loader picks this one by the name.
  Result<std::unique_ptr<Tokenizer>> generic = LoadTokenizerFile(&env, "m/tokenizer.json");
  ASSERT_TRUE(generic.ok()) << generic.status();
  EXPECT_EQ((*generic)->vocab_size(), 16);
}

TEST(HfTokenizerJsonTest, LoadOfNonJsonIsDataLoss) {
  InMemoryEnv env;
  env.AddFile("tokenizer.json", "{\"model\": ");
  Result<std::unique_ptr<Tokenizer>> tok = LoadHfTokenizerJson(&env, "tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_TRUE(tok.status().IsDataLoss()) << tok.status();
  EXPECT_EQ(tok.status().message().rfind("tokenizer.json: JSON at byte", 0), 0u) << tok.status();
}

TEST(HfTokenizerJsonTest, LoadOfMissingFileIsNotFound) {
  InMemoryEnv env;
  Result<std::unique_ptr<Tokenizer>> tok = LoadHfTokenizerJson(&env, "none.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_TRUE(tok.status().IsNotFound()) << tok.status();
}

}  // namespace
}  // namespace relayout
