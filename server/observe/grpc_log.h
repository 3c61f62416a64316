// gRPC's own log lines (gpr_log), routed into the daemon's structured log
// so that every line on stderr has one format, and captured instead while
// the server binds its port, so that a failed bind is one line naming the
// reason ("Address already in use") rather than gRPC's multi-line dump.
//
// Thread safety: RouteGrpcLogs once, before gRPC starts; GrpcLogCapture
// objects may be created on any thread (one capture at a time is active,
// process-wide; concurrent captures share the buffer).
#pragma once

#include <string>

namespace relayout::server {

// Installs the gpr_log function: gRPC's INFO/DEBUG lines are dropped (its
// verbosity stays at ERROR), ERROR lines become "grpc" warnings.
void RouteGrpcLogs();

// While alive, gRPC's error lines are kept here instead of being logged.
class GrpcLogCapture {
 public:
  GrpcLogCapture();
  ~GrpcLogCapture();
  GrpcLogCapture(const GrpcLogCapture&) = delete;
  GrpcLogCapture& operator=(const GrpcLogCapture&) = delete;

  // What gRPC logged so far while this capture was active.
  std::string text() const;
  // The operating system's reason in what was captured (gRPC's os_error
  // field, e.g. "Address already in use"), or "".
  std::string OsError() const;
};

}  // namespace relayout::server
