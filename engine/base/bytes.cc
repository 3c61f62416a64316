#include "engine/base/bytes.h"

#include <string_view>

#include "engine/base/status.h"

namespace relayout {

std::string FormatBytes(uint64_t bytes) {
  using Uint128 = unsigned __int128;
  static constexpr std::string_view kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return StrCat(bytes, " B");
  int unit = 1;
  while (unit < 6 && bytes >= (uint64_t{1} << (10 * (unit + 1)))) ++unit;
  auto tenths_in = [bytes](int u) {
    const Uint128 unit_bytes = Uint128{1} << (10 * u);
    return static_cast<uint64_t>((Uint128{bytes} * 10 + unit_bytes / 2) / unit_bytes);
  };
  uint64_t tenths = tenths_in(unit);
  // 1023.96 KiB rounds to 1024.0 KiB; say 1.0 MiB instead.
  if (tenths >= 10240 && unit < 6) tenths = tenths_in(++unit);
  return StrCat(tenths / 10, ".", tenths % 10, " ", kNames[unit]);
}

}  // namespace relayout
