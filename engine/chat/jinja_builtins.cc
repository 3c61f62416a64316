#include "engine/chat/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>
#include <string>

#include "engine/text/unicode.h"

namespace relayout::jinja {
namespace {

Status Error(std::string_view what) { return Status::InvalidArgument(what); }

Status UndefinedError(const Value& v) { return Error(v.undefined_hint()); }

std::string Quoted(const std::string& type_name) { return "'" + type_name + "'"; }

// ---------------------------------------------------------------------------
// Strings (Python's str methods, code point based)
// ---------------------------------------------------------------------------

bool IsPySpace(std::string_view cp) {
  if (cp.size() == 1) {
    const char c = cp[0];
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
  }
  const Utf8Char c = DecodeUtf8(cp, 0);
  return c.code_point != kInvalidCodePoint && IsWhitespace(c.code_point);
}

char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic: what chat text needs (Python maps all of Unicode; the rest of it
// passes through unchanged here).
char32_t UpperCp(char32_t c) {
  if (c < 0x80) return static_cast<char32_t>(AsciiUpper(static_cast<char>(c)));
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 0x20;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
      c != 0x17F) {
    const bool odd_is_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_is_lower ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 0x20;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

char32_t LowerCp(char32_t c) {
  if (c < 0x80) return static_cast<char32_t>(AsciiLower(static_cast<char>(c)));
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
      c != 0x17F) {
    const bool odd_is_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_is_lower ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 0x20;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

std::string MapCase(std::string_view cp, bool upper) {
  if (cp.size() == 1) return std::string(1, upper ? AsciiUpper(cp[0]) : AsciiLower(cp[0]));
  const Utf8Char c = DecodeUtf8(cp, 0);
  if (c.code_point == kInvalidCodePoint) return std::string(cp);
  std::string out;
  AppendUtf8(upper ? UpperCp(c.code_point) : LowerCp(c.code_point), &out);
  return out;
}

bool IsCased(std::string_view cp) {
  if (cp.size() == 1) return (cp[0] >= 'a' && cp[0] <= 'z') || (cp[0] >= 'A' && cp[0] <= 'Z');
  const Utf8Char c = DecodeUtf8(cp, 0);
  return c.code_point != kInvalidCodePoint &&
         (UpperCp(c.code_point) != c.code_point || LowerCp(c.code_point) != c.code_point);
}

std::string Upper(const std::string& s) {
  std::string out;
  for (std::string_view cp : SplitCodePoints(s)) out += MapCase(cp, true);
  return out;
}
std::string Lower(const std::string& s) {
  std::string out;
  for (std::string_view cp : SplitCodePoints(s)) out += MapCase(cp, false);
  return out;
}

// Python's str.title(): a cased letter after an uncased one is upper, else
// lower.
std::string PyTitle(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (std::string_view cp : SplitCodePoints(s)) {
    const bool cased = IsCased(cp);
    out += cased ? MapCase(cp, !prev_cased) : std::string(cp);
    prev_cased = cased;
  }
  return out;
}

std::string Capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (std::string_view cp : SplitCodePoints(s)) {
    out += MapCase(cp, first);
    first = false;
  }
  return out;
}

// jinja2's title filter: each word (after - white space ( { [ <) gets its
// first character upper and the rest lower.
std::string JinjaTitle(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (std::string_view cp : SplitCodePoints(s)) {
    const bool separator = cp.size() == 1 && (cp[0] == '-' || cp[0] == '(' || cp[0] == '{' ||
                                              cp[0] == '[' || cp[0] == '<' || IsPySpace(cp));
    if (separator || (cp.size() > 1 && IsPySpace(cp))) {
      out.append(cp);
      word_start = true;
      continue;
    }
    out += MapCase(cp, word_start);
    word_start = false;
  }
  return out;
}

// str.strip(chars): chars null is white space.
std::string Strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<std::string_view> cps = SplitCodePoints(s);
  std::vector<std::string_view> set;
  const bool whitespace = chars == nullptr || chars->is_none() || chars->is_undefined();
  const std::string chars_text = whitespace ? std::string() : chars->Str();
  if (!whitespace) set = SplitCodePoints(chars_text);
  auto strip = [&](std::string_view cp) {
    if (whitespace) return IsPySpace(cp);
    return std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out.append(cps[i]);
  return out;
}

Result<std::string> Replace(const std::string& s, const std::string& from, const std::string& to,
                            int64_t count, const BuiltinLimits& limits) {
  std::vector<size_t> hits;
  if (from.empty()) {
    // Python inserts `to` around every code point.
    std::vector<std::string_view> cps = SplitCodePoints(s);
    size_t at = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count >= 0 && static_cast<int64_t>(hits.size()) >= count) break;
      hits.push_back(at);
      if (i < cps.size()) at += cps[i].size();
    }
  } else {
    size_t pos = 0;
    while ((count < 0 || static_cast<int64_t>(hits.size()) < count) &&
           (pos = s.find(from, pos)) != std::string::npos) {
      hits.push_back(pos);
      pos += from.size();
    }
  }
  const uint64_t size = s.size() + hits.size() * to.size();
  if (size > limits.max_string_bytes + hits.size() * from.size()) {
    return Error(StrCat("replace: result above ", limits.max_string_bytes, " bytes"));
  }
  std::string out;
  size_t last = 0;
  for (size_t h : hits) {
    out.append(s, last, h - last);
    out += to;
    last = h + from.size();
  }
  out.append(s, std::min(last, s.size()), std::string::npos);
  return out;
}

Result<Value> Split(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep == nullptr || sep->is_none()) {
    // Runs of white space; ends ignored.
    std::vector<std::string_view> cps = SplitCodePoints(s);
    std::vector<std::pair<size_t, size_t>> words;  // code point ranges
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      size_t j = i;
      while (j < cps.size() && !IsPySpace(cps[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    auto text = [&](size_t b, size_t e) {
      std::string out;
      for (size_t k = b; k < e; ++k) out.append(cps[k]);
      return out;
    };
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      if (from_right) {
        const size_t first_kept = words.size() - static_cast<size_t>(maxsplit);
        std::string head = text(words[0].first, words[first_kept - 1].second);
        parts.push_back(head);
        for (size_t k = first_kept; k < words.size(); ++k) {
          parts.push_back(text(words[k].first, words[k].second));
        }
      } else {
        for (int64_t k = 0; k < maxsplit; ++k) {
          parts.push_back(
              text(words[static_cast<size_t>(k)].first, words[static_cast<size_t>(k)].second));
        }
        // The rest keeps its inner white space, trailing white space stripped.
        size_t end = cps.size();
        while (end > 0 && IsPySpace(cps[end - 1])) --end;
        parts.push_back(text(words[static_cast<size_t>(maxsplit)].first, end));
      }
    } else {
      for (const auto& [b, e] : words) parts.push_back(text(b, e));
    }
  } else {
    if (!sep->is_string()) return Error("split: separator must be a string");
    const std::string& d = sep->as_string();
    if (d.empty()) return Error("empty separator");
    std::vector<size_t> hits;
    size_t pos = 0;
    while ((pos = s.find(d, pos)) != std::string::npos) {
      hits.push_back(pos);
      pos += d.size();
    }
    if (maxsplit >= 0 && static_cast<int64_t>(hits.size()) > maxsplit) {
      if (from_right) {
        hits.erase(hits.begin(), hits.end() - maxsplit);
      } else {
        hits.resize(static_cast<size_t>(maxsplit));
      }
    }
    size_t last = 0;
    for (size_t h : hits) {
      parts.push_back(s.substr(last, h - last));
      last = h + d.size();
    }
    parts.push_back(s.substr(last));
  }
  std::vector<Value> items;
  for (std::string& p : parts) items.push_back(Value::String(std::move(p)));
  return Value::List(std::move(items));
}

std::vector<std::string> SplitLines(const std::string& s, bool keepends) {
  std::vector<std::string> lines;
  std::string line;
  std::vector<std::string_view> cps = SplitCodePoints(s);
  for (size_t i = 0; i < cps.size(); ++i) {
    std::string_view cp = cps[i];
    const bool is_break =
        (cp.size() == 1 && (cp[0] == '\n' || cp[0] == '\r' || cp[0] == '\v' || cp[0] == '\f' ||
                            cp[0] == '\x1c' || cp[0] == '\x1d' || cp[0] == '\x1e')) ||
        cp == "\xC2\x85" || cp == "\xE2\x80\xA8" || cp == "\xE2\x80\xA9";
    if (!is_break) {
      line.append(cp);
      continue;
    }
    std::string end(cp);
    if (cp == "\r" && i + 1 < cps.size() && cps[i + 1] == "\n") {
      end += '\n';
      ++i;
    }
    if (keepends) line += end;
    lines.push_back(std::move(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

bool StartsOrEnds(const std::string& s, const Value& affix, bool start) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return start ? s.compare(0, a.size(), a) == 0
                 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) {
    for (const Value& a : affix.as_list()) {
      if (a.is_string() && one(a.as_string())) return true;
    }
    return false;
  }
  return affix.is_string() && one(affix.as_string());
}

// '{} and {name}'.format(...): automatic and numbered fields and names,
// no conversions or format specs.
Result<std::string> Format(const std::string& s, const CallArgs& args) {
  std::string out;
  size_t next_auto = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '{' && i + 1 < s.size() && s[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < s.size() && s[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c == '}') return Error("format: single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    const size_t close = s.find('}', i);
    if (close == std::string::npos) return Error("format: single '{' encountered in format string");
    const std::string field = s.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      return Error("format: only plain {} fields are supported");
    }
    const Value* v = nullptr;
    if (field.empty()) {
      v = next_auto < args.positional.size() ? &args.positional[next_auto] : nullptr;
      ++next_auto;
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      const size_t index = std::stoul(field);
      v = index < args.positional.size() ? &args.positional[index] : nullptr;
    } else {
      for (const auto& [k, value] : args.keyword) {
        if (k == field) v = &value;
      }
    }
    if (v == nullptr) return Error(StrCat("format: no argument for field {", field, "}"));
    out += v->Str();
    i = close;
  }
  return out;
}

int64_t CodePointCount(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// ---------------------------------------------------------------------------
// Python number parsing for the int and float filters
// ---------------------------------------------------------------------------

std::string CleanNumber(const std::string& s) {
  std::string t = Strip(s, nullptr, true, true);
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_' && i > 0 && i + 1 < t.size() &&
        std::isdigit(static_cast<unsigned char>(t[i - 1])) &&
        std::isdigit(static_cast<unsigned char>(t[i + 1]))) {
      continue;
    }
    out += t[i];
  }
  return out;
}

std::optional<int64_t> ParseInt(const std::string& s, int base) {
  const std::string t = CleanNumber(s);
  if (t.empty() || t.find('_') != std::string::npos) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(t.c_str(), &end, base);
  if (errno != 0 || end != t.c_str() + t.size()) return std::nullopt;
  if (t.find_first_of(" \t\n") != std::string::npos) return std::nullopt;
  return v;
}

std::optional<double> ParseFloat(const std::string& s) {
  const std::string t = CleanNumber(s);
  if (t.empty() || t.find('_') != std::string::npos) return std::nullopt;
  const std::string lower = Lower(t);
  const std::string bare = lower[0] == '+' || lower[0] == '-' ? lower.substr(1) : lower;
  const double sign = lower[0] == '-' ? -1 : 1;
  if (bare == "inf" || bare == "infinity") return sign * std::numeric_limits<double>::infinity();
  if (bare == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (bare.find_first_not_of("0123456789.e+-") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------

const Value* Arg(const CallArgs& args, size_t index, std::string_view name) {
  const Value* v = args.Get(index, name);
  return v != nullptr && !v->is_undefined() ? v : nullptr;
}

Result<int64_t> IntArg(const CallArgs& args, size_t index, std::string_view name,
                       int64_t fallback) {
  const Value* v = Arg(args, index, name);
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) {
    return Error(StrCat("argument '", name, "' must be an integer, not ", Quoted(v->TypeName())));
  }
  return v->as_int();
}

Result<std::string> StrArg(const CallArgs& args, size_t index, std::string_view name) {
  const Value* v = Arg(args, index, name);
  if (v == nullptr) return Error(StrCat("missing argument '", name, "'"));
  if (!v->is_string()) {
    return Error(StrCat("argument '", name, "' must be a string, not ", Quoted(v->TypeName())));
  }
  return v->as_string();
}

Result<Value> CallStringMethod(const std::string& s, std::string_view name, const CallArgs& args,
                               const BuiltinLimits& limits) {
  if (name == "strip") return Value::String(Strip(s, Arg(args, 0, "chars"), true, true));
  if (name == "lstrip") return Value::String(Strip(s, Arg(args, 0, "chars"), true, false));
  if (name == "rstrip") return Value::String(Strip(s, Arg(args, 0, "chars"), false, true));
  if (name == "upper") return Value::String(Upper(s));
  if (name == "lower") return Value::String(Lower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(Capitalize(s));
  if (name == "split" || name == "rsplit") {
    ASSIGN_OR_RETURN(int64_t maxsplit, IntArg(args, 1, "maxsplit", -1));
    return Split(s, Arg(args, 0, "sep"), maxsplit, name == "rsplit");
  }
  if (name == "splitlines") {
    const Value* keep = Arg(args, 0, "keepends");
    std::vector<Value> items;
    for (std::string& line : SplitLines(s, keep != nullptr && keep->Truthy())) {
      items.push_back(Value::String(std::move(line)));
    }
    return Value::List(std::move(items));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* affix = Arg(args, 0, "prefix");
    if (affix == nullptr) return Error(StrCat(name, "() takes at least 1 argument"));
    if (!affix->is_string() && !affix->is_list()) {
      return Error(StrCat(name, " first arg must be str or a tuple of str, not ",
                          Quoted(affix->TypeName())));
    }
    return Value::Bool(StartsOrEnds(s, *affix, name == "startswith"));
  }
  if (name == "replace") {
    ASSIGN_OR_RETURN(std::string from, StrArg(args, 0, "old"));
    ASSIGN_OR_RETURN(std::string to, StrArg(args, 1, "new"));
    ASSIGN_OR_RETURN(int64_t count, IntArg(args, 2, "count", -1));
    ASSIGN_OR_RETURN(std::string out, Replace(s, from, to, count, limits));
    return Value::String(std::move(out));
  }
  if (name == "find" || name == "count") {
    ASSIGN_OR_RETURN(std::string needle, StrArg(args, 0, "sub"));
    if (name == "find") {
      const size_t at = s.find(needle);
      return Value::Int(at == std::string::npos ? -1 : CodePointCount(s.substr(0, at)));
    }
    if (needle.empty()) return Value::Int(CodePointCount(s) + 1);
    int64_t n = 0;
    for (size_t pos = s.find(needle); pos != std::string::npos;
         pos = s.find(needle, pos + needle.size())) {
      ++n;
    }
    return Value::Int(n);
  }
  if (name == "join") {
    const Value* items = Arg(args, 0, "iterable");
    if (items == nullptr) return Error("join() takes exactly one argument");
    CallArgs join_args;
    join_args.positional.push_back(Value::String(s));
    return ApplyFilter("join", *items, join_args, limits);
  }
  if (name == "format") {
    ASSIGN_OR_RETURN(std::string out, Format(s, args));
    if (out.size() > limits.max_string_bytes) return Error("format: result too large");
    return Value::String(std::move(out));
  }
  auto all = [&](auto pred) {
    if (s.empty()) return Value::Bool(false);
    for (char c : s) {
      if (!pred(static_cast<unsigned char>(c))) return Value::Bool(false);
    }
    return Value::Bool(true);
  };
  if (name == "isdigit") return all([](unsigned char c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return all([](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return all([](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace") return all([](unsigned char c) { return std::isspace(c) != 0; });
  if (name == "islower") return Value::Bool(Lower(s) == s && Upper(s) != s);
  if (name == "isupper") return Value::Bool(Upper(s) == s && Lower(s) != s);
  return Error(StrCat("'str object' has no attribute '", name, "'"));
}

constexpr std::string_view kStringMethods[] = {
    "strip",  "lstrip",     "rstrip",     "upper",    "lower",   "title",   "capitalize", "split",
    "rsplit", "splitlines", "startswith", "endswith", "replace", "find",    "count",      "join",
    "format", "isdigit",    "isalpha",    "isalnum",  "isspace", "islower", "isupper"};
constexpr std::string_view kDictMethods[] = {"items", "keys", "values", "get"};
constexpr std::string_view kListMethods[] = {"index", "count"};
// Methods that would change the object: refused, as the immutable sandbox
// refuses them.
constexpr std::string_view kMutatingMethods[] = {"append",  "extend", "insert",  "pop",
                                                 "remove",  "clear",  "update",  "setdefault",
                                                 "popitem", "sort",   "reverse", "add"};

template <size_t N>
bool Contains(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Result<Value> CallMethod(const Value& self, const std::string& name, const CallArgs& args,
                         const BuiltinLimits& limits) {
  if (self.is_string()) return CallStringMethod(self.as_string(), name, args, limits);
  if (self.is_dict()) {
    const ValueDict& d = self.as_dict();
    if (name == "get") {
      const Value* key = args.Get(0, "key");
      if (key == nullptr) return Error("get expected at least 1 argument, got 0");
      const Value* found = d.Find(*key);
      if (found != nullptr) return *found;
      const Value* fallback = args.Get(1, "default");
      return fallback != nullptr ? *fallback : Value::None();
    }
    std::vector<Value> items;
    for (const auto& [k, v] : d.items) {
      if (name == "keys") {
        items.push_back(k);
      } else if (name == "values") {
        items.push_back(v);
      } else {
        items.push_back(Value::List({k, v}, /*is_tuple=*/true));
      }
    }
    return Value::List(std::move(items));
  }
  if (self.is_list()) {
    const Value* x = args.Get(0, "value");
    if (x == nullptr) return Error(StrCat(name, "() takes exactly one argument"));
    int64_t count = 0;
    const auto& items = self.as_list();
    for (size_t i = 0; i < items.size(); ++i) {
      if (!Equal(items[i], *x)) continue;
      if (name == "index") return Value::Int(static_cast<int64_t>(i));
      ++count;
    }
    if (name == "index") return Error(StrCat(x->Repr(), " is not in list"));
    return Value::Int(count);
  }
  return Error(StrCat("'", self.TypeName(), "' has no attribute '", name, "'"));
}

Value BoundMethod(const Value& self, std::string_view name, const BuiltinLimits& limits) {
  std::string method(name);
  return Value::Function(method, [self, method, limits](const CallArgs& args) {
    return CallMethod(self, method, args, limits);
  });
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

// Item access as jinja2's attribute filters do it: "a.b.0", each part
// item-first.
Result<Value> GetPath(const Value& item, const std::string& path, const BuiltinLimits& limits) {
  Value v = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::String(part);
    if (!part.empty() && part.find_first_not_of("0123456789") == std::string::npos) {
      key = Value::Int(std::stoll(part));
    }
    ASSIGN_OR_RETURN(v, GetItem(v, key, limits));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

CallArgs TailArgs(const CallArgs& args, size_t from) {
  CallArgs out;
  for (size_t i = from; i < args.positional.size(); ++i)
    out.positional.push_back(args.positional[i]);
  out.keyword = args.keyword;
  return out;
}

Result<Value> SelectOrReject(const Value& input, const CallArgs& args, bool by_attribute,
                             bool select, const BuiltinLimits& limits) {
  // jinja2 iterates only a true sequence: none and undefined select nothing.
  if (input.is_none() || input.is_undefined()) return Value::List({});
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
  std::string attribute;
  size_t next = 0;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Error("selectattr/rejectattr: missing attribute name");
    }
    attribute = args.positional[0].as_string();
    next = 1;
  }
  std::string test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) return Error("select: the test name must be a string");
    test = args.positional[next].as_string();
    if (!IsTest(test)) return Error(StrCat("No test named '", test, "'"));
  }
  CallArgs test_args;
  for (size_t i = next + 1; i < args.positional.size(); ++i) {
    test_args.positional.push_back(args.positional[i]);
  }
  std::vector<Value> out;
  for (const Value& item : items) {
    Value v = item;
    if (by_attribute) {
      ASSIGN_OR_RETURN(v, GetPath(item, attribute, limits));
    }
    bool pass = false;
    if (test.empty()) {
      pass = v.Truthy();
    } else {
      ASSIGN_OR_RETURN(pass, ApplyTest(test, v, test_args, limits));
    }
    if (pass == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}

// Sort keys: case-insensitive strings unless asked.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::String(Lower(v.as_string()));
  return v;
}

// The values of (sort key, value) pairs, stably sorted by key as Python's
// sorted() does; the first comparison that fails (mixed types) is the error.
Result<Value> SortByKey(std::vector<std::pair<Value, Value>> keyed, bool reverse) {
  Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    Result<int> c = reverse ? Compare(b.first, a.first) : Compare(a.first, b.first);
    if (!c.ok()) {
      if (error.ok()) error = c.status();
      return false;
    }
    return *c < 0;
  });
  RETURN_IF_ERROR(error);
  std::vector<Value> out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return Value::List(std::move(out));
}

Result<Value> Sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                     const Value* attribute, const BuiltinLimits& limits) {
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : items) {
    Value key = item;
    if (attribute != nullptr && !attribute->is_none()) {
      ASSIGN_OR_RETURN(key, GetPath(item, attribute->Str(), limits));
    }
    keyed.emplace_back(SortKey(key, case_sensitive), std::move(item));
  }
  return SortByKey(std::move(keyed), reverse);
}

Result<std::string> Join(const std::vector<Value>& items, const std::string& sep,
                         const BuiltinLimits& limits) {
  uint64_t size = items.empty() ? 0 : sep.size() * (items.size() - 1);
  std::vector<std::string> parts;
  for (const Value& item : items) {
    parts.push_back(item.Str());
    size += parts.back().size();
    if (size > limits.max_string_bytes) return Error("join: result too large");
  }
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

using FilterFn = Result<Value> (*)(const Value&, const CallArgs&, const BuiltinLimits&);

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"trim",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       return Value::String(Strip(in.Str(), Arg(a, 0, "chars"), true, true));
     }},
    {"tojson",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       JsonDumpOptions o;
       if (const Value* v = Arg(a, 0, "ensure_ascii")) o.ensure_ascii = v->Truthy();
       if (const Value* v = Arg(a, 1, "indent"); v != nullptr && !v->is_none()) {
         if (!v->is_int()) return Error("tojson: indent must be an integer");
         o.indent = static_cast<int>(std::clamp<int64_t>(v->as_int(), 0, 64));
       }
       if (const Value* v = Arg(a, 2, "separators"); v != nullptr && !v->is_none()) {
         if (!v->is_list() || v->as_list().size() != 2) {
           return Error("tojson: separators must be a pair of strings");
         }
         o.separators = std::make_pair(v->as_list()[0].Str(), v->as_list()[1].Str());
       }
       if (const Value* v = Arg(a, 3, "sort_keys")) o.sort_keys = v->Truthy();
       ASSIGN_OR_RETURN(std::string json, ToJson(in, o));
       if (json.size() > limits.max_string_bytes) return Error("tojson: result too large");
       return Value::String(std::move(json));
     }},
    {"length",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       if (in.is_string()) return Value::Int(CodePointCount(in.as_string()));
       if (in.is_list()) return Value::Int(static_cast<int64_t>(in.as_list().size()));
       if (in.is_dict()) return Value::Int(static_cast<int64_t>(in.as_dict().items.size()));
       if (in.is_undefined()) return Value::Int(0);
       return Error(StrCat("object of type ", Quoted(in.TypeName()), " has no len()"));
     }},
    {"lower",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(Lower(in.Str()));
     }},
    {"upper",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(Upper(in.Str()));
     }},
    {"title",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(JinjaTitle(in.Str()));
     }},
    {"capitalize",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(Capitalize(in.Str()));
     }},
    {"replace",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       const Value* from = Arg(a, 0, "old");
       const Value* to = Arg(a, 1, "new");
       if (from == nullptr || to == nullptr) return Error("replace: needs old and new");
       ASSIGN_OR_RETURN(int64_t count, IntArg(a, 2, "count", -1));
       ASSIGN_OR_RETURN(std::string out, Replace(in.Str(), from->Str(), to->Str(), count, limits));
       return Value::String(std::move(out));
     }},
    {"default",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       const Value* fallback = a.Get(0, "default_value");
       const Value* boolean = a.Get(1, "boolean");
       if (in.is_undefined() || (boolean != nullptr && boolean->Truthy() && !in.Truthy())) {
         return fallback != nullptr ? *fallback : Value::String("");
       }
       return in;
     }},
    {"first",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
       return items.front();
     }},
    {"last",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       if (in.is_undefined()) return UndefinedError(in);
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
       return items.back();
     }},
    {"join",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       const Value* sep = Arg(a, 0, "d");
       if (const Value* attribute = Arg(a, 1, "attribute");
           attribute != nullptr && !attribute->is_none()) {
         for (Value& item : items) {
           ASSIGN_OR_RETURN(item, GetPath(item, attribute->Str(), limits));
         }
       }
       ASSIGN_OR_RETURN(std::string out, Join(items, sep != nullptr ? sep->Str() : "", limits));
       return Value::String(std::move(out));
     }},
    {"list",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       return Value::List(std::move(items));
     }},
    {"string",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(in.Str());
     }},
    {"int",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       if (in.is_undefined()) return UndefinedError(in);
       const Value* fallback = a.Get(0, "default");
       ASSIGN_OR_RETURN(int64_t base, IntArg(a, 1, "base", 10));
       const Value def = fallback != nullptr ? *fallback : Value::Int(0);
       if (in.is_int() || in.is_bool()) return Value::Int(in.as_int());
       if (in.is_float()) {
         const double d = in.as_double();
         if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return def;
         return Value::Int(static_cast<int64_t>(d));
       }
       if (in.is_string()) {
         if (std::optional<int64_t> v = ParseInt(in.as_string(), static_cast<int>(base)))
           return Value::Int(*v);
         if (std::optional<double> d = ParseFloat(in.as_string());
             d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) {
           return Value::Int(static_cast<int64_t>(*d));
         }
       }
       return def;
     }},
    {"float",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       if (in.is_undefined()) return UndefinedError(in);
       const Value* fallback = a.Get(0, "default");
       const Value def = fallback != nullptr ? *fallback : Value::Float(0);
       if (in.is_number()) return Value::Float(in.as_double());
       if (in.is_string()) {
         if (std::optional<double> d = ParseFloat(in.as_string())) return Value::Float(*d);
       }
       return def;
     }},
    {"safe",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> { return in; }},
    {"items",
     [](const Value& in, const CallArgs&, const BuiltinLimits& limits) -> Result<Value> {
       if (in.is_undefined()) return Value::List({});
       if (!in.is_dict()) return Error("Can only get item pairs from a mapping.");
       return CallMethod(in, "items", {}, limits);
     }},
    {"selectattr",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       return SelectOrReject(in, a, true, true, limits);
     }},
    {"rejectattr",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       return SelectOrReject(in, a, true, false, limits);
     }},
    {"select",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       return SelectOrReject(in, a, false, true, limits);
     }},
    {"reject",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       return SelectOrReject(in, a, false, false, limits);
     }},
    {"map",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       std::vector<Value> out;
       if (const Value* attribute = Arg(a, 99, "attribute")) {
         const Value* fallback = Arg(a, 99, "default");
         for (const Value& item : items) {
           ASSIGN_OR_RETURN(Value v, GetPath(item, attribute->Str(), limits));
           if (v.is_undefined() && fallback != nullptr) v = *fallback;
           out.push_back(std::move(v));
         }
         return Value::List(std::move(out));
       }
       if (a.positional.empty() || !a.positional[0].is_string()) {
         return Error("map: give a filter name or attribute=");
       }
       const std::string filter = a.positional[0].as_string();
       if (!IsFilter(filter)) return Error(StrCat("No filter named '", filter, "'"));
       CallArgs rest = TailArgs(a, 1);
       for (const Value& item : items) {
         ASSIGN_OR_RETURN(Value v, ApplyFilter(filter, item, rest, limits));
         out.push_back(std::move(v));
       }
       return Value::List(std::move(out));
     }},
    {"reverse",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       if (in.is_string()) {
         std::vector<std::string_view> cps = SplitCodePoints(in.as_string());
         std::string out;
         for (auto it = cps.rbegin(); it != cps.rend(); ++it) out.append(*it);
         return Value::String(std::move(out));
       }
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       std::reverse(items.begin(), items.end());
       return Value::List(std::move(items));
     }},
    {"sort",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       const Value* reverse = Arg(a, 0, "reverse");
       const Value* case_sensitive = Arg(a, 1, "case_sensitive");
       return Sorted(std::move(items), reverse != nullptr && reverse->Truthy(),
                     case_sensitive != nullptr && case_sensitive->Truthy(), Arg(a, 2, "attribute"),
                     limits);
     }},
    {"dictsort",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       if (!in.is_dict()) return Error("dictsort: the value is not a mapping");
       const Value* case_sensitive = Arg(a, 0, "case_sensitive");
       const Value* by = Arg(a, 1, "by");
       const Value* reverse = Arg(a, 2, "reverse");
       size_t pos = 0;
       if (by != nullptr && by->Str() == "value") {
         pos = 1;
       } else if (by != nullptr && by->Str() != "key") {
         return Error("You can only sort by either 'key' or 'value'");
       }
       const bool exact = case_sensitive != nullptr && case_sensitive->Truthy();
       std::vector<std::pair<Value, Value>> keyed;  // (sort key, (key, value))
       for (const auto& [k, v] : in.as_dict().items) {
         keyed.emplace_back(SortKey(pos == 0 ? k : v, exact), Value::List({k, v}, true));
       }
       return SortByKey(std::move(keyed), reverse != nullptr && reverse->Truthy());
     }},
    {"unique",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       const Value* case_sensitive = Arg(a, 0, "case_sensitive");
       const Value* attribute = Arg(a, 1, "attribute");
       std::vector<Value> seen, out;
       for (const Value& item : items) {
         Value key = item;
         if (attribute != nullptr) {
           ASSIGN_OR_RETURN(key, GetPath(item, attribute->Str(), limits));
         }
         key = SortKey(key, case_sensitive != nullptr && case_sensitive->Truthy());
         bool dup = false;
         for (const Value& s : seen) dup = dup || Equal(s, key);
         if (dup) continue;
         seen.push_back(key);
         out.push_back(item);
       }
       return Value::List(std::move(out));
     }},
    {"abs",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       if (in.is_float()) return Value::Float(std::fabs(in.as_double()));
       if (in.is_int() || in.is_bool())
         return Value::Int(in.as_int() < 0 ? -in.as_int() : in.as_int());
       return Error(StrCat("bad operand type for abs(): ", Quoted(in.TypeName())));
     }},
    {"round",
     [](const Value& in, const CallArgs& a, const BuiltinLimits&) -> Result<Value> {
       if (!in.is_number())
         return Error(StrCat("round: ", Quoted(in.TypeName()), " is not a number"));
       ASSIGN_OR_RETURN(int64_t precision, IntArg(a, 0, "precision", 0));
       const Value* method = Arg(a, 1, "method");
       const std::string how = method != nullptr ? method->Str() : "common";
       const double scale = std::pow(10.0, static_cast<double>(precision));
       double v = in.as_double() * scale;
       if (how == "common") {
         v = std::nearbyint(v);  // Python's round: half to even
       } else if (how == "ceil") {
         v = std::ceil(v);
       } else if (how == "floor") {
         v = std::floor(v);
       } else {
         return Error("round: method must be common, ceil or floor");
       }
       return Value::Float(v / scale);
     }},
    {"max",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
       const Value* cs = Arg(a, 0, "case_sensitive");
       ASSIGN_OR_RETURN(Value sorted, Sorted(std::move(items), true, cs != nullptr && cs->Truthy(),
                                             Arg(a, 1, "attribute"), limits));
       return sorted.as_list().front();
     }},
    {"min",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
       const Value* cs = Arg(a, 0, "case_sensitive");
       ASSIGN_OR_RETURN(Value sorted, Sorted(std::move(items), false, cs != nullptr && cs->Truthy(),
                                             Arg(a, 1, "attribute"), limits));
       return sorted.as_list().front();
     }},
    {"sum",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
       const Value* attribute = Arg(a, 0, "attribute");
       const Value* start = Arg(a, 1, "start");
       Value total = start != nullptr ? *start : Value::Int(0);
       for (const Value& item : items) {
         Value v = item;
         if (attribute != nullptr) {
           ASSIGN_OR_RETURN(v, GetPath(item, attribute->Str(), limits));
         }
         ASSIGN_OR_RETURN(total, BinaryOp("+", total, v, limits));
       }
       return total;
     }},
    {"indent",
     [](const Value& in, const CallArgs& a, const BuiltinLimits& limits) -> Result<Value> {
       const Value* width = Arg(a, 0, "width");
       std::string indention(4, ' ');
       if (width != nullptr && width->is_string()) {
         indention = width->as_string();
       } else if (width != nullptr && width->is_int()) {
         indention.assign(static_cast<size_t>(std::clamp<int64_t>(width->as_int(), 0, 256)), ' ');
       }
       const Value* first = Arg(a, 1, "first");
       const Value* blank = Arg(a, 2, "blank");
       std::vector<std::string> lines = SplitLines(in.Str() + "\n", false);
       if (lines.size() * indention.size() + in.Str().size() > limits.max_string_bytes) {
         return Error("indent: result too large");
       }
       std::string out;
       for (size_t i = 0; i < lines.size(); ++i) {
         if (i > 0) {
           out += '\n';
           if (!lines[i].empty() || (blank != nullptr && blank->Truthy())) out += indention;
         }
         out += lines[i];
       }
       if (first != nullptr && first->Truthy()) out = indention + out;
       return Value::String(std::move(out));
     }},
    {"wordcount",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       // Runs of \\w (letters, digits, underscore), as jinja2's regex counts.
       int64_t words = 0;
       bool in_word = false;
       const std::string text = in.Str();
       for (std::string_view cp : SplitCodePoints(text)) {
         const Utf8Char c = DecodeUtf8(cp, 0);
         const bool word =
             c.code_point != kInvalidCodePoint &&
             (c.code_point == '_' || IsLetter(c.code_point) || IsNumber(c.code_point));
         words += word && !in_word;
         in_word = word;
       }
       return Value::Int(words);
     }},
    {"escape",
     [](const Value& in, const CallArgs&, const BuiltinLimits&) -> Result<Value> {
       return Value::String(HtmlEscape(in.Str()));
     }},
};

