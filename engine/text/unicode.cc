#include "engine/text/unicode.h"

#include <algorithm>

#include "engine/text/unicode_tables.h"

namespace relayout {
namespace {

using unicode_internal::CodePointRange;

bool InRanges(const CodePointRange* table, size_t size, char32_t cp) {
  const CodePointRange* end = table + size;
  // The first range whose last >= cp is the only one that can hold cp.
  const CodePointRange* it = std::lower_bound(
      table, end, cp, [](const CodePointRange& r, char32_t c) { return r.last < c; });
  return it != end && it->first <= cp;
}

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

size_t Utf8SequenceLength(unsigned char byte) {
  if (byte < 0x80) return 1;
  if (byte < 0xC2) return 0;  // continuation, or an overlong 2-byte lead
  if (byte < 0xE0) return 2;
  if (byte < 0xF0) return 3;
  if (byte < 0xF5) return 4;
  return 0;
}

Utf8Char DecodeUtf8(std::string_view text, size_t pos) {
  if (pos >= text.size()) return {kInvalidCodePoint, 0};
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t len = Utf8SequenceLength(lead);
  if (len == 1) return {lead, 1};
  if (len == 0 || len > text.size() - pos) return {kInvalidCodePoint, 1};
  char32_t cp = lead & (0x7F >> len);
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + i]);
    if (!IsContinuation(b)) return {kInvalidCodePoint, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  // Reject what the lead byte alone could not: overlong 3/4-byte forms,
  // UTF-16 surrogates and values past the Unicode range.
  static constexpr char32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    return {kInvalidCodePoint, 1};
  }
  return {cp, len};
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsLetter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return InRanges(unicode_internal::kLetterRanges, unicode_internal::kLetterRangesSize, cp);
}

bool IsNumber(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return InRanges(unicode_internal::kNumberRanges, unicode_internal::kNumberRangesSize, cp);
}

bool IsWhitespace(char32_t cp) {
  // The White_Space property is short and stable, so it is listed here rather
  // than generated (Python's str.isspace differs: it includes U+001C..U+001F).
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace relayout
