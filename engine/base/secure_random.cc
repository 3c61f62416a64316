#include "engine/base/secure_random.h"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstdint>

namespace relayout {

Result<std::string> SecureRandomHex(size_t bytes) {
  std::array<uint8_t, 256> raw{};
  if (bytes == 0 || bytes > raw.size()) {
    return Status::InvalidArgument("random", StrCat(bytes, " bytes asked, 1..256 allowed"));
  }
  size_t filled = 0;
  while (filled < bytes) {
    const ssize_t n = getrandom(raw.data() + filled, bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Internal("random", StrCat("getrandom failed: errno ", errno));
    }
    filled += static_cast<size_t>(n);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(2 * bytes, '0');
  for (size_t i = 0; i < bytes; ++i) {
    hex[2 * i] = kDigits[raw[i] >> 4];
    hex[2 * i + 1] = kDigits[raw[i] & 15];
  }
  return hex;
}

}  // namespace relayout