constexpr std::pair<std::string_view, std::string_view> kFilterAliases[] = {
    {"d", "default"}, {"count", "length"}, {"e", "escape"}};

const FilterEntry* FindFilter(std::string_view name) {
  for (const auto& [alias, target] : kFilterAliases) {
    if (alias == name) name = target;
  }
  for (const FilterEntry& f : kFilters) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

Result<bool> OneArgCompare(const Value& in, const CallArgs& a, std::string_view op,
                           const BuiltinLimits& limits) {
  const Value* other = a.Get(0, "other");
  if (other == nullptr) return Error(StrCat("test needs an argument"));
  ASSIGN_OR_RETURN(Value r, BinaryOp(op, in, *other, limits));
  return r.Truthy();
}

bool IsSameAs(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kList:
      return &a.as_list() == &b.as_list();
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return &a.as_dict() == &b.as_dict();
    case Value::Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    default:
      return Equal(a, b);
  }
}

}  // namespace

bool IsFilter(std::string_view name) { return FindFilter(name) != nullptr; }

constexpr std::string_view kTests[] = {
    "defined",  "undefined",   "none",        "string",   "mapping", "iterable", "number",
    "sequence", "true",        "false",       "boolean",  "integer", "float",    "callable",
    "odd",      "even",        "divisibleby", "equalto",  "eq",      "==",       "ne",
    "!=",       "lt",          "<",           "lessthan", "le",      "<=",       "gt",
    ">",        "greaterthan", "ge",          ">=",       "in",      "sameas",   "lower",
    "upper",    "filter",      "test",        "escaped"};

