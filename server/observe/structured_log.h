// Structured logs of the daemon: one line per event on stderr, as text
//   2025-01-02T03:04:05.678Z info lifecycle state=serving previous=converting
// or as JSON (--log-format json), one object per line:
//   {"ts":"2025-01-02T03:04:05.678Z","level":"info","msg":"lifecycle","state":"serving",...}
// Lines are written through spdlog and flushed at once, so that a log
// collector (or a test) sees each event when it happens.
//
// Thread safety: Log* may be called concurrently; InitLogging once, first.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace relayout::server {

enum class LogFormat { kText, kJson };

// "text" or "json"; InvalidArgument "--log-format: ..." otherwise.
Result<LogFormat> ParseLogFormat(std::string_view name);

// Installs the process-wide logger on stderr in `format`.
void InitLogging(LogFormat format);

// One key=value of an event. Strings are quoted in text when they hold
// spaces or quotes, always in JSON; numbers never.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  LogField(std::string_view k, const char* v) : key(k), value(v), quoted(true) {}
  LogField(std::string_view k, int64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  LogField(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  LogField(std::string_view k, int v) : key(k), value(std::to_string(v)), quoted(false) {}
  LogField(std::string_view k, uint32_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  LogField(std::string_view k, double v);
  LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}

  std::string_view key;
  std::string value;
  bool quoted;
};

void LogInfo(std::string_view msg, std::initializer_list<LogField> fields = {});
void LogWarning(std::string_view msg, std::initializer_list<LogField> fields = {});
void LogError(std::string_view msg, std::initializer_list<LogField> fields = {});

// The payload of one line in `format` (without time and level); for tests.
std::string FormatLogPayload(LogFormat format, std::string_view msg,
                             std::initializer_list<LogField> fields);

}  // namespace relayout::server
