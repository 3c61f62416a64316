#include "engine/base/secure_random.h"

#include <gtest/gtest.h>

#include <set>

namespace relayout {
namespace {

TEST(SecureRandomTest, GivesTwoHexDigitsPerByte) {
  Result<std::string> h = SecureRandomHex(16);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(h->size(), 32u);
  for (char c : *h) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
}

TEST(SecureRandomTest, ThousandHandlesAreDistinctAndShareNoPrefix) {
  std::set<std::string> seen;
  std::set<std::string> prefixes;
  for (int i = 0; i < 1000; ++i) {
    Result<std::string> h = SecureRandomHex(16);
    ASSERT_TRUE(h.ok());
    seen.insert(*h);
    prefixes.insert(h->substr(0, 2));
  }
  EXPECT_EQ(seen.size(), 1000u);
  // 1000 draws of a uniform byte cover most of its 256 values; a counter
  // or a timestamp would cover a handful.
  EXPECT_GT(prefixes.size(), 200u);
}

TEST(SecureRandomTest, RejectsSizesOutsideTheRange) {
  EXPECT_FALSE(SecureRandomHex(0).ok());
  EXPECT_FALSE(SecureRandomHex(257).ok());
}

}  // namespace
}  // namespace relayout