bool IsTest(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

Result<Value> ApplyFilter(std::string_view name, const Value& input, const CallArgs& args,
                          const BuiltinLimits& limits) {
  const FilterEntry* f = FindFilter(name);
  if (f == nullptr) return Error(StrCat("No filter named '", name, "'"));
  return f->fn(input, args, limits);
}

Result<bool> ApplyTest(std::string_view name, const Value& in, const CallArgs& a,
                       const BuiltinLimits& limits) {
  if (name == "defined") return !in.is_undefined();
  if (name == "undefined") return in.is_undefined();
  if (name == "none") return in.is_none();
  if (name == "string") return in.is_string();
  if (name == "mapping") return in.is_dict();
  if (name == "iterable")
    return in.is_string() || in.is_list() || in.is_dict() || in.is_undefined();
  if (name == "sequence")
    return in.is_string() || in.is_list() || in.is_dict() || in.is_undefined();
  if (name == "number") return in.is_number();
  if (name == "true") return in.is_bool() && in.as_bool();
  if (name == "false") return in.is_bool() && !in.as_bool();
  if (name == "boolean") return in.is_bool();
  if (name == "integer") return in.is_int();
  if (name == "float") return in.is_float();
  if (name == "callable") return in.is_callable();
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    const std::string s = in.Str();
    return name == "lower" ? (Lower(s) == s && Upper(s) != s) : (Upper(s) == s && Lower(s) != s);
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (in.is_undefined()) return UndefinedError(in);
    if (!in.is_int() && !in.is_bool()) {
      return Error(StrCat("test '", name, "' needs an integer, not ", Quoted(in.TypeName())));
    }
    int64_t by = 2;
    if (name == "divisibleby") {
      ASSIGN_OR_RETURN(by, IntArg(a, 0, "num", 0));
      if (by == 0) return Error("integer division or modulo by zero");
      return in.as_int() % by == 0;
    }
    return (in.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "equalto" || name == "eq" || name == "==") return OneArgCompare(in, a, "==", limits);
  if (name == "ne" || name == "!=") return OneArgCompare(in, a, "!=", limits);
  if (name == "lt" || name == "<" || name == "lessthan") return OneArgCompare(in, a, "<", limits);
  if (name == "le" || name == "<=") return OneArgCompare(in, a, "<=", limits);
  if (name == "gt" || name == ">" || name == "greaterthan")
    return OneArgCompare(in, a, ">", limits);
  if (name == "ge" || name == ">=") return OneArgCompare(in, a, ">=", limits);
  if (name == "in") return OneArgCompare(in, a, "in", limits);
  if (name == "sameas") {
    const Value* other = a.Get(0, "other");
    return other != nullptr && IsSameAs(in, *other);
  }
  if (name == "filter") return in.is_string() && IsFilter(in.as_string());
  if (name == "test") return in.is_string() && IsTest(in.as_string());
  return Error(StrCat("No test named '", name, "'"));
}

Result<Value> GetAttr(const Value& obj, std::string_view name, const BuiltinLimits& limits) {
  if (obj.is_undefined()) return UndefinedError(obj);
  const Value missing =
      Value::Undefined(StrCat("'", obj.TypeName(), "' has no attribute '", name, "'"));
  if (Contains(kMutatingMethods, name) && (obj.is_list() || obj.is_dict())) {
    return Value::Function(
        std::string(name), [name = std::string(name), obj](const CallArgs&) -> Result<Value> {
          return Error(
              StrCat("access to attribute '", name, "' of '", obj.TypeName(), "' is unsafe"));
        });
  }
  if (obj.is_string() && Contains(kStringMethods, name)) return BoundMethod(obj, name, limits);
  if (obj.is_dict() && Contains(kDictMethods, name)) return BoundMethod(obj, name, limits);
  if (obj.is_list() && Contains(kListMethods, name)) return BoundMethod(obj, name, limits);
  if (obj.is_dict() || obj.is_namespace()) {
    const Value* v = obj.as_dict().Find(name);
    return v != nullptr ? *v : missing;
  }
  return missing;
}

Result<Value> GetItem(const Value& obj, const Value& key, const BuiltinLimits& limits) {
  if (obj.is_undefined()) return UndefinedError(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().Find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.as_list();
      const int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
    } else {
      std::vector<std::string_view> cps = SplitCodePoints(obj.as_string());
      const int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::String(std::string(cps[static_cast<size_t>(i)]));
    }
    return Value::Undefined(StrCat("'", obj.TypeName(), "' has no element ", key.as_int()));
  }
  if (key.is_string()) return GetAttr(obj, key.as_string(), limits);
  return Value::Undefined(StrCat("'", obj.TypeName(), "' has no element ", key.Repr()));
}

