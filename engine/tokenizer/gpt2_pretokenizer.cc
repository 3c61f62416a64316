#include "engine/tokenizer/gpt2_pretokenizer.h"

#include "engine/text/unicode.h"

namespace relayout {
namespace {

// A decoded character and where it starts in the text.
struct CodePoint {
  char32_t cp;
  size_t offset;
};

bool IsOther(char32_t c) { return !IsWhitespace(c) && !IsLetter(c) && !IsNumber(c); }

// The length, in code points, of a contraction ('s 't 're 've 'm 'll 'd) at
// cps[i], or 0. Case-sensitive, as in GPT-2's regex.
size_t ContractionLength(const std::vector<CodePoint>& cps, size_t i, size_t end) {
  if (cps[i].cp != '\'' || i + 1 >= end) return 0;
  const char32_t a = cps[i + 1].cp;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= end) return 0;
  const char32_t b = cps[i + 2].cp;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Applies the GPT-2 regex to cps[begin, end), a segment treated as a whole
// text (its end is an end of input for the look-ahead).
void ScanGpt2(std::string_view text, const std::vector<CodePoint>& cps, size_t begin, size_t end,
              std::vector<std::string_view>* out) {
  const auto emit = [&](size_t a, size_t b) {
    out->push_back(text.substr(cps[a].offset, cps[b].offset - cps[a].offset));
  };
  size_t i = begin;
  while (i < end) {
    if (const size_t n = ContractionLength(cps, i, end); n > 0) {
      emit(i, i + n);
      i += n;
      continue;
    }
    // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space, then
    // a run of one class.
    const size_t j = cps[i].cp == ' ' ? i + 1 : i;
    if (j < end) {
      bool (*in_class)(char32_t) = nullptr;
      if (IsLetter(cps[j].cp)) {
        in_class = IsLetter;
      } else if (IsNumber(cps[j].cp)) {
        in_class = IsNumber;
      } else if (IsOther(cps[j].cp)) {
        in_class = IsOther;
      }
      if (in_class != nullptr) {
        size_t k = j;
        while (k < end && in_class(cps[k].cp)) ++k;
        emit(i, k);
        i = k;
        continue;
      }
    }
    // cps[i] is white space. "\s+(?!\S)" takes the run but leaves its last
    // character to lead the next word, unless the run ends the text; "\s+"
    // takes a lone white-space character before a non-space.
    size_t k = i;
    while (k < end && IsWhitespace(cps[k].cp)) ++k;
    if (k < end && k - i >= 2) --k;
    emit(i, k);
    i = k;
  }
}

}  // namespace

std::optional<PreTokenizerKind> PreTokenizerKindFromName(std::string_view name) {
  if (name == "gpt2" || name == "default") return PreTokenizerKind::kGpt2;
  if (name == "smollm" || name == "starcoder" || name == "refact" || name == "codeshell" ||
      name == "command-r" || name == "exaone" || name == "minerva") {
    return PreTokenizerKind::kGpt2SplitDigits;
  }
  return std::nullopt;
}

std::vector<std::string_view> PreTokenize(std::string_view text, PreTokenizerKind kind) {
  std::vector<CodePoint> cps;
  cps.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = DecodeUtf8(text, pos);
    cps.push_back({c.code_point, pos});
    pos += c.length;
  }
  const size_t n = cps.size();
  cps.push_back({0, text.size()});  // sentinel: the end offset

  std::vector<std::string_view> out;
  if (kind == PreTokenizerKind::kGpt2) {
    ScanGpt2(text, cps, 0, n, &out);
    return out;
  }
  size_t segment = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!IsNumber(cps[i].cp)) continue;
    ScanGpt2(text, cps, segment, i, &out);
    out.push_back(text.substr(cps[i].offset, cps[i + 1].offset - cps[i].offset));
    segment = i + 1;
  }
  ScanGpt2(text, cps, segment, n, &out);
  return out;
}

}  // namespace relayout
