#include "engine/tokenizer/gguf_tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace relayout {
namespace {

GgufValue Strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> e;
  for (const std::string& s : v) e.push_back(GgufValue::String(s));
  return GgufValue::Array(GgufType::kString, std::move(e));
}

GgufValue Floats(const std::vector<double>& v) {
  std::vector<GgufValue> e;
  for (double f : v) e.push_back(GgufValue::Float(GgufType::kFloat32, f));
  return GgufValue::Array(GgufType::kFloat32, std::move(e));
}

GgufValue Ints(const std::vector<int64_t>& v) {
  std::vector<GgufValue> e;
  for (int64_t i : v) e.push_back(GgufValue::Signed(GgufType::kInt32, i));
  return GgufValue::Array(GgufType::kInt32, std::move(e));
}

void Put(GgufMetadata* md, const std::string& key, GgufValue v) {
  ASSERT_TRUE(md->Add(key, std::move(v)).ok()) << key;
}

// A SentencePiece vocabulary: <unk> <s> </s> <0x0A> ▁ a b ▁a ab.
GgufMetadata SpmMetadata() {
  GgufMetadata md;
  Put(&md, "tokenizer.ggml.model", GgufValue::String("llama"));
  Put(&md, "tokenizer.ggml.tokens",
      Strings({"<unk>", "<s>", "</s>", "<0x0A>", "\xE2\x96\x81", "a", "b",
               "\xE2\x96\x81"
               "a",
               "ab"}));
  Put(&md, "tokenizer.ggml.scores", Floats({0, 0, 0, 0, -1, -2, -3, -4, -5}));
  Put(&md, "tokenizer.ggml.token_type", Ints({2, 3, 3, 6, 1, 1, 1, 1, 1}));
  Put(&md, "tokenizer.ggml.bos_token_id", GgufValue::Unsigned(GgufType::kUint32, 1));
  Put(&md, "tokenizer.ggml.eos_token_id", GgufValue::Unsigned(GgufType::kUint32, 2));
  return md;
}

TEST(GgufTokenizerTest, LlamaModelBuildsSentencePieceTokenizer) {
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizerFromGguf(SpmMetadata(), "m.gguf");
  ASSERT_TRUE(tok.ok()) << tok.status();
  Result<std::vector<int32_t>> ids = (*tok)->Encode("ab\na", {});
  ASSERT_TRUE(ids.ok()) << ids.status();
  // "▁ab\na": ▁a (-4) merges before ab (-5), then b, <0x0A>, a.
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 7, 6, 3, 5}));
  EXPECT_EQ((*tok)->eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ((*tok)->unk_id(), 0);
  EXPECT_TRUE((*tok)->add_bos());
}

TEST(GgufTokenizerTest, Gpt2ModelReadsMergesPreAndChatEndMarkers) {
  GgufMetadata md;
  Put(&md, "tokenizer.ggml.model", GgufValue::String("gpt2"));
  Put(&md, "tokenizer.ggml.pre", GgufValue::String("smollm"));
  Put(&md, "tokenizer.ggml.tokens",
      Strings({"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "\xC4\xA0", "ab",
               "\xC4\xA0"
               "a"}));
  Put(&md, "tokenizer.ggml.token_type", Ints({3, 3, 3, 1, 1, 1, 1, 1}));
  Put(&md, "tokenizer.ggml.merges", Strings({"\xC4\xA0 a", "a b"}));
  Put(&md, "tokenizer.ggml.bos_token_id", GgufValue::Unsigned(GgufType::kUint32, 1));
  Put(&md, "tokenizer.ggml.eos_token_id", GgufValue::Unsigned(GgufType::kUint32, 2));
  Put(&md, "tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
  Result<TokenizerSpec> spec = TokenizerSpecFromGguf(md, "smol.gguf");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->pre, "smollm");
  ASSERT_EQ(spec->merges.size(), 2u);
  EXPECT_EQ(spec->merges[0].first, "\xC4\xA0");
  EXPECT_EQ(spec->merges[0].second, "a");
  EXPECT_EQ(spec->eos_ids, (std::vector<int32_t>{2, 0}));
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(*std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();
  Result<std::vector<int32_t>> ids = (*tok)->Encode("<|im_start|>ab a", {.parse_special = true});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 6, 7}));
}

TEST(GgufTokenizerTest, MissingTokensIsNotFound) {
  GgufMetadata md;
  Put(&md, "tokenizer.ggml.model", GgufValue::String("llama"));
  Status s = TokenizerSpecFromGguf(md, "m.gguf").status();
  EXPECT_TRUE(s.IsNotFound()) << s;
  EXPECT_NE(s.message().find("m.gguf: metadata key tokenizer.ggml.tokens is missing"),
            std::string::npos)
      << s;
}

TEST(GgufTokenizerTest, OtherModelIsUnimplemented) {
  GgufMetadata md;
  Put(&md, "tokenizer.ggml.model", GgufValue::String("bert"));
  Status s = TokenizerSpecFromGguf(md, "m.gguf").status();
  EXPECT_TRUE(s.IsUnimplemented()) << s;
  EXPECT_NE(s.message().find("tokenizer model \"bert\""), std::string::npos) << s;
}

TEST(GgufTokenizerTest, CountMismatchAndBadIdsAreInvalidArgument) {
  GgufMetadata md = SpmMetadata();
  GgufMetadata short_scores;
  for (const auto& [key, value] : md.entries()) {
    Put(&short_scores, key, key == "tokenizer.ggml.scores" ? Floats({0, 0}) : value);
  }
  Status s = TokenizerSpecFromGguf(short_scores, "m.gguf").status();
  EXPECT_TRUE(s.IsInvalidArgument()) << s;
  EXPECT_NE(s.message().find("has 2 values for 9 tokens"), std::string::npos) << s;

  Put(&md, "tokenizer.ggml.unknown_token_id", GgufValue::Unsigned(GgufType::kUint32, 99));
  s = TokenizerSpecFromGguf(md, "m.gguf").status();
  EXPECT_TRUE(s.IsInvalidArgument()) << s;
  EXPECT_NE(s.message().find("unknown_token_id = 99 is out of range [0, 9)"), std::string::npos)
      << s;
}

}  // namespace
}  // namespace relayout