Result<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) return UndefinedError(obj);
  auto index = [](const Value& v, const char* what) -> Result<std::optional<int64_t>> {
    if (v.is_undefined() || v.is_none()) return std::optional<int64_t>();
    if (!v.is_int() && !v.is_bool()) {
      return Error(StrCat("slice ", what, " must be an integer or None"));
    }
    return std::optional<int64_t>(v.as_int());
  };
  ASSIGN_OR_RETURN(std::optional<int64_t> b, index(start, "start"));
  ASSIGN_OR_RETURN(std::optional<int64_t> e, index(stop, "stop"));
  ASSIGN_OR_RETURN(std::optional<int64_t> s, index(step, "step"));
  const int64_t st = s.value_or(1);
  if (st == 0) return Error("slice step cannot be zero");
  std::vector<std::string_view> cps;
  int64_t n = 0;
  if (obj.is_string()) {
    cps = SplitCodePoints(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().size());
  } else {
    return Error(StrCat("'", obj.TypeName(), "' is not subscriptable"));
  }
  // Python's slice.indices.
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  const int64_t lo = clamp(b, st > 0 ? 0 : n - 1);
  const int64_t hi = clamp(e, st > 0 ? n : -1);
  std::vector<int64_t> picks;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi;) {
    picks.push_back(i);
    if (__builtin_add_overflow(i, st, &i)) break;  // past the end, beyond int64
  }
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : picks) out.append(cps[static_cast<size_t>(i)]);
    return Value::String(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i : picks) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
  return Value::List(std::move(out), obj.is_tuple());
}

