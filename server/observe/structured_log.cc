#include "server/observe/structured_log.h"

#include <atomic>
#include <cstdio>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace relayout::server {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void Log(spdlog::level::level_enum level, std::string_view msg,
         std::initializer_list<LogField> fields) {
  spdlog::log(level, "{}", FormatLogPayload(g_format.load(), msg, fields));
}

}  // namespace

LogField::LogField(std::string_view k, double v) : key(k), quoted(false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  value = buf;
}

Result<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return Status::InvalidArgument("--log-format", StrCat("\"", name, "\" is not text or json"));
}

void InitLogging(LogFormat format) {
  g_format.store(format);
  auto logger = std::make_shared<spdlog::logger>("relayoutd",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern(format == LogFormat::kJson
                          ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"
                          : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                      spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

std::string FormatLogPayload(LogFormat format, std::string_view msg,
                             std::initializer_list<LogField> fields) {
  std::string out;
  if (format == LogFormat::kJson) {
    out += "\"msg\":";
    AppendJsonString(msg, &out);
    for (const LogField& f : fields) {
      out.push_back(',');
      AppendJsonString(f.key, &out);
      out.push_back(':');
      if (f.quoted) {
        AppendJsonString(f.value, &out);
      } else {
        out += f.value;
      }
    }
    return out;
  }
  out += msg;
  for (const LogField& f : fields) {
    out.push_back(' ');
    out += f.key;
    out.push_back('=');
    if (f.quoted && NeedsQuotes(f.value)) {
      AppendJsonString(f.value, &out);
    } else {
      out += f.value;
    }
  }
  return out;
}

void LogInfo(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::info, msg, fields);
}
void LogWarning(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::warn, msg, fields);
}
void LogError(std::string_view msg, std::initializer_list<LogField> fields) {
  Log(spdlog::level::err, msg, fields);
}

}  // namespace relayout::server
