#include "engine/memory/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace relayout {
namespace {

constexpr char kStatusPath[] = "/proc/self/status";
constexpr char kClearRefsPath[] = "/proc/self/clear_refs";

// /proc files report size 0, so they are read to EOF rather than by size.
Result<std::string> ReadSmallFile(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable(path, std::strerror(errno));
  std::string text;
  char chunk[4096];
  // /proc/self/status is a few KiB; the cap keeps a broken file from growing us.
  constexpr size_t kMaxBytes = 1 << 20;
  while (text.size() < kMaxBytes) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      close(fd);
      return Status::Unavailable(path, std::strerror(error));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

Result<uint64_t> ReadSelfStatusBytes(std::string_view field) {
  ASSIGN_OR_RETURN(const std::string text, ReadSmallFile(kStatusPath));
  Result<uint64_t> bytes = ParseProcStatusBytes(text, field);
  if (!bytes.ok()) return bytes.status().WithPrefix(kStatusPath);
  return bytes;
}

}  // namespace

Result<uint64_t> ParseProcStatusBytes(std::string_view status_text, std::string_view field) {
  size_t line_start = 0;
  while (line_start < status_text.size()) {
    size_t line_end = status_text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = status_text.size();
    std::string_view line = status_text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line.size() <= field.size() || line.substr(0, field.size()) != field ||
        line[field.size()] != ':') {
      continue;
    }
    std::string_view value = line.substr(field.size() + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    uint64_t kib = 0;
    size_t digits = 0;
    for (; digits < value.size() && value[digits] >= '0' && value[digits] <= '9'; ++digits) {
      const uint64_t digit = static_cast<uint64_t>(value[digits] - '0');
      if (kib > (UINT64_MAX / 1024 - digit) / 10) {
        return Status::DataLoss(field, "value overflows 64 bits");
      }
      kib = kib * 10 + digit;
    }
    std::string_view unit = value.substr(digits);
    while (!unit.empty() && (unit.back() == ' ' || unit.back() == '\t' || unit.back() == '\r')) {
      unit.remove_suffix(1);
    }
    if (digits == 0 || unit != " kB") {
      return Status::DataLoss(field, StrCat("expected '<digits> kB', got '", value, "'"));
    }
    return kib * 1024;
  }
  return Status::NotFound(field, "not in the status file");
}

Result<uint64_t> ReadPeakResidentBytes() { return ReadSelfStatusBytes("VmHWM"); }

Result<uint64_t> ReadResidentBytes() { return ReadSelfStatusBytes("VmRSS"); }

Status ResetPeakResident() {
  const int fd = open(kClearRefsPath, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == EACCES || error == EPERM || error == EROFS) {
      return Status::PermissionDenied(kClearRefsPath, std::strerror(error));
    }
    return Status::Unavailable(kClearRefsPath, std::strerror(error));
  }
  ssize_t n = 0;
  do {
    n = write(fd, "5", 1);
  } while (n < 0 && errno == EINTR);
  const int error = errno;
  close(fd);
  if (n != 1) {
    if (error == EACCES || error == EPERM) {
      return Status::PermissionDenied(kClearRefsPath, std::strerror(error));
    }
    return Status::Unavailable(kClearRefsPath, std::strerror(error));
  }
  return Status::OK();
}

Result<uint64_t> ReadAvailableMemoryBytes() {
  ASSIGN_OR_RETURN(std::string meminfo, ReadSmallFile("/proc/meminfo"));
  // /proc/meminfo uses the same "Field:  <n> kB" lines as /proc/self/status.
  ASSIGN_OR_RETURN(uint64_t available, ParseProcStatusBytes(meminfo, "MemAvailable"));
  Result<std::string> max = ReadSmallFile("/sys/fs/cgroup/memory.max");
  Result<std::string> current = ReadSmallFile("/sys/fs/cgroup/memory.current");
  if (max.ok() && current.ok()) {
    const uint64_t limit = std::strtoull(max->c_str(), nullptr, 10);  // "max" parses as 0
    const uint64_t used = std::strtoull(current->c_str(), nullptr, 10);
    if (limit > 0) available = std::min(available, limit > used ? limit - used : 0);
  }
  return available;
}

}  // namespace relayout