Result<std::vector<Value>> Iterate(const Value& value) {
  std::vector<Value> items;
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return items;
    case Value::Kind::kList:
      return value.as_list();
    case Value::Kind::kDict:
      for (const auto& [k, v] : value.as_dict().items) items.push_back(k);
      return items;
    case Value::Kind::kString:
      for (std::string_view cp : SplitCodePoints(value.as_string())) {
        items.push_back(Value::String(std::string(cp)));
      }
      return items;
    default:
      return Error(StrCat("'", value.TypeName(), "' is not iterable"));
  }
}

namespace {

Status OperandError(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  return Error(StrCat("unsupported operand types for ", op, ": ", Quoted(a.TypeName()), " and ",
                      Quoted(b.TypeName())));
}

Result<Value> Repeat(const Value& seq, int64_t times, const BuiltinLimits& limits) {
  const uint64_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
  // An empty sequence repeated is empty, however many times: no loop.
  if (times < 0 || unit == 0) times = 0;
  if (unit != 0 && static_cast<uint64_t>(times) > limits.max_string_bytes / unit) {
    return Error(StrCat("repetition result above ", limits.max_string_bytes, " bytes or items"));
  }
  if (seq.is_string()) {
    std::string out;
    out.reserve(unit * static_cast<uint64_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value::String(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) {
    out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  }
  return Value::List(std::move(out), seq.is_tuple());
}

double FloorMod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

}  // namespace

Result<Value> BinaryOp(std::string_view op, const Value& a, const Value& b,
                       const BuiltinLimits& limits) {
  if (op == "~") {
    std::string out = a.Str();
    out += b.Str();
    if (out.size() > limits.max_string_bytes) return Error("concatenation result too large");
    return Value::String(std::move(out));
  }
  if (op == "==") return Value::Bool(Equal(a, b));
  if (op == "!=") return Value::Bool(!Equal(a, b));
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    ASSIGN_OR_RETURN(int c, Compare(a, b));
    if (op == "<") return Value::Bool(c < 0);
    if (op == ">") return Value::Bool(c > 0);
    if (op == "<=") return Value::Bool(c <= 0);
    return Value::Bool(c >= 0);
  }
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) {
        if (a.is_undefined()) return UndefinedError(a);
        return Error(
            StrCat("'in <string>' requires string as left operand, not ", Quoted(a.TypeName())));
      }
      found = b.as_string().find(a.as_string()) != std::string::npos;
    } else if (b.is_list()) {
      for (const Value& item : b.as_list()) found = found || Equal(item, a);
    } else if (b.is_dict()) {
      found = b.as_dict().Find(a) != nullptr;
    } else if (!b.is_undefined()) {
      return Error(StrCat("argument of type ", Quoted(b.TypeName()), " is not iterable"));
    }
    return Value::Bool(op == "in" ? found : !found);
  }
  if (a.is_number() && b.is_number()) {
    const bool ints = !a.is_float() && !b.is_float();
    const int64_t x = a.as_int(), y = b.as_int();
    const double dx = a.as_double(), dy = b.as_double();
    int64_t r = 0;
    if (op == "+") {
      if (!ints) return Value::Float(dx + dy);
      if (__builtin_add_overflow(x, y, &r)) return Error("integer overflow");
      return Value::Int(r);
    }
    if (op == "-") {
      if (!ints) return Value::Float(dx - dy);
      if (__builtin_sub_overflow(x, y, &r)) return Error("integer overflow");
      return Value::Int(r);
    }
    if (op == "*") {
      if (!ints) return Value::Float(dx * dy);
      if (__builtin_mul_overflow(x, y, &r)) return Error("integer overflow");
      return Value::Int(r);
    }
    if (op == "/") {
      if (dy == 0) return Error("division by zero");
      return Value::Float(dx / dy);
    }
    if (op == "//" || op == "%") {
      if (dy == 0) return Error(ints ? "integer division or modulo by zero" : "float modulo");
      if (ints) {
        if (x == INT64_MIN && y == -1) return Error("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::Int(op == "//" ? q : m);
      }
      if (op == "//") return Value::Float(std::floor(dx / dy));
      return Value::Float(FloorMod(dx, dy));
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(result, x, &result)) return Error("integer overflow");
          if (result == 0 || result == 1) break;
        }
        return Value::Int(result);
      }
      return Value::Float(std::pow(dx, dy));
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > limits.max_string_bytes) {
        return Error("concatenation result too large");
      }
      return Value::String(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return Value::List(std::move(items), a.is_tuple());
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
      return Repeat(a, b.as_int(), limits);
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
      return Repeat(b, a.as_int(), limits);
  }
  if (op == "%" && a.is_string()) {
    return Error("printf-style string formatting ('%') is not supported");
  }
  return OperandError(op, a, b);
}

