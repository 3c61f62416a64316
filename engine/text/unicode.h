// UTF-8 decoding and the few Unicode character classes the tokenizers need.
//
// Tokenizer input is untrusted: invalid UTF-8 never fails here, it decodes
// one byte at a time as kInvalidCodePoint so callers can fall back to byte
// tokens and keep every input byte.
//
// Thread safety: pure functions over immutable tables.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace relayout {

// Stands for one byte that does not start a valid UTF-8 sequence. Outside the
// Unicode range, so it is never a letter, number or white space.
inline constexpr char32_t kInvalidCodePoint = 0x110000;

struct Utf8Char {
  char32_t code_point;  // kInvalidCodePoint for an invalid byte
  size_t length;        // bytes consumed, 1..4; 0 only at the end of text
};

// Decodes the character that starts at text[pos]. Overlong forms,
// surrogates, values above U+10FFFF and truncated sequences decode as
// {kInvalidCodePoint, 1}. At pos >= text.size() returns {kInvalidCodePoint, 0}.
Utf8Char DecodeUtf8(std::string_view text, size_t pos);

// Appends the UTF-8 encoding of code_point. REQUIRES: code_point <= 0x10FFFF.
void AppendUtf8(char32_t code_point, std::string* out);

// How many bytes the sequence led by byte announces: 1 for ASCII, 2..4 for a
// lead byte, 0 for a continuation byte or a byte never valid in UTF-8.
size_t Utf8SequenceLength(unsigned char byte);

// The regex classes \p{L} (general category L*), \p{N} (N*) and \s (the
// White_Space property, as Oniguruma and Rust's regex define \s).
bool IsLetter(char32_t code_point);
bool IsNumber(char32_t code_point);
bool IsWhitespace(char32_t code_point);

}  // namespace relayout
