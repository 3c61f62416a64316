#include "engine/text/unicode.h"

#include <gtest/gtest.h>

namespace relayout {
namespace {

TEST(UnicodeTest, DecodesEachLength) {
  EXPECT_EQ(DecodeUtf8("a", 0).code_point, U'a');
  EXPECT_EQ(DecodeUtf8("\xC3\xBC", 0).code_point, U'\u00FC');
  EXPECT_EQ(DecodeUtf8("\xE2\x96\x81", 0).code_point, U'\u2581');
  const Utf8Char emoji = DecodeUtf8("\xF0\x9F\x99\x82", 0);
  EXPECT_EQ(emoji.code_point, U'\U0001F642');
  EXPECT_EQ(emoji.length, 4u);
}

TEST(UnicodeTest, InvalidSequencesDecodeOneByteAtATime) {
  for (std::string_view bad :
       {"\x80", "\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF0\x9F\x99",
        "\xC3"
        "a",
        "\xFF"}) {
    const Utf8Char c = DecodeUtf8(bad, 0);
    EXPECT_EQ(c.code_point, kInvalidCodePoint) << bad.size();
    EXPECT_EQ(c.length, 1u);
  }
  EXPECT_EQ(DecodeUtf8("a", 1).length, 0u);
}

TEST(UnicodeTest, AppendRoundTrips) {
  for (char32_t cp : {U'a', U'\u00FC', U'\u2581', U'\U0001F642', U'\U0010FFFF'}) {
    std::string s;
    AppendUtf8(cp, &s);
    EXPECT_EQ(DecodeUtf8(s, 0).code_point, cp);
    EXPECT_EQ(DecodeUtf8(s, 0).length, s.size());
  }
}

TEST(UnicodeTest, CharacterClasses) {
  EXPECT_TRUE(IsLetter(U'z'));
  EXPECT_TRUE(IsLetter(U'\u00E9'));       // é
  EXPECT_TRUE(IsLetter(U'\u65E5'));       // 日
  EXPECT_TRUE(IsLetter(U'\u02B0'));       // modifier letter (Lm)
  EXPECT_FALSE(IsLetter(U'\u0301'));      // combining accent (Mn)
  EXPECT_FALSE(IsLetter(U'\U0001F642'));  // emoji (So)
  EXPECT_TRUE(IsNumber(U'7'));
  EXPECT_TRUE(IsNumber(U'\u00B2'));  // superscript two (No)
  EXPECT_TRUE(IsNumber(U'\u2163'));  // Roman numeral four (Nl)
  EXPECT_FALSE(IsNumber(U'x'));
  EXPECT_TRUE(IsWhitespace(U'\n'));
  EXPECT_TRUE(IsWhitespace(U'\u3000'));
  EXPECT_TRUE(IsWhitespace(U'\u00A0'));
  EXPECT_FALSE(IsWhitespace(U'\u001C'));  // not White_Space, though Python's isspace says so
  EXPECT_FALSE(IsWhitespace(U'\u200B'));  // zero-width space is Cf
  EXPECT_FALSE(IsLetter(kInvalidCodePoint));
  EXPECT_FALSE(IsNumber(kInvalidCodePoint));
  EXPECT_FALSE(IsWhitespace(kInvalidCodePoint));
}

}  // namespace
}  // namespace relayout
