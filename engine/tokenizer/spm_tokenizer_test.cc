#include "engine/tokenizer/spm_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {
namespace {

const std::string kShared = RELAYOUT_SHARED_DIR;

std::unique_ptr<Tokenizer> LoadOrSkip(const std::string& relative) {
  const std::string path = JoinPath(kShared, relative);
  if (!Env::Default()->FileExists(path)) return nullptr;
  Result<std::unique_ptr<Tokenizer>> tok = LoadTokenizerFile(Env::Default(), path);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

#define LOAD_OR_SKIP(var, relative)                                  \
  std::unique_ptr<Tokenizer> var = LoadOrSkip(relative);             \
  if (var == nullptr) GTEST_SKIP() << relative << " is not present"; \
  static_assert(true)

std::vector<int32_t> EncodeOk(const Tokenizer& tok, std::string_view text, bool add_bos = true) {
  Result<std::vector<int32_t>> ids = tok.Encode(text, {.add_bos = add_bos});
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

struct Case {
  const char* text;
  std::vector<int32_t> ids_with_bos;
};

// Copied from reference/tokenize_llamacpp.json (llama.cpp's tokenizer on the
// same vocabularies); kept inline so the test needs no JSON reader.
const std::vector<Case> kStoriesCases = {
    {"Once upon a time", {1, 403, 407, 261, 378}},
    {"Hello world", {1, 346, 306, 414, 263, 304, 341}},
    {" leading space", {1, 410, 278, 411, 380, 299, 262, 427, 412, 331}},
    {"  two spaces", {1, 410, 410, 259, 424, 414, 262, 427, 412, 331, 419}},
    {"Lily's mom said, \"Let's go!\"",
     {1, 317, 439, 419, 357, 336, 432, 313, 438, 316, 439, 419, 298, 414, 443, 436}},
    {"\xC3\xBC caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82",
     {1,   410, 198, 191, 280, 412, 431, 485, 410, 233,
      154, 168, 233, 159, 175, 410, 243, 162, 156, 133}},
    {"123 4567", {1, 410, 475, 479, 472, 410, 484, 480, 490, 491}},
    {"a\nb", {1, 261, 13, 430}},
    {"", {1}},
    {"The End.", {1, 291, 410, 459, 264, 426}},
};

const std::vector<Case> kAidreamsCases = {
    {"Once upon a time", {1, 429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430}},
    {"Hello world", {1, 429, 480, 375, 438, 437, 272, 284, 438, 441}},
    {" leading space", {1, 429, 429, 285, 336, 264, 420, 435, 295}},
    {"  two spaces", {1, 429, 429, 263, 449, 437, 420, 435, 404}},
    {"Lily's mom said, \"Let's go!\"", {1,   429, 479, 331, 451, 462, 431, 276, 393, 266, 435,
                                        361, 446, 319, 479, 323, 462, 431, 316, 437, 36,  455}},
    {"\xC3\xBC caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82",
     {1,   429, 198, 191, 273, 435, 443, 198, 172, 429, 233,
      154, 168, 233, 159, 175, 429, 243, 162, 156, 133}},
    {"123 4567", {1, 429, 469, 473, 482, 429, 484, 476, 481, 488}},
    {"a\nb", {1, 262, 13, 450}},
    {"", {1}},
    {"The End.", {1, 368, 430, 388, 433, 441, 448}},
};

void ExpectCases(const Tokenizer& tok, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    EXPECT_EQ(EncodeOk(tok, c.text), c.ids_with_bos) << "text: \"" << c.text << "\"";
  }
}

TEST(SpmTokenizerTest, StoriesTok512MatchesLlamaCppIds) {
  LOAD_OR_SKIP(tok, "models/stories260K/tok512.bin");
  ExpectCases(*tok, kStoriesCases);
}

TEST(SpmTokenizerTest, StoriesTokenizerModelMatchesLlamaCppIds) {
  LOAD_OR_SKIP(tok, "models/stories260K/tokenizer.model");
  ExpectCases(*tok, kStoriesCases);
}

TEST(SpmTokenizerTest, AidreamsTok512MatchesLlamaCppIds) {
  LOAD_OR_SKIP(tok, "models/aidreams260K/tok512.bin");
  ExpectCases(*tok, kAidreamsCases);
}

// Splits llama.cpp's vocabulary test inputs, each followed by a line
// "__ggml_vocab_test__"; the .out file has one line of ids (without BOS) each.
std::vector<std::string> SplitVocabTest(const std::string& text) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t pos; (pos = text.find(sep, start)) != std::string::npos; start = pos + sep.size()) {
    parts.push_back(text.substr(start, pos - start));
  }
  return parts;  // the file ends with a separator, so nothing follows the last
}

