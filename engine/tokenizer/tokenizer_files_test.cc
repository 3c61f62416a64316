// Malformed-file handling of the tokenizer loaders (sentencepiece_model.h,
// llama2c_tokenizer_file.h) and the file-type dispatch of LoadTokenizerFile.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "engine/base/env.h"
#include "engine/tokenizer/llama2c_tokenizer_file.h"
#include "engine/tokenizer/sentencepiece_model.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {
namespace {

const std::string kShared = RELAYOUT_SHARED_DIR;

void ExpectDataLoss(const Status& s, const std::string& part) {
  EXPECT_TRUE(s.IsDataLoss()) << s;
  EXPECT_NE(s.message().find(part), std::string::npos) << s;
}

std::string Int32Bytes(int32_t v) {
  std::string b(4, '\0');
  std::memcpy(b.data(), &v, 4);
  return b;
}

std::string Llama2cToken(float score, const std::string& text) {
  std::string b(4, '\0');
  std::memcpy(b.data(), &score, 4);
  return b + Int32Bytes(static_cast<int32_t>(text.size())) + text;
}

std::string TinyLlama2cFile() {
  return Int32Bytes(5) + Llama2cToken(0, "<unk>") + Llama2cToken(0, "\n<s>\n") +
         Llama2cToken(0, "\n</s>\n") + Llama2cToken(0, "<0x41>") + Llama2cToken(-1, " a");
}

TEST(Llama2cTokenizerFileTest, ReadsPiecesScoresAndTypes) {
  Result<TokenizerSpec> spec = ParseLlama2cTokenizer(TinyLlama2cFile(), "tiny.bin");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->pieces, (std::vector<std::string>{"<unk>", "<s>", "</s>", "<0x41>",
                                                    "\xE2\x96\x81"
                                                    "a"}));
  EXPECT_EQ(spec->scores[4], -1.0f);
  EXPECT_EQ(spec->types[1], TokenType::kControl);
  EXPECT_EQ(spec->types[3], TokenType::kByte);
  EXPECT_EQ(spec->types[4], TokenType::kNormal);
  EXPECT_EQ(spec->bos_id, 1);
}

TEST(Llama2cTokenizerFileTest, TruncatedHeaderIsDataLoss) {
  ExpectDataLoss(ParseLlama2cTokenizer(std::string("\x05\x00", 2), "t.bin").status(),
                 "t.bin: file is 2 bytes");
}

TEST(Llama2cTokenizerFileTest, LengthPastEndIsDataLossWithOffset) {
  std::string file = TinyLlama2cFile();
  // Token 4 (" a": score, length, 2 bytes) ends the file.
  const size_t token4 = file.size() - (8 + 2);
  const std::string bad = Int32Bytes(1000);
  file.replace(token4 + 4, 4, bad);
  ExpectDataLoss(
      ParseLlama2cTokenizer(file, "t.bin").status(),
      "token 4 has length 1000 but 2 bytes are left at offset " + std::to_string(token4));
}

TEST(Llama2cTokenizerFileTest, NegativeLengthIsDataLoss) {
  std::string file = Int32Bytes(5) + Llama2cToken(0, "<unk>");
  file.replace(8, 4, Int32Bytes(-3));
  ExpectDataLoss(ParseLlama2cTokenizer(file, "t.bin").status(), "token 0 has length -3");
}

TEST(Llama2cTokenizerFileTest, TruncatedTokenIsDataLoss) {
  std::string file = TinyLlama2cFile();
  file.resize(file.size() - 9);  // cuts into the last token's score/length
  ExpectDataLoss(ParseLlama2cTokenizer(file, "t.bin").status(), "token 4 truncated");
}

TEST(Llama2cTokenizerFileTest, EveryTruncationOfARealFileFailsCleanly) {
  Result<std::string> bytes =
      Env::Default()->ReadSmallFile(JoinPath(kShared, "models/stories260K/tok512.bin"), 1 << 20);
  if (!bytes.ok()) GTEST_SKIP() << bytes.status();
  for (size_t n = 0; n < bytes->size(); n += 7) {
    Result<TokenizerSpec> spec = ParseLlama2cTokenizer(bytes->substr(0, n), "tok512.bin");
    if (!spec.ok()) {
      EXPECT_TRUE(spec.status().IsDataLoss()) << n << ": " << spec.status();
    }
  }
}

