// The conversion budget: bytes of scratch the relayout may hold above the
// weights themselves (see docs/PLANNER.md). FormatBytes (bytes.h) formats it
// in messages.
//
// Budget syntax (ASCII whitespace around the text and before the unit is ignored):
//   <number>[<unit>]   number: digits, optionally "." and up to 18 more digits.
//                      unit (case-insensitive): none or B (bytes), KiB MiB GiB TiB
//                      (powers of 1024), KB MB GB TB (powers of 1000).
//   <number>%          that percentage of the weight bytes.
// The result is rounded down to whole bytes. Bare K, M, G, T are refused as
// ambiguous rather than guessed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/base/bytes.h"  // FormatBytes, for the planner's messages
#include "engine/base/status.h"

namespace relayout {

// Parses `text` (syntax above) into bytes; percentages are of `weight_bytes`.
// Returns InvalidArgument "budget '<text>': <reason>" when the text is empty,
// negative, not a number, has an unknown or ambiguous unit, or the value does
// not fit in 64 bits.
Result<uint64_t> ParseBudget(std::string_view text, uint64_t weight_bytes);

}  // namespace relayout