std::vector<int32_t> ParseIds(const std::string& line) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < line.size()) {
    if (line[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t used = 0;
    ids.push_back(std::stoi(line.substr(pos), &used));
    pos += used;
  }
  return ids;
}

TEST(SpmTokenizerTest, Llama2VocabMatchesLlamaCppVocabTests) {
  LOAD_OR_SKIP(tok, "models/tokenizers/llama2-32k/tokenizer.model");
  const std::string dir = JoinPath(kShared, "models/tokenizers/llama-spm-vocab/");
  Result<std::string> inp =
      Env::Default()->ReadSmallFile(dir + "ggml-vocab-llama-spm.gguf.inp", 1 << 20);
  Result<std::string> out =
      Env::Default()->ReadSmallFile(dir + "ggml-vocab-llama-spm.gguf.out", 1 << 20);
  ASSERT_TRUE(inp.ok()) << inp.status();
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<std::string> inputs = SplitVocabTest(*inp);
  std::vector<std::string> outputs;  // one line of ids per input
  for (size_t start = 0, end; (end = out->find('\n', start)) != std::string::npos;
       start = end + 1) {
    outputs.push_back(out->substr(start, end - start));
  }
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GE(inputs.size(), 30u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& text = inputs[i];
    EXPECT_EQ(EncodeOk(*tok, text, /*add_bos=*/false), ParseIds(outputs[i]))
        << "case " << i << ": \"" << text << "\"";
  }
}

TEST(SpmTokenizerTest, Llama2TokenizerBinAgreesWithTokenizerModel) {
  LOAD_OR_SKIP(model, "models/tokenizers/llama2-32k/tokenizer.model");
  LOAD_OR_SKIP(bin, "models/tokenizers/llama2-32k/tokenizer.bin");
  ASSERT_EQ(model->vocab_size(), 32000);
  ASSERT_EQ(bin->vocab_size(), 32000);
  for (const char* text : {"Hello world", "  many   spaces  ", "\xF0\x9F\xA6\x99.cpp w048",
                           "\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE", "tab\tnewline\n"}) {
    EXPECT_EQ(EncodeOk(*model, text), EncodeOk(*bin, text)) << text;
  }
}

TEST(SpmTokenizerTest, DecodeInvertsEncodeAfterDummyPrefix) {
  LOAD_OR_SKIP(tok, "models/tokenizers/llama2-32k/tokenizer.model");
  for (const char* text : {"Hello world", " leading", "a\n\nb\tc", "\xF0\x9F\x99\x82 ok",
                           "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"}) {
    const std::vector<int32_t> ids = EncodeOk(*tok, text);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], tok->bos_id());
    EXPECT_EQ(tok->Decode(ids), text);
  }
}

