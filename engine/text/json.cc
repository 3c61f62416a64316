// A recursive-descent parser for RFC 8259 JSON with the strictness json.h
// promises. Recursion is bounded by JsonLimits::max_depth, so untrusted input
// cannot exhaust the stack.
#include "engine/text/json.h"

#include <charconv>
#include <cstring>
#include <string>
#include <system_error>
#include <unordered_set>

#include "engine/text/unicode.h"

namespace relayout {

class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonLimits& limits) : text_(text), limits_(limits) {}

  Result<JsonValue> ParseDocument() {
    if (text_.size() > limits_.max_bytes) {
      return Error(0, StrCat("document is ", text_.size(), " bytes, above the limit of ",
                             limits_.max_bytes));
    }
    JsonValue value;
    RETURN_IF_ERROR(ParseValue(0, &value));
    SkipWhitespace();
    if (pos_ != text_.size()) return Error(pos_, "unexpected data after the top-level value");
    return value;
  }

 private:
  static Status Error(size_t at, std::string_view what) {
    return Status::InvalidArgument(StrCat("JSON at byte ", at), what);
  }

  // "unexpected character 'x'" for printable ASCII, else the byte in hex.
  Status Unexpected(size_t at, std::string_view expected) const {
    if (at >= text_.size())
      return Error(at, StrCat("unexpected end of input, expected ", expected));
    const unsigned char c = static_cast<unsigned char>(text_[at]);
    static constexpr char kHex[] = "0123456789abcdef";
    const std::string shown = (c >= 0x20 && c < 0x7f)
                                  ? StrCat("'", static_cast<char>(c), "'")
                                  : StrCat("byte 0x", kHex[c >> 4], kHex[c & 15]);
    return Error(at, StrCat("unexpected ", shown, ", expected ", expected));
  }

  void SkipWhitespace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool ConsumeLiteral(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Status ParseValue(int depth, JsonValue* out) {
    SkipWhitespace();
    if (pos_ >= text_.size()) return Unexpected(pos_, "a value");
    const char c = text_[pos_];
    switch (c) {
      case '{':
        return ParseObject(depth + 1, out);
      case '[':
        return ParseArray(depth + 1, out);
      case '"':
        out->type_ = JsonValue::Type::kString;
        return ParseString(&out->string_);
      case 't':
      case 'f':
        if (ConsumeLiteral(c == 't' ? "true" : "false")) {
          out->type_ = JsonValue::Type::kBool;
          out->bool_ = c == 't';
          return Status::OK();
        }
        return Unexpected(pos_, "a value");
      case 'n':
        if (ConsumeLiteral("null")) {
          out->type_ = JsonValue::Type::kNull;
          return Status::OK();
        }
        return Unexpected(pos_, "a value");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
        return Unexpected(pos_, "a value");
    }
  }

  Status CheckDepth(int depth) const {
    if (depth > limits_.max_depth) {
      return Error(pos_, StrCat("nesting deeper than the limit of ", limits_.max_depth));
    }
    return Status::OK();
  }

  Status ParseObject(int depth, JsonValue* out) {
    RETURN_IF_ERROR(CheckDepth(depth));
    ++pos_;  // '{'
    out->type_ = JsonValue::Type::kObject;
    std::unordered_set<std::string> seen;
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return Status::OK();
    }
    while (true) {
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Unexpected(pos_, "a string key");
      const size_t key_at = pos_;
      std::string key;
      RETURN_IF_ERROR(ParseString(&key));
      if (!seen.insert(key).second) return Error(key_at, StrCat("duplicate key \"", key, "\""));
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Unexpected(pos_, "':'");
      ++pos_;
      JsonValue member;
      RETURN_IF_ERROR(ParseValue(depth, &member));
      out->object_.emplace_back(std::move(key), std::move(member));
      SkipWhitespace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return Status::OK();
      }
      return Unexpected(pos_, "',' or '}'");
    }
  }

  Status ParseArray(int depth, JsonValue* out) {
    RETURN_IF_ERROR(CheckDepth(depth));
    ++pos_;  // '['
    out->type_ = JsonValue::Type::kArray;
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return Status::OK();
    }
    while (true) {
      JsonValue element;
      RETURN_IF_ERROR(ParseValue(depth, &element));
      out->array_.push_back(std::move(element));
      SkipWhitespace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return Status::OK();
      }
      return Unexpected(pos_, "',' or ']'");
    }
  }

  bool IsDigit(size_t at) const {
    return at < text_.size() && text_[at] >= '0' && text_[at] <= '9';
  }

  // Grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  Status ParseNumber(JsonValue* out) {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (!IsDigit(pos_)) return Unexpected(pos_, "a digit");
    if (text_[pos_] == '0' && IsDigit(pos_ + 1)) return Error(pos_, "leading zero in a number");
    while (IsDigit(pos_)) ++pos_;
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!IsDigit(pos_)) return Unexpected(pos_, "a digit after '.'");
      while (IsDigit(pos_)) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!IsDigit(pos_)) return Unexpected(pos_, "a digit in the exponent");
      while (IsDigit(pos_)) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    out->type_ = JsonValue::Type::kNumber;
    // from_chars is locale-independent and exact, unlike strtod.
    const auto [ptr, ec] = std::from_chars(first, last, out->number_);
    if (ec != std::errc() || ptr != last) {
      return Error(start, StrCat("number ", std::string_view(first, last - first),
                                 " is out of the range of a double"));
    }
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) out->int64_ = i;
      if (*first == '-') {
        if (out->int64_ == 0) out->uint64_ = 0;  // "-0"
      } else {
        uint64_t u = 0;
        auto ru = std::from_chars(first, last, u);
        if (ru.ec == std::errc() && ru.ptr == last) out->uint64_ = u;
      }
    }
    return Status::OK();
  }

  // Reads 4 hex digits at pos_ into *code.
  Status ParseHex4(uint32_t* code) {
    *code = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (pos_ >= text_.size()) return Unexpected(pos_, "a hex digit");
      const char c = text_[pos_];
      uint32_t v;
      if (c >= '0' && c <= '9') {
        v = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Unexpected(pos_, "a hex digit");
      }
      *code = *code << 4 | v;
    }
    return Status::OK();
  }

  // After a backslash: one escape, appended to *out.
  Status ParseEscape(std::string* out) {
    const size_t at = pos_ - 1;
    if (pos_ >= text_.size()) return Unexpected(pos_, "an escape character");
    const char c = text_[pos_++];
    switch (c) {
      case '"':
        out->push_back('"');
        return Status::OK();
      case '\\':
        out->push_back('\\');
        return Status::OK();
      case '/':
        out->push_back('/');
        return Status::OK();
      case 'b':
        out->push_back('\b');
        return Status::OK();
      case 'f':
        out->push_back('\f');
        return Status::OK();
      case 'n':
        out->push_back('\n');
        return Status::OK();
      case 'r':
        out->push_back('\r');
        return Status::OK();
      case 't':
        out->push_back('\t');
        return Status::OK();
      case 'u':
        break;
      default:
        return Unexpected(pos_ - 1, "an escape character");
    }
    uint32_t cp = 0;
    RETURN_IF_ERROR(ParseHex4(&cp));
    if (cp >= 0xDC00 && cp <= 0xDFFF) return Error(at, "unpaired low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") {
        return Error(at, "high surrogate in \\u escape not followed by a low surrogate");
      }
      pos_ += 2;
      uint32_t low = 0;
      RETURN_IF_ERROR(ParseHex4(&low));
      if (low < 0xDC00 || low > 0xDFFF) {
        return Error(at, "high surrogate in \\u escape not followed by a low surrogate");
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(static_cast<char32_t>(cp), out);
    return Status::OK();
  }

  // Length of the well-formed UTF-8 sequence at `at` (lead byte >= 0x80), or 0.
  // Rejects overlong forms, surrogates and code points above U+10FFFF.
  size_t Utf8SequenceLength(size_t at) const {
    auto byte = [&](size_t i) -> unsigned {
      return at + i < text_.size() ? static_cast<unsigned char>(text_[at + i]) : 0u;
    };
    auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
      const unsigned b = byte(i);
      return b >= lo && b <= hi;
    };
    const unsigned b0 = byte(0);
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
    if (b0 == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
    if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (b0 == 0xF0) return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
    if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
  }

  Status ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return Error(pos_, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return Status::OK();
      }
      if (c == '\\') {
        ++pos_;
        RETURN_IF_ERROR(ParseEscape(out));
        continue;
      }
      if (c < 0x20) return Error(pos_, "unescaped control character in string");
      if (c < 0x80) {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      const size_t n = Utf8SequenceLength(pos_);
      if (n == 0) return Error(pos_, "invalid UTF-8 in string");
      out->append(text_.substr(pos_, n));
      pos_ += n;
    }
  }

  std::string_view text_;
  const JsonLimits& limits_;
  size_t pos_ = 0;
};

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& [name, value] : object_) {
    if (name == key) return &value;
  }
  return nullptr;
}

std::string_view JsonValue::TypeName(Type type) {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "bool";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "object";
  }
  return "unknown";
}

Result<JsonValue> ParseJson(std::string_view text, const JsonLimits& limits) {
  return JsonParser(text, limits).ParseDocument();
}

}  // namespace relayout