ValueDict GlobalFunctions() {
  ValueDict globals;
  globals.Set(
      Value::String("range"), Value::Function("range", [](const CallArgs& a) -> Result<Value> {
        std::vector<int64_t> bounds;
        for (const Value& v : a.positional) {
          if (!v.is_int() && !v.is_bool()) {
            return Error(
                StrCat("range: ", Quoted(v.TypeName()), " cannot be interpreted as an integer"));
          }
          bounds.push_back(v.as_int());
        }
        if (bounds.empty() || bounds.size() > 3) return Error("range expected 1 to 3 arguments");
        int64_t start = 0, stop = 0, step = 1;
        if (bounds.size() == 1) {
          stop = bounds[0];
        } else {
          start = bounds[0];
          stop = bounds[1];
          if (bounds.size() == 3) step = bounds[2];
        }
        if (step == 0) return Error("range() arg 3 must not be zero");
        // The sandbox's MAX_RANGE.
        const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                                       static_cast<double>(step));
        if (count > 100000) {
          return Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        }
        std::vector<Value> items;
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
          items.push_back(Value::Int(i));
          if (__builtin_add_overflow(i, step, &i)) break;  // past stop, beyond int64
        }
        return Value::List(std::move(items));
      }));
  auto from_kwargs = [](const CallArgs& a) -> Result<ValueDict> {
    ValueDict d;
    if (!a.positional.empty()) {
      if (a.positional.size() > 1 || !a.positional[0].is_dict()) {
        return Error("expected a single mapping and keyword arguments");
      }
      d = a.positional[0].as_dict();
    }
    for (const auto& [k, v] : a.keyword) d.Set(Value::String(k), v);
    return d;
  };
  globals.Set(Value::String("namespace"),
              Value::Function("namespace", [from_kwargs](const CallArgs& a) -> Result<Value> {
                ASSIGN_OR_RETURN(ValueDict d, from_kwargs(a));
                return Value::Namespace(std::move(d));
              }));
  globals.Set(Value::String("dict"),
              Value::Function("dict", [from_kwargs](const CallArgs& a) -> Result<Value> {
                ASSIGN_OR_RETURN(ValueDict d, from_kwargs(a));
                return Value::Dict(std::move(d));
              }));
  globals.Set(Value::String("raise_exception"),
              Value::Function("raise_exception", [](const CallArgs& a) -> Result<Value> {
                const Value* message = a.Get(0, "message");
                return Error(message != nullptr ? message->Str() : "raise_exception called");
              }));
  globals.Set(Value::String("strftime_now"),
              Value::Function("strftime_now", [](const CallArgs& a) -> Result<Value> {
                const Value* format = a.Get(0, "format");
                if (format == nullptr || !format->is_string()) {
                  return Error("strftime_now: the format must be a string");
                }
                const std::time_t now = std::time(nullptr);
                std::tm local{};
                localtime_r(&now, &local);
                char buf[256];
                const size_t n =
                    std::strftime(buf, sizeof(buf), format->as_string().c_str(), &local);
                return Value::String(std::string(buf, n));
              }));
  return globals;
}

}  // namespace relayout::jinja
