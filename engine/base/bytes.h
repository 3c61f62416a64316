// Byte counts in messages: one formatting for every layer's errors and
// reports.
#pragma once

#include <cstdint>
#include <string>

namespace relayout {

// "100 B" below 1 KiB, else one decimal in the largest binary unit that keeps
// the value at least 1: "16.0 MiB", "1.5 GiB", "16.0 EiB" (rounded to nearest).
std::string FormatBytes(uint64_t bytes);

}  // namespace relayout
