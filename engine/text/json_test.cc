#include "engine/text/json.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace relayout {
namespace {

struct ValidCase {
  std::string_view name;
  std::string text;
};

TEST(JsonTest, ValidDocumentsParse) {
  const ValidCase cases[] = {
      {"null", "null"},
      {"true", "true"},
      {"false", " false "},
      {"zero", "0"},
      {"negative zero", "-0"},
      {"fraction", "-12.5e+3"},
      {"exponent", "1E-2"},
      {"empty string", R"("")"},
      {"empty array", "[]"},
      {"empty object", "{}"},
      {"nested", R"({"a": [1, {"b": null}], "c": {"d": []}})"},
      {"all whitespace kinds", " \t\r\n[ 1 ,\t2 ]\n"},
      {"escapes", R"("\" \\ \/ \b \f \n \r \t \u0041")"},
      {"surrogate pair", R"("\ud83d\ude00")"},
      {"raw utf8", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
      {"escaped nul", R"("a\u0000b")"},
      {"del is not a control", "\"\x7f\""},
      {"huge integer still a number", "123456789012345678901234567890"},
      {"same key at different levels", R"({"a": {"a": 1}})"},
  };
  for (const ValidCase& c : cases) {
    Result<JsonValue> v = ParseJson(c.text);
    EXPECT_TRUE(v.ok()) << c.name << ": " << v.status();
  }
}

struct InvalidCase {
  std::string_view name;
  std::string text;
  std::string_view message;  // the whole expected message
};

TEST(JsonTest, InvalidDocumentsAreInvalidArgumentWithByteOffset) {
  const InvalidCase cases[] = {
      {"empty", "", "JSON at byte 0: unexpected end of input, expected a value"},
      {"only whitespace", "  ", "JSON at byte 2: unexpected end of input, expected a value"},
      {"trailing garbage", "{} x", "JSON at byte 3: unexpected data after the top-level value"},
      {"two values", "1 2", "JSON at byte 2: unexpected data after the top-level value"},
      {"duplicate key", R"({"dtype": 1, "dtype": 2})", "JSON at byte 13: duplicate key \"dtype\""},
      {"duplicate key via escape", R"({"a": 1, "\u0061": 2})",
       "JSON at byte 9: duplicate key \"a\""},
      {"leading zero", "012", "JSON at byte 0: leading zero in a number"},
      {"negative leading zero", "-01", "JSON at byte 1: leading zero in a number"},
      {"NaN", "NaN", "JSON at byte 0: unexpected 'N', expected a value"},
      {"Infinity", "-Infinity", "JSON at byte 1: unexpected 'I', expected a digit"},
      {"plus sign", "+1", "JSON at byte 0: unexpected '+', expected a value"},
      {"bare dot", "1.", "JSON at byte 2: unexpected end of input, expected a digit after '.'"},
      {"leading dot", ".5", "JSON at byte 0: unexpected '.', expected a value"},
      {"empty exponent", "1e",
       "JSON at byte 2: unexpected end of input, expected a digit in the exponent"},
      {"double overflow", "1e400", "JSON at byte 0: number 1e400 is out of the range of a double"},
      {"trailing comma in array", "[1,]", "JSON at byte 3: unexpected ']', expected a value"},
      {"trailing comma in object", R"({"a":1,})",
       "JSON at byte 7: unexpected '}', expected a string key"},
      {"unquoted key", "{a:1}", "JSON at byte 1: unexpected 'a', expected a string key"},
      {"missing colon", R"({"a" 1})", "JSON at byte 5: unexpected '1', expected ':'"},
      {"missing comma", "[1 2]", "JSON at byte 3: unexpected '2', expected ',' or ']'"},
      {"unclosed array", "[1", "JSON at byte 2: unexpected end of input, expected ',' or ']'"},
      {"unclosed object", R"({"a":1)",
       "JSON at byte 6: unexpected end of input, expected ',' or '}'"},
      {"unterminated string", R"("abc)", "JSON at byte 4: unterminated string"},
      {"raw newline in string", "\"a\nb\"",
       "JSON at byte 2: unescaped control character in string"},
      {"raw tab in string", "\"a\tb\"", "JSON at byte 2: unescaped control character in string"},
      {"bad escape", R"("\x")", "JSON at byte 2: unexpected 'x', expected an escape character"},
      {"short unicode escape", R"("\u12")",
       "JSON at byte 5: unexpected '\"', expected a hex digit"},
      {"lone high surrogate", R"("\ud83d")",
       "JSON at byte 1: high surrogate in \\u escape not followed by a low surrogate"},
      {"high surrogate then non-surrogate", R"("\ud83d\u0041")",
       "JSON at byte 1: high surrogate in \\u escape not followed by a low surrogate"},
      {"lone low surrogate", R"("\ude00")", "JSON at byte 1: unpaired low surrogate in \\u escape"},
      {"invalid utf8 byte", "\"\xff\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"truncated utf8", "\"\xc3\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"overlong utf8", "\"\xc0\xaf\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"overlong 3-byte utf8", "\"\xe0\x80\xaf\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"utf8 surrogate", "\"\xed\xa0\x80\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"utf8 above U+10FFFF", "\"\xf4\x90\x80\x80\"", "JSON at byte 1: invalid UTF-8 in string"},
      {"byte order mark", "\xef\xbb\xbf{}",
       "JSON at byte 0: unexpected byte 0xef, expected a value"},
      {"misspelled literal", "tru", "JSON at byte 0: unexpected 't', expected a value"},
      {"single quotes", "'a'", "JSON at byte 0: unexpected ''', expected a value"},
      {"comment", "// x\n1", "JSON at byte 0: unexpected '/', expected a value"},
      {"nul byte after value", std::string("1\0", 2),
       "JSON at byte 1: unexpected data after the top-level value"},
  };
  for (const InvalidCase& c : cases) {
    Result<JsonValue> v = ParseJson(c.text);
    ASSERT_FALSE(v.ok()) << c.name;
    EXPECT_TRUE(v.status().IsInvalidArgument()) << c.name << ": " << v.status();
    EXPECT_EQ(v.status().message(), c.message) << c.name;
  }
}

TEST(JsonTest, IntegersAreExactTo64Bits) {
  Result<JsonValue> v = ParseJson(
      "[9007199254740993, 18446744073709551615, -9223372036854775808,"
      " 18446744073709551616, 1.0, 1e2, -0, -1]");
  ASSERT_TRUE(v.ok()) << v.status();
  const auto& a = v->as_array();
  ASSERT_EQ(a.size(), 8u);
  // 2^53 + 1 would round through a double.
  EXPECT_EQ(a[0].as_int64(), 9007199254740993);
  EXPECT_EQ(a[0].as_uint64(), 9007199254740993u);
  EXPECT_EQ(a[1].as_uint64(), UINT64_MAX);
  EXPECT_FALSE(a[1].as_int64().has_value());
  EXPECT_EQ(a[2].as_int64(), INT64_MIN);
  EXPECT_FALSE(a[2].as_uint64().has_value());
  EXPECT_FALSE(a[3].as_uint64().has_value());  // 2^64: a number, not an integer
  EXPECT_DOUBLE_EQ(a[3].as_double(), 18446744073709551616.0);
  EXPECT_FALSE(a[4].as_int64().has_value());  // a fraction part makes it non-integral
  EXPECT_FALSE(a[5].as_int64().has_value());
  EXPECT_DOUBLE_EQ(a[5].as_double(), 100.0);
  EXPECT_EQ(a[6].as_int64(), 0);
  EXPECT_EQ(a[6].as_uint64(), 0u);
  EXPECT_EQ(a[7].as_int64(), -1);
  EXPECT_FALSE(a[7].as_uint64().has_value());
}

TEST(JsonTest, StringsDecodeEscapesAndSurrogatePairs) {
  Result<JsonValue> v = ParseJson(R"(["\u00e9\u20ac\ud83d\ude00", "a\nb\"", "x\u0000y"])");
  ASSERT_TRUE(v.ok()) << v.status();
  const auto& a = v->as_array();
  EXPECT_EQ(a[0].as_string(), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(a[1].as_string(), "a\nb\"");
  EXPECT_EQ(a[2].as_string(), std::string("x\0y", 3));
}

TEST(JsonTest, ObjectKeepsDocumentOrderAndFindLooksUpMembers) {
  Result<JsonValue> v = ParseJson(R"({"z": 1, "a": "s", "m": [true]})");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->is_object());
  const auto& members = v->as_object();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].first, "z");
  EXPECT_EQ(members[1].first, "a");
  EXPECT_EQ(members[2].first, "m");
  ASSERT_NE(v->Find("a"), nullptr);
  EXPECT_EQ(v->Find("a")->as_string(), "s");
  EXPECT_TRUE(v->Find("m")->as_array()[0].as_bool());
  EXPECT_EQ(v->Find("missing"), nullptr);
  EXPECT_EQ(members[0].second.Find("z"), nullptr);  // not an object
}

