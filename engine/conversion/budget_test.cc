#include "engine/conversion/budget.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace relayout {
namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;

struct ValidCase {
  std::string text;
  uint64_t weight_bytes;
  uint64_t expected;
};

TEST(BudgetTest, ValidBudgetsParseToBytes) {
  const ValidCase cases[] = {
      {"1048576", 0, 1048576},
      {"0", 0, 0},
      {"100B", 0, 100},
      {"100b", 0, 100},
      {"512KiB", 0, 512 * kKiB},
      {"64MiB", 0, 64 * kMiB},
      {"64mib", 0, 64 * kMiB},
      {"64MIB", 0, 64 * kMiB},
      {"1GiB", 0, kGiB},
      {"2TiB", 0, 2 * kTiB},
      {"1.5GiB", 0, kGiB + kGiB / 2},
      {".5KiB", 0, 512},
      {"3.KiB", 0, 3 * kKiB},
      {"16MB", 0, 16000000},
      {"16mb", 0, 16000000},
      {"2GB", 0, 2000000000},
      {"1KB", 0, 1000},
      {"1.25TB", 0, 1250000000000},
      {"  64 MiB  ", 0, 64 * kMiB},
      {"100.9", 0, 100},    // rounded down to whole bytes
      {"0.0001KiB", 0, 0},  // 0.1024 bytes
      {"5%", 1000, 50},
      {"12.5%", 1000, 125},
      {"12.5 %", 1000, 125},
      {"100%", 12345, 12345},
      {"250%", 4, 10},
      {"33.3333%", 3, 0},  // 0.999999 bytes, rounded down
      {"50%", 0, 0},
      {"1%", UINT64_MAX, UINT64_MAX / 100},
      {"100%", UINT64_MAX, UINT64_MAX},
      {"18446744073709551615", 0, UINT64_MAX},
  };
  for (const ValidCase& c : cases) {
    Result<uint64_t> budget = ParseBudget(c.text, c.weight_bytes);
    ASSERT_TRUE(budget.ok()) << c.text << ": " << budget.status();
    EXPECT_EQ(*budget, c.expected) << c.text;
  }
}

TEST(BudgetTest, FractionsAreExactToTheByte) {
  // 0.1 GiB = 107374182.4 bytes.
  EXPECT_EQ(*ParseBudget("0.1GiB", 0), 107374182u);
  // 18 fractional digits are accepted and still exact.
  EXPECT_EQ(*ParseBudget("1.999999999999999999TiB", 0), 2 * kTiB - 1);
  EXPECT_EQ(*ParseBudget("0.000000000000000001%", UINT64_MAX), 0u);
}

struct InvalidCase {
  std::string text;
  std::string reason;  // expected in the message
};

TEST(BudgetTest, InvalidBudgetsNameTheTextAndTheProblem) {
  const InvalidCase cases[] = {
      {"", "empty"},
      {"   ", "empty"},
      {"-1", "negative"},
      {"-64MiB", "negative"},
      {"MiB", "expected a number"},
      {"+5", "expected a number"},
      {".", "expected a number"},
      {"%", "expected a number"},
      {"64XB", "unknown unit 'XB'"},
      {"64 bytes", "unknown unit 'bytes'"},
      {"1.2.3", "unknown unit '.3'"},
      {"5%%", "unknown unit '%%'"},
      {"1e6", "unknown unit 'e6'"},
      {"64M", "ambiguous unit 'M' (write MiB for powers of 1024 or MB for powers of 1000)"},
      {"4k", "ambiguous unit 'k' (write KiB"},
      {"1g", "ambiguous unit 'g'"},
      {"18446744073709551616", "does not fit in 64 bits"},
      {"99999999999999999999999", "does not fit in 64 bits"},
      {"16777216TiB", "does not fit in 64 bits"},
      {"20000000TB", "does not fit in 64 bits"},
      {"101%", "does not fit in 64 bits"},  // of UINT64_MAX below
      {"1.0000000000000000001", "more than 18 digits after the decimal point"},
  };
  for (const InvalidCase& c : cases) {
    Result<uint64_t> budget = ParseBudget(c.text, UINT64_MAX);
    ASSERT_FALSE(budget.ok()) << c.text << " parsed as " << *budget;
    EXPECT_TRUE(budget.status().IsInvalidArgument()) << c.text;
    EXPECT_EQ(budget.status().message().rfind("budget '" + c.text + "': ", 0), 0u)
        << budget.status().message();
    EXPECT_NE(budget.status().message().find(c.reason), std::string::npos)
        << c.text << ": " << budget.status().message();
  }
}

TEST(BudgetTest, FormatBytesUsesOneDecimalInBinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(16 * kMiB), "16.0 MiB");
  EXPECT_EQ(FormatBytes(kGiB + kGiB / 2), "1.5 GiB");
  EXPECT_EQ(FormatBytes(kMiB - 1), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(FormatBytes(kMiB + 52 * kKiB), "1.1 MiB");
  EXPECT_EQ(FormatBytes(3 * kTiB), "3.0 TiB");
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16.0 EiB");
}

TEST(BudgetTest, FormattedSizesParseBackWithinRounding) {
  for (uint64_t bytes : {uint64_t{1024}, 5 * kMiB + 12345, 7 * kGiB + 3, 123 * kTiB}) {
    std::string text = FormatBytes(bytes);
    text.erase(text.find(' '), 1);
    Result<uint64_t> parsed = ParseBudget(text, 0);
    ASSERT_TRUE(parsed.ok()) << text;
    const double ratio = static_cast<double>(*parsed) / static_cast<double>(bytes);
    EXPECT_NEAR(ratio, 1.0, 0.05) << text;
  }
}

}  // namespace
}  // namespace relayout
