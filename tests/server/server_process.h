// A relayoutd server run as a child process for end-to-end tests: started
// on free ports (port 0), its stderr log kept in a file that the test reads
// while it runs, stopped by a signal or killed when the test ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace relayout::testing {

class ServerProcess {
 public:
  // Runs `relayoutd serve <args> --listen 127.0.0.1:0 --metrics-listen
  // 127.0.0.1:0 --http-listen 127.0.0.1:0` and waits (up to 20 s) for its "listening" log line.
  // nullptr with *error set when it does not start or exits first.
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args,
                                              std::string* error);
  ~ServerProcess();  // SIGKILL if still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }  // the OpenAI API
  std::string grpc_address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }

  // The stderr log so far.
  std::string Log() const;
  // Whether `needle` appears in the log within timeout_ms.
  bool WaitForLog(const std::string& needle, int timeout_ms) const;
  void Signal(int signal) const;
  // The exit code (128 + signal when killed), or -1 after timeout_ms.
  int Wait(int timeout_ms);

 private:
  ServerProcess() = default;
  int pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
};

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
};

// GET http://127.0.0.1:<port><path> with "Connection: close".
HttpResult HttpGet(int port, const std::string& path);

}  // namespace relayout::testing
