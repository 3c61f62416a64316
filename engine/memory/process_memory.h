// The operating system's view of this process's memory, to cross-check the
// MemoryLedger: VmRSS (resident now) and VmHWM (the peak of VmRSS) from
// /proc/self/status, and a reset of VmHWM so a phase can be measured alone.
// Linux only; where /proc is missing they return Unavailable.
//
// Thread safety: all functions may be called concurrently (each opens the
// file anew); a reset races with the other threads' allocations by nature.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/base/status.h"

namespace relayout {

// The value of `field` ("VmHWM", "VmRSS", ...) in the text of a
// /proc/<pid>/status file, in bytes. The kernel writes these lines as
// "VmHWM:\t   12345 kB". Returns NotFound when the field is absent and
// DataLoss when its value is not "<digits> kB" or overflows 64 bits.
Result<uint64_t> ParseProcStatusBytes(std::string_view status_text, std::string_view field);

// VmHWM / VmRSS of this process, in bytes. Errors: Unavailable when
// /proc/self/status cannot be read, else as ParseProcStatusBytes.
Result<uint64_t> ReadPeakResidentBytes();
Result<uint64_t> ReadResidentBytes();

// Resets VmHWM to the current VmRSS by writing "5" to /proc/self/clear_refs
// (Linux >= 4.0). Returns PermissionDenied or Unavailable, naming the file
// and errno, when the write is refused (e.g. a read-only /proc in a container).
Status ResetPeakResident();

// Bytes this process may still allocate: MemAvailable from /proc/meminfo,
// lowered to the cgroup v2 limit minus usage (memory.max - memory.current)
// when the process runs in a memory-limited container, since that limit,
// not the host's memory, is what the OOM killer enforces.
// Unavailable when /proc/meminfo cannot be read.
Result<uint64_t> ReadAvailableMemoryBytes();

}  // namespace relayout