TEST(SpmTokenizerTest, BytePiecesDecodeToRawBytes) {
  LOAD_OR_SKIP(tok, "models/stories260K/tok512.bin");
  EXPECT_EQ(tok->DecodePiece(13), "\n");
  EXPECT_EQ(tok->DecodePiece(3 + 0xF0), "\xF0");
  EXPECT_EQ(tok->DecodePiece(403), " Once");
  EXPECT_EQ(tok->DecodePiece(-1), "");
  EXPECT_EQ(tok->DecodePiece(512), "");
  EXPECT_EQ(tok->token_type(1), TokenType::kControl);
  EXPECT_EQ(tok->eos_ids(), std::vector<int32_t>{2});
}

TEST(SpmTokenizerTest, ParseSpecialMatchesControlTokensOnlyWhenAsked) {
  LOAD_OR_SKIP(tok, "models/stories260K/tok512.bin");
  Result<std::vector<int32_t>> plain = tok->Encode("a</s>", {.add_bos = false});
  Result<std::vector<int32_t>> special =
      tok->Encode("a</s>", {.add_bos = false, .parse_special = true});
  ASSERT_TRUE(plain.ok() && special.ok());
  EXPECT_EQ(std::count(plain->begin(), plain->end(), 2), 0);
  ASSERT_GE(special->size(), 2u);
  EXPECT_EQ(special->back(), 2);
  // The text before the special token is encoded as on its own.
  EXPECT_EQ(std::vector<int32_t>(special->begin(), special->end() - 1), EncodeOk(*tok, "a", false));
}

TEST(SpmTokenizerTest, MismatchedScoresAreInvalidArgument) {
  TokenizerSpec spec;
  spec.pieces = {"<unk>", "a"};
  spec.scores = {0};
  spec.source = "test.model";
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(std::move(spec));
  ASSERT_FALSE(tok.ok());
  EXPECT_TRUE(tok.status().IsInvalidArgument());
  EXPECT_NE(tok.status().message().find("test.model: 1 scores for 2 pieces"), std::string::npos)
      << tok.status();
}

TEST(SpmTokenizerTest, UnknownCharacterWithoutBytePiecesIsUnk) {
  TokenizerSpec spec;
  spec.pieces = {"<unk>",
                 "<s>",
                 "</s>",
                 "\xE2\x96\x81",
                 "a",
                 "b",
                 "\xE2\x96\x81"
                 "a"};
  spec.scores = {0, 0, 0, -1, -2, -3, -0.5f};
  spec.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
                TokenType::kNormal,  TokenType::kNormal,  TokenType::kNormal};
  spec.unk_id = 0;
  spec.bos_id = 1;
  spec.eos_ids = {2};
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizer(std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(EncodeOk(**tok,
                     "a\xC3\xBC"
                     "b"),
            (std::vector<int32_t>{1, 6, 0, 5}));
}

double CpuMillis() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

TEST(SpmTokenizerTest, Encodes512TokenPromptInUnderAMillisecond) {
  LOAD_OR_SKIP(tok, "models/tokenizers/llama2-32k/tokenizer.model");
  std::string text;
  while (text.size() < 2400)
    text += "The quick brown fox jumps over the lazy dog, again and again. ";
  std::vector<int32_t> ids = EncodeOk(*tok, text);
  ASSERT_GE(ids.size(), 450u);
  constexpr int kRuns = 50;
  // CPU time, not wall time: test machines are shared and often loaded.
  const double start = CpuMillis();
  for (int i = 0; i < kRuns; ++i) ids = EncodeOk(*tok, text);
  const double ms = (CpuMillis() - start) / kRuns;
  // The optimized build takes about 0.5 ms; ASan and UBSan make it ten
  // times slower and more (5.06 ms was seen on a CI machine).
#if defined(__SANITIZE_ADDRESS__)
  constexpr double kLimitMs = 25.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  constexpr double kLimitMs = 25.0;
#else
  constexpr double kLimitMs = 1.0;
#endif
#else
  constexpr double kLimitMs = 1.0;
#endif
  EXPECT_LT(ms, kLimitMs) << ids.size() << " tokens";
  RecordProperty("encode_ms", std::to_string(ms));
}

}  // namespace
}  // namespace relayout