// A minimal ModelProto: pieces, then trainer_spec {model_type: BPE}.
std::string Piece(const std::string& text, float score, int type) {
  std::string p = "\x0A" + std::string(1, static_cast<char>(text.size())) + text + "\x15";
  std::string f(4, '\0');
  std::memcpy(f.data(), &score, 4);
  p += f;
  p += "\x18" + std::string(1, static_cast<char>(type));
  return "\x0A" + std::string(1, static_cast<char>(p.size())) + p;
}

std::string TinyModelProto(int model_type = 2) {
  return Piece("<unk>", 0, 2) + Piece("<s>", 0, 3) + Piece("</s>", 0, 3) +
         Piece(
             "\xE2\x96\x81"
             "a",
             -1, 1) +
         "\x12\x02\x18" + std::string(1, static_cast<char>(model_type));
}

TEST(SentencePieceModelTest, ReadsPiecesAndTrainerSpec) {
  Result<TokenizerSpec> spec = ParseSentencePieceModel(TinyModelProto(), "tiny.model");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->pieces.size(), 4u);
  EXPECT_EQ(spec->pieces[3],
            "\xE2\x96\x81"
            "a");
  EXPECT_EQ(spec->scores[3], -1.0f);
  EXPECT_EQ(spec->types[0], TokenType::kUnknown);
  EXPECT_EQ(spec->types[1], TokenType::kControl);
  EXPECT_EQ(spec->unk_id, 0);
  EXPECT_EQ(spec->bos_id, 1);
  EXPECT_EQ(spec->eos_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(spec->add_space_prefix);
}

TEST(SentencePieceModelTest, UnigramModelIsUnimplemented) {
  Status s = ParseSentencePieceModel(TinyModelProto(1), "u.model").status();
  EXPECT_TRUE(s.IsUnimplemented()) << s;
  EXPECT_NE(s.message().find("u.model: model type 1 is not BPE"), std::string::npos) << s;
}

TEST(SentencePieceModelTest, LengthPastEndIsDataLossWithOffset) {
  std::string proto = TinyModelProto();
  proto[1] = '\x7F';  // first piece claims 127 bytes
  ExpectDataLoss(ParseSentencePieceModel(proto, "bad.model").status(),
                 "bad.model: length 127 passes the end of its message");
  ExpectDataLoss(ParseSentencePieceModel(proto, "bad.model").status(), "at offset 1");
}

TEST(SentencePieceModelTest, TruncatedVarintIsDataLoss) {
  ExpectDataLoss(ParseSentencePieceModel("\x0A\x80", "bad.model").status(),
                 "truncated varint at offset 1");
}

TEST(SentencePieceModelTest, GroupWireTypeIsDataLoss) {
  ExpectDataLoss(ParseSentencePieceModel("\x0B", "bad.model").status(),
                 "unsupported wire type 3 of field 1 at offset 0");
}

TEST(SentencePieceModelTest, TokenTypeOutOfRangeIsDataLoss) {
  ExpectDataLoss(ParseSentencePieceModel(Piece("x", 0, 9), "bad.model").status(),
                 "piece 0 has token type 9 outside 1..6");
}

TEST(SentencePieceModelTest, EveryTruncationOfARealFileFailsCleanly) {
  Result<std::string> bytes = Env::Default()->ReadSmallFile(
      JoinPath(kShared, "models/stories260K/tokenizer.model"), 1 << 20);
  if (!bytes.ok()) GTEST_SKIP() << bytes.status();
  for (size_t n = 0; n < bytes->size(); n += 5) {
    Result<TokenizerSpec> spec = ParseSentencePieceModel(bytes->substr(0, n), "tokenizer.model");
    // A cut between two pieces is a valid, shorter message.
    if (!spec.ok()) {
      EXPECT_TRUE(spec.status().IsDataLoss() || spec.status().IsUnimplemented() ||
                  spec.status().IsInvalidArgument())
          << n << ": " << spec.status();
    }
  }
}

TEST(LoadTokenizerFileTest, DispatchesOnContentAndNamesMissingFiles) {
  InMemoryEnv env;
  env.AddFile("m/tok", TinyLlama2cFile());
  env.AddFile("m/sp", TinyModelProto());
  Result<std::unique_ptr<Tokenizer>> a = LoadTokenizerFile(&env, "m/tok");
  Result<std::unique_ptr<Tokenizer>> b = LoadTokenizerFile(&env, "m/sp");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->vocab_size(), 5);
  EXPECT_EQ((*b)->vocab_size(), 4);
  Status missing = LoadTokenizerFile(&env, "m/none.model").status();
  EXPECT_TRUE(missing.IsNotFound()) << missing;
}

}  // namespace
}  // namespace relayout