TEST(JsonTest, DepthLimitIsEnforced) {
  JsonLimits limits;
  limits.max_depth = 3;
  EXPECT_TRUE(ParseJson("[[[1]]]", limits).ok());
  Result<JsonValue> v = ParseJson("[[[[1]]]]", limits);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "JSON at byte 3: nesting deeper than the limit of 3");
  // The default limit stops a deeply nested document without exhausting the stack.
  Result<JsonValue> deep = ParseJson(std::string(100000, '['));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().message(), "JSON at byte 64: nesting deeper than the limit of 64");
}

TEST(JsonTest, SizeLimitIsEnforced) {
  JsonLimits limits;
  limits.max_bytes = 4;
  EXPECT_TRUE(ParseJson("[12]", limits).ok());
  Result<JsonValue> v = ParseJson("[123]", limits);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "JSON at byte 0: document is 5 bytes, above the limit of 4");
}

TEST(JsonTest, TypeNamesAreLowerCase) {
  EXPECT_EQ(JsonValue::TypeName(JsonValue::Type::kObject), "object");
  EXPECT_EQ(JsonValue::TypeName(JsonValue::Type::kNumber), "number");
  EXPECT_EQ(JsonValue::TypeName(JsonValue::Type::kNull), "null");
}

}  // namespace
}  // namespace relayout
