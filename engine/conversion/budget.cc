#include "engine/conversion/budget.h"

#include <cstddef>
#include <limits>

namespace relayout {
namespace {

// Exact arithmetic on (integer, fraction) pairs needs more than 64 bits in
// the intermediate products; clang and gcc both provide this type.
using Uint128 = unsigned __int128;

constexpr int kMaxFractionDigits = 18;
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

struct ByteUnit {
  std::string_view lower_name;
  uint64_t multiplier;
};

constexpr ByteUnit kByteUnits[] = {
    {"", 1},
    {"b", 1},
    {"kib", uint64_t{1} << 10},
    {"mib", uint64_t{1} << 20},
    {"gib", uint64_t{1} << 30},
    {"tib", uint64_t{1} << 40},
    {"kb", 1000},
    {"mb", 1000 * 1000},
    {"gb", 1000 * 1000 * 1000},
    {"tb", uint64_t{1000} * 1000 * 1000 * 1000},
};

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view TrimAsciiSpace(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

uint64_t Pow10(int exponent) {
  uint64_t value = 1;
  for (int i = 0; i < exponent; ++i) value *= 10;
  return value;
}

}  // namespace

Result<uint64_t> ParseBudget(std::string_view text, uint64_t weight_bytes) {
  const std::string subject = StrCat("budget '", text, "'");
  const std::string_view s = TrimAsciiSpace(text);
  if (s.empty()) return Status::InvalidArgument(subject, "empty");
  if (s.front() == '-') return Status::InvalidArgument(subject, "negative");

  size_t pos = 0;
  uint64_t integer = 0;
  bool has_integer_digits = false;
  for (; pos < s.size() && IsDigit(s[pos]); ++pos) {
    has_integer_digits = true;
    const uint64_t digit = static_cast<uint64_t>(s[pos] - '0');
    if (integer > (kMaxU64 - digit) / 10) {
      return Status::InvalidArgument(subject, "does not fit in 64 bits");
    }
    integer = integer * 10 + digit;
  }
  uint64_t fraction = 0;  // The digits after the point, as an integer.
  int fraction_digits = 0;
  if (pos < s.size() && s[pos] == '.') {
    for (++pos; pos < s.size() && IsDigit(s[pos]); ++pos) {
      if (fraction_digits == kMaxFractionDigits) {
        return Status::InvalidArgument(
            subject, StrCat("more than ", kMaxFractionDigits, " digits after the decimal point"));
      }
      fraction = fraction * 10 + static_cast<uint64_t>(s[pos] - '0');
      ++fraction_digits;
    }
  }
  if (!has_integer_digits && fraction_digits == 0) {
    return Status::InvalidArgument(subject, "expected a number, e.g. 64MiB, 1.5GiB or 5%");
  }
  while (pos < s.size() && IsAsciiSpace(s[pos])) ++pos;
  const std::string_view unit = s.substr(pos);
  std::string lower_unit;
  for (char c : unit) lower_unit.push_back(ToLowerAscii(c));

  // value = (integer + fraction / scale) * multiplier / divisor, rounded down.
  // Split as integer*multiplier/divisor + fraction*multiplier/(scale*divisor)
  // so that no product exceeds 128 bits.
  const uint64_t scale = Pow10(fraction_digits);
  uint64_t multiplier = 0;
  uint64_t divisor = 1;
  if (lower_unit == "%") {
    multiplier = weight_bytes;
    divisor = 100;
  } else {
    for (const ByteUnit& byte_unit : kByteUnits) {
      if (lower_unit == byte_unit.lower_name) multiplier = byte_unit.multiplier;
    }
    if (multiplier == 0) {
      if (lower_unit == "k" || lower_unit == "m" || lower_unit == "g" || lower_unit == "t") {
        const char upper = static_cast<char>(lower_unit[0] - 'a' + 'A');
        return Status::InvalidArgument(
            subject, StrCat("ambiguous unit '", unit, "' (write ", upper,
                            "iB for powers of 1024 or ", upper, "B for powers of 1000)"));
      }
      return Status::InvalidArgument(
          subject, StrCat("unknown unit '", unit,
                          "' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB, TB or %)"));
    }
  }
  const Uint128 whole = Uint128{integer} * multiplier;  // < 2^128: both factors < 2^64.
  const Uint128 whole_quotient = whole / divisor;
  const Uint128 whole_remainder = whole % divisor;  // < 100
  // (remainder * scale + fraction * multiplier) < 100 * 1e18 + 1e18 * 2^64 < 2^128.
  const Uint128 fraction_part =
      (whole_remainder * scale + Uint128{fraction} * multiplier) / (Uint128{scale} * divisor);
  const Uint128 value = whole_quotient + fraction_part;
  if (value > kMaxU64) return Status::InvalidArgument(subject, "does not fit in 64 bits");
  return static_cast<uint64_t>(value);
}

}  // namespace relayout
