// SecureRandomHex: unguessable identifiers (session handles) from the
// operating system's CSPRNG (getrandom(2), which blocks only until the
// kernel's pool is first seeded at boot).
#pragma once

#include <cstddef>
#include <string>

#include "engine/base/status.h"

namespace relayout {

// 2 * bytes lowercase hex digits of fresh randomness. Internal when the OS
// gives none (a kernel without getrandom and no /dev/urandom).
// REQUIRES: 1 <= bytes <= 256.
Result<std::string> SecureRandomHex(size_t bytes);

}  // namespace relayout
