#include "server/daemon/relayout_command.h"
#include "engine/base/env.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "engine/base/bytes.h"
#include "engine/base/env.h"
#include "relayout/v1/admin.grpc.pb.h"
#include "server/cli/command.h"
#include "server/cli/flags.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/status_conversion.h"

namespace relayout::server {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnRelayoutInterrupt(int) { g_interrupted.store(true); }

// Cancels `context` when SIGINT arrives, until destroyed (which restores
// the previous handler). The handler only sets a flag; a thread turns it
// into TryCancel, which is not async-signal-safe.
class InterruptCancelsCall {
 public:
  explicit InterruptCancelsCall(grpc::ClientContext* context) {
    g_interrupted.store(false);
    struct sigaction action {};
    action.sa_handler = OnRelayoutInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_);
    watcher_ = std::thread([this, context] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!done_) {
        if (g_interrupted.load()) {
          context->TryCancel();
          return;
        }
        cv_.wait_for(lock, std::chrono::milliseconds(50));
      }
    });
  }
  ~InterruptCancelsCall() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    watcher_.join();
    sigaction(SIGINT, &previous_, nullptr);
  }
  InterruptCancelsCall(const InterruptCancelsCall&) = delete;
  InterruptCancelsCall& operator=(const InterruptCancelsCall&) = delete;

  bool interrupted() const { return g_interrupted.load(); }

 private:
  struct sigaction previous_ {};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // GUARDED_BY(mu_)
  std::thread watcher_;
};

// A whole small file (a PEM CA, a token file). NotFound naming the flag.
Result<std::string> ReadSmallFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(flag, StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(const std::string& tls_ca) {
  if (tls_ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadSmallFile(tls_ca, "--tls-ca"));
  if (ssl.pem_root_certs.find("-----BEGIN") == std::string::npos) {
    return Status::InvalidArgument("--tls-ca", StrCat(tls_ca, ": not a PEM file"));
  }
  return grpc::SslCredentials(ssl);
}

std::string ProgressLine(const v1::RelayoutProgress& p) {
  std::string line = StrCat("relayout: ", static_cast<int>(p.ratio() * 100), "% (",
                            p.tensors_done(), "/", p.tensors_total(), " tensors, ",
                            FormatBytes(p.bytes_done()), " of ", FormatBytes(p.bytes_total()), ")");
  if (!p.tensor().empty()) line += StrCat(", last ", p.tensor(), " -> ", p.layout());
  return line + "\n";
}

std::string ReportSummary(const v1::RelayoutProgress& last, const std::string& layout) {
  const v1::RelayoutReport& r = last.report();
  const uint64_t bound = r.weights_bytes() + r.budget_bytes();
  const bool held = r.measured_peak_bytes() <= bound;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.3f", r.seconds());
  return StrCat("relayout done: ", last.tensors_total(), " tensors to ", layout, " in ", seconds,
                " s\n", "tensors       ", last.tensors_total(), "\n", "weights       ",
                FormatBytes(r.weights_bytes()), " (", r.weights_bytes(), " bytes)\n",
                "budget        ", FormatBytes(r.budget_bytes()), " (", r.budget_bytes(),
                " bytes)\n", "measured peak ", FormatBytes(r.measured_peak_bytes()), " (",
                r.measured_peak_bytes(), " bytes): bound ", held ? "held" : "BROKEN",
                " (weights + budget = ", FormatBytes(bound), ")\n", "seconds       ", seconds,
                "\n");
}

}  // namespace

int RunRelayoutClient(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  std::string to;
  std::string budget;
  std::string server = "127.0.0.1:50051";
  std::string auth_token_file;
  std::string tls_ca;
  bool help = false;
  cli::FlagSet flags("relayout");
  flags.AddString("to", &to,
                  "target layout: auto, native or a layout name, with ,CLASS=LAYOUT overrides "
                  "(required)");
  flags.AddString("budget", &budget, "conversion scratch: 64MiB, 1GiB, 5% (empty: 64MiB)");
  flags.AddString("server", &server, "gRPC address of the running relayoutd serve");
  flags.AddString("auth-token-file", &auth_token_file,
                  "file whose first line is the server's bearer token");
  flags.AddString("tls-ca", &tls_ca, "CA (PEM) of the server's certificate; enables TLS");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return cli::ReportError(err, s);
  if (help) {
    out << "relayoutd relayout: convert the weights of a running server into other layouts\n"
           "while it serves (Ctrl-C cancels; tensors already moved keep their layout)\n\n"
        << flags.Usage();
    return 0;
  }
  if (to.empty()) {
    return cli::ReportError(
        err, Status::InvalidArgument("--to", "required: auto, native or a layout name"));
  }
  Result<std::shared_ptr<grpc::ChannelCredentials>> credentials = MakeCredentials(tls_ca);
  if (!credentials.ok()) return cli::ReportError(err, credentials.status());
  grpc::ClientContext context;
  if (!auth_token_file.empty()) {
    // Read as the server reads its --auth-token-file.
    Result<BearerTokenAuth> token = BearerTokenAuth::FromFile(Env::Default(), auth_token_file);
    if (!token.ok()) return cli::ReportError(err, token.status().WithPrefix("--auth-token-file"));
    context.AddMetadata("authorization", "Bearer " + token->token());
  }

  std::unique_ptr<v1::Admin::Stub> stub =
      v1::Admin::NewStub(grpc::CreateChannel(server, *credentials));
  v1::RelayoutRequest request;
  request.set_layout(to);
  request.set_budget(budget);
  v1::RelayoutProgress message;
  v1::RelayoutProgress last;
  bool got_report = false;
  grpc::Status status;
  {
    InterruptCancelsCall interrupt(&context);
    std::unique_ptr<grpc::ClientReader<v1::RelayoutProgress>> reader =
        stub->Relayout(&context, request);
    int printed_decile = -1;
    while (reader->Read(&message)) {
      const int decile = static_cast<int>(message.ratio() * 10);
      if (decile > printed_decile) {
        printed_decile = decile;
        err << ProgressLine(message);
      }
      got_report = got_report || message.has_report();
      last = std::move(message);
    }
    status = reader->Finish();
    if (interrupt.interrupted() && status.error_code() == grpc::StatusCode::CANCELLED) {
      status = grpc::Status(grpc::StatusCode::CANCELLED,
                            "interrupted: the relayout was cancelled (tensors already converted "
                            "keep their new layout; the server serves on)");
    }
  }
  if (!status.ok()) return cli::ReportError(err, FromGrpcStatus(status).WithPrefix("relayout"));
  if (!got_report) {
    return cli::ReportError(
        err, Status::Internal("relayout", "the server ended the stream without a report"));
  }
  out << ReportSummary(last, to);
  return 0;
}

}  // namespace relayout::server
