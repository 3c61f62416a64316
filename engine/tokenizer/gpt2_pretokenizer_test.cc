#include "engine/tokenizer/gpt2_pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace relayout {
namespace {

std::vector<std::string> Split(std::string_view text,
                               PreTokenizerKind kind = PreTokenizerKind::kGpt2) {
  std::vector<std::string> out;
  for (std::string_view piece : PreTokenize(text, kind)) out.emplace_back(piece);
  return out;
}

using V = std::vector<std::string>;

TEST(Gpt2PreTokenizerTest, WordsTakeTheirLeadingSpace) {
  EXPECT_EQ(Split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(Split(" Hello"), (V{" Hello"}));
}

TEST(Gpt2PreTokenizerTest, ContractionsSplitOffCaseSensitively) {
  EXPECT_EQ(Split("I'm they're we've you'll he'd it's don't"),
            (V{"I", "'m", " they", "'re", " we", "'ve", " you", "'ll", " he", "'d", " it", "'s",
               " don", "'t"}));
  // Upper case is not a contraction: the apostrophe is punctuation.
  EXPECT_EQ(Split("IT'S"), (V{"IT", "'", "S"}));
  EXPECT_EQ(Split("'x"), (V{"'", "x"}));
}

TEST(Gpt2PreTokenizerTest, DigitRunsStayTogetherInGpt2) {
  EXPECT_EQ(Split("abc 12345 x9"), (V{"abc", " 12345", " x", "9"}));
}

TEST(Gpt2PreTokenizerTest, SmolLmSplitsEveryDigit) {
  EXPECT_EQ(Split("abc 12345 x9", PreTokenizerKind::kGpt2SplitDigits),
            (V{"abc", " ", "1", "2", "3", "4", "5", " x", "9"}));
  EXPECT_EQ(Split("a  1", PreTokenizerKind::kGpt2SplitDigits), (V{"a", "  ", "1"}));
  // Superscript two and Arabic-Indic digits are \p{N} too.
  EXPECT_EQ(Split("x\xC2\xB2\xD9\xA3", PreTokenizerKind::kGpt2SplitDigits),
            (V{"x", "\xC2\xB2", "\xD9\xA3"}));
}

TEST(Gpt2PreTokenizerTest, WhitespaceRunLeavesLastSpaceToNextWord) {
  EXPECT_EQ(Split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(Split("a \n b"), (V{"a", " \n", " b"}));
  EXPECT_EQ(Split("a\nb"), (V{"a", "\n", "b"}));
  EXPECT_EQ(Split("a\n\nb"), (V{"a", "\n", "\n", "b"}));
  // At the end of the text the whole run is one pre-token.
  EXPECT_EQ(Split("a   "), (V{"a", "   "}));
  EXPECT_EQ(Split("   "), (V{"   "}));
  EXPECT_EQ(Split("\t\tx"), (V{"\t", "\t", "x"}));
}

TEST(Gpt2PreTokenizerTest, PunctuationRunsTakeOneLeadingSpace) {
  EXPECT_EQ(Split("f(x) == {y};"), (V{"f", "(", "x", ")", " ==", " {", "y", "};"}));
  EXPECT_EQ(Split("hi  !!"), (V{"hi", " ", " !!"}));
}

TEST(Gpt2PreTokenizerTest, UnicodeLettersAndEmoji) {
  // Cyrillic and CJK are letters; an emoji is "other".
  EXPECT_EQ(Split("\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE \xE6\x97\xA5\xE6\x9C\xAC"),
            (V{"\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE", " \xE6\x97\xA5\xE6\x9C\xAC"}));
  EXPECT_EQ(Split("ok \xF0\x9F\x99\x82\xF0\x9F\x9A\x80!"),
            (V{"ok", " \xF0\x9F\x99\x82\xF0\x9F\x9A\x80!"}));
  // A combining accent (U+0301, Mn) is not a letter: it ends the letter run.
  EXPECT_EQ(Split("e\xCC\x81t"), (V{"e", "\xCC\x81", "t"}));
  // No-break space (U+00A0) is white space, but only U+0020 joins a word.
  EXPECT_EQ(Split("a\xC2\xA0"
                  "b"),
            (V{"a", "\xC2\xA0", "b"}));
}

TEST(Gpt2PreTokenizerTest, InvalidUtf8IsKeptByteForByte) {
  EXPECT_EQ(Split("a\xFF\xFE b"), (V{"a", "\xFF\xFE", " b"}));
}

TEST(Gpt2PreTokenizerTest, PiecesCoverTheTextExactly) {
  const std::string text = "Mixed: code() { return 42; }\n\n\tindent   end \xF0\x9F\x99\x82 ";
  std::string joined;
  for (const std::string& p : Split(text, PreTokenizerKind::kGpt2SplitDigits)) {
    EXPECT_FALSE(p.empty());
    joined += p;
  }
  EXPECT_EQ(joined, text);
}

TEST(Gpt2PreTokenizerTest, KindsByGgufName) {
  EXPECT_EQ(PreTokenizerKindFromName("smollm"), PreTokenizerKind::kGpt2SplitDigits);
  EXPECT_EQ(PreTokenizerKindFromName("gpt2"), PreTokenizerKind::kGpt2);
  EXPECT_EQ(PreTokenizerKindFromName("llama-bpe"), std::nullopt);
}

}  // namespace
}  // namespace relayout
