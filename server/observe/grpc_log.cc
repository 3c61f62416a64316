#include "server/observe/grpc_log.h"

#include <mutex>

#include <grpc/support/log.h>

#include "server/observe/structured_log.h"

namespace relayout::server {
namespace {

std::mutex capture_mu;
int captures = 0;                 // GUARDED_BY(capture_mu)
std::string* captured = nullptr;  // GUARDED_BY(capture_mu)

void OnGrpcLog(gpr_log_func_args* args) {
  if (args->severity != GPR_LOG_SEVERITY_ERROR) return;
  {
    std::lock_guard<std::mutex> lock(capture_mu);
    if (captures > 0) {
      if (!captured->empty()) captured->push_back('\n');
      captured->append(args->message);
      return;
    }
  }
  LogWarning("grpc", {{"file", args->file}, {"line", args->line}, {"detail", args->message}});
}

}  // namespace

void RouteGrpcLogs() {
  gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
  gpr_set_log_function(&OnGrpcLog);
}

GrpcLogCapture::GrpcLogCapture() {
  std::lock_guard<std::mutex> lock(capture_mu);
  if (captures++ == 0) captured = new std::string();
}

GrpcLogCapture::~GrpcLogCapture() {
  std::lock_guard<std::mutex> lock(capture_mu);
  if (--captures == 0) {
    delete captured;
    captured = nullptr;
  }
}

std::string GrpcLogCapture::text() const {
  std::lock_guard<std::mutex> lock(capture_mu);
  return *captured;
}

std::string GrpcLogCapture::OsError() const {
  const std::string all = text();
  constexpr std::string_view kField = "os_error:\"";
  const size_t at = all.rfind(kField);
  if (at == std::string::npos) return "";
  const size_t begin = at + kField.size();
  const size_t end = all.find('"', begin);
  return end == std::string::npos ? "" : all.substr(begin, end - begin);
}

}  // namespace relayout::server
