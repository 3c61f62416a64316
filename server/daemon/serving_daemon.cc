#include "server/daemon/serving_daemon.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "engine/chat/chat_template_source.h"
#include "engine/conversion/budget.h"
#include "engine/tokenizer/checkpoint_tokenizer.h"
#include "server/daemon/default_model.h"
#include "server/http/http_server.h"
#include "server/http/openai_api.h"
#include "server/observe/conversion_progress.h"
#include "server/observe/grpc_log.h"
#include "server/observe/metrics_http_server.h"
#include "server/observe/model_description.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/observe/structured_log.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/generation_service.h"
#include "server/rpc/inflight_calls.h"
#include "server/rpc/kserve_messages.h"
#include "server/rpc/kserve_service.h"
#include "server/rpc/model_service.h"
#include "server/rpc/relayout_controller.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

// Static initialisation runs before main: the process's start, for
// relayout_model_load_seconds.
const Clock::time_point kProcessStart = Clock::now();

// The names grpc.health.v1 answers for: the whole server and each service.
const char* const kHealthServices[] = {"", "relayout.v1.Generation", "relayout.v1.Model",
                                       "relayout.v1.Admin", "inference.GRPCInferenceService"};

// A PEM file, whole. NotFound or InvalidArgument naming the flag.
Result<std::string> ReadPemFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(flag, StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return Status::InvalidArgument(flag, StrCat(path, ": not a PEM file"));
  }
  return text.str();
}

Result<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(const ServeOptions& o) {
  if (o.tls_cert.empty() && o.tls_key.empty() && o.tls_client_ca.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    return Status::InvalidArgument("--tls-cert/--tls-key", "TLS needs both");
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPemFile(o.tls_cert, "--tls-cert"));
  ASSIGN_OR_RETURN(pair.private_key, ReadPemFile(o.tls_key, "--tls-key"));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!o.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile(o.tls_client_ca, "--tls-client-ca"));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// After the drain grace: how long streams may take to write their final
// message, then how long gRPC waits before cancelling what is left.
constexpr auto kFinalMessagesWait = std::chrono::seconds(1);
constexpr auto kShutdownDeadline = std::chrono::seconds(1);
// Past grace + this, a shutdown that has not finished is stuck.
constexpr auto kStuckAfterGrace = std::chrono::seconds(6);

// Ends a stuck shutdown: if Disarm is not called by the deadline, logs the
// calls that still hold the server and exits the process with code 3. A
// daemon that cannot stop must say why and go, so that its supervisor
// restarts it, rather than hang until SIGKILL.
class ShutdownWatchdog {
 public:
  ShutdownWatchdog(Clock::time_point deadline, const InflightCalls* inflight)
      : thread_([this, deadline, inflight] {
          std::unique_lock<std::mutex> lock(mu_);
          if (cv_.wait_until(lock, deadline, [this] { return disarmed_; })) return;
          LogError("shutdown stuck", {{"inflight_calls", inflight->count()},
                                      {"calls", inflight->Describe()},
                                      {"exit_code", kStuckExitCode}});
          std::fflush(nullptr);
          std::_Exit(kStuckExitCode);
        }) {}
  ~ShutdownWatchdog() {
    Disarm();
    thread_.join();
  }
  ShutdownWatchdog(const ShutdownWatchdog&) = delete;
  ShutdownWatchdog& operator=(const ShutdownWatchdog&) = delete;

  void Disarm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      disarmed_ = true;
    }
    cv_.notify_all();
  }

  static constexpr int kStuckExitCode = 3;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;     // last: starts once the rest is built
};

}  // namespace

struct ServingDaemon::Impl {
  explicit Impl(ServeOptions o) : options(std::move(o)) {}

  Status SetUp();
  Status StartHttpApi(const ApiDeps& api, const std::string& model_id);
  void LoadAndConvert();
  Status LoadAndConvertSteps();
  HttpResponse HandleHttp(std::string_view path);
  void OnStateChange(LifecycleState from, LifecycleState to);
  int DrainAndStop(bool signalled);

  ServeOptions options;
  BackendFactory factory;

  ServerState state;
  ServerMetrics metrics;
  BearerTokenAuth auth;
  InflightCalls inflight{
      [this](std::string_view rpc, int64_t calls) { metrics.SetInflightCalls(rpc, calls); }};
  std::unique_ptr<GenerationService> generation;
  std::unique_ptr<ModelService> model;
  std::unique_ptr<KserveService> kserve;  // KServe v2, over the same backend
  // Converts the served weights while serving: the start-up conversion of
  // --serve-while-converting and Admin/Relayout.
  std::unique_ptr<RelayoutController> relayout;
  std::unique_ptr<AdminService> admin;  // Admin/Relayout, over `relayout`
  std::unique_ptr<grpc::Server> grpc_server;
  grpc::HealthCheckServiceInterface* health = nullptr;
  std::unique_ptr<MetricsHttpServer> metrics_server;
  std::unique_ptr<OpenAiApi> openai;
  std::unique_ptr<HttpServer> http_server;  // serves `openai`; empty --http-listen: none

  boost::asio::io_context io{1};
  std::thread loader;
  std::atomic<bool> cancel{false};
  std::atomic<int> startup_exit_code{0};

  // Written by the start-up thread before SERVING, released after the
  // gRPC server stopped.
  std::unique_ptr<GenerationBackend> backend;
  std::optional<LoadedModel> kept_model;
};

Status ServingDaemon::Impl::SetUp() {
  if (!options.auth_token_file.empty()) {
    Result<BearerTokenAuth> loaded =
        BearerTokenAuth::FromFile(Env::Default(), options.auth_token_file);
    if (!loaded.ok()) return loaded.status().WithPrefix("--auth-token-file");
    auth = std::move(*loaded);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, MakeCredentials(options));
  if (options.max_message_bytes <= 0 || options.max_message_bytes > (1ll << 30)) {
    return Status::InvalidArgument("--max-message-bytes", "must be in 1..1GiB");
  }

  RouteGrpcLogs();
  state.AddStateListener(
      [this](LifecycleState from, LifecycleState to) { OnStateChange(from, to); });
  metrics.SetLifecycleState(LifecycleState::kLoading);

  ASSIGN_OR_RETURN(metrics_server,
                   MetricsHttpServer::Start(options.metrics_listen, [this](std::string_view path) {
                     return HandleHttp(path);
                   }));

  // The three API fronts (relayout.v1, OpenAI HTTP, KServe v2) share one
  // state, token, metrics, in-flight ledger and set of limits.
  const ApiDeps api{&state, &metrics, &auth, &inflight, options.limits};
  generation = std::make_unique<GenerationService>(api);
  model = std::make_unique<ModelService>(&state, &metrics, &auth);
  // One model id for both APIs: --served-model-name, else from the path.
  const std::string model_id =
      !options.served_model_name.empty()
          ? options.served_model_name
          : ServedModelName(options.load.model_path.empty() ? kDefaultModelFile
                                                            : options.load.model_path);
  RETURN_IF_ERROR(StartHttpApi(api, model_id));
  kserve = std::make_unique<KserveService>(KserveServiceDeps{api, model_id});
  relayout = std::make_unique<RelayoutController>(&state, &metrics);
  admin = std::make_unique<AdminService>(relayout.get(), api);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  // gRPC shares a port with any other process that also asks for
  // SO_REUSEPORT, so a second relayoutd would take half the connections:
  // a busy port must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(generation.get());
  builder.RegisterService(model.get());
  builder.RegisterService(kserve.get());
  builder.RegisterService(admin.get());
  {
    GrpcLogCapture capture;  // a failed bind is reported once, below
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr || port == 0) {
      const std::string reason = capture.OsError();
      return Status::Unavailable(
          "--listen", StrCat("cannot listen on ", options.listen, ": ",
                             reason.empty() ? "not an address of this host, or in use" : reason));
    }
  }
  health = grpc_server->GetHealthCheckService();
  for (const char* name : kHealthServices) health->SetServingStatus(name, false);

  std::string host;
  uint16_t ignored = 0;
  RETURN_IF_ERROR(SplitHostPort(options.listen, "--listen", &host, &ignored));
  LogInfo("listening", {{"grpc", StrCat(host, ":", port)},
                        {"grpc_port", port},
                        {"metrics_port", static_cast<int>(metrics_server->port())},
                        {"http_port", http_server != nullptr ? http_server->port() : 0},
                        {"tls", !options.tls_cert.empty()},
                        {"mtls", !options.tls_client_ca.empty()},
                        {"auth_token", auth.enabled()},
                        {"kserve_model", kserve->model_name()}});
  return Status::OK();
}

// The OpenAI-compatible API over the fronts' shared deps, on its own port
// and threads.
Status ServingDaemon::Impl::StartHttpApi(const ApiDeps& api, const std::string& model_id) {
  if (options.http_listen.empty()) return Status::OK();
  OpenAiApiDeps deps{api, model_id};
  deps.max_body_bytes = static_cast<size_t>(options.max_message_bytes);
  openai = std::make_unique<OpenAiApi>(deps);
  HttpServerOptions http;
  http.address = options.http_listen;
  http.max_body_bytes = deps.max_body_bytes;
  http.error_body = [api = openai.get()](int status, std::string_view message) {
    return api->ErrorBody(status, message);
  };
  http.error_content_type = "application/json";
  HttpServer::Handler handler = [api = openai.get()](
                                    const HttpRequest& request,
                                    const std::shared_ptr<HttpExchange>& exchange) {
    api->Handle(request, exchange);
  };
  ASSIGN_OR_RETURN(http_server, HttpServer::Start(std::move(http), std::move(handler)));
  return Status::OK();
}

void ServingDaemon::Impl::OnStateChange(LifecycleState from, LifecycleState to) {
  metrics.SetLifecycleState(to);
  if (health != nullptr) {
    for (const char* name : kHealthServices) {
      health->SetServingStatus(name, to == LifecycleState::kServing);
    }
  }
  LogInfo("lifecycle", {{"state", LifecycleStateName(to)}, {"previous", LifecycleStateName(from)}});
}

HttpResponse ServingDaemon::Impl::HandleHttp(std::string_view path) {
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics.Serialize()};
  }
  if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
  if (path == "/readyz") {
    // Serving while converting is ready: the model answers, in whatever
    // layout each tensor has; the second line says how far the move is.
    const ServerState::Snapshot s = state.Get();
    std::string body = StrCat(LifecycleStateName(s.state), "\n");
    if (s.converting) {
      body += StrCat("converting: ", static_cast<int>(s.progress.ratio() * 100 + 1e-9), "%\n");
    }
    return {s.state == LifecycleState::kServing ? 200 : 503, "text/plain; charset=utf-8", body};
  }
  return {404, "text/plain; charset=utf-8", "not found: /metrics, /healthz, /readyz\n"};
}

Status ServingDaemon::Impl::LoadAndConvertSteps() {
  LoadOptions load_options = options.load;
  load_options.native_first = options.serve_while_converting;
  if (load_options.model_path.empty()) {
    ASSIGN_OR_RETURN(load_options.model_path, EnsureDefaultModel([](const std::string& line) {
                       LogInfo("default model", {{"detail", line}});
                     }));
  }
  state.SetModelPath(load_options.model_path);
  LogInfo("loading", {{"model", load_options.model_path},
                      {"device", load_options.device},
                      {"layout", load_options.layout},
                      {"budget", load_options.budget}});
  ASSIGN_OR_RETURN(PreparedLoad load, PrepareLoad(Env::Default(), load_options));
  LogInfo("device", {{"device", load.plan.device}, {"choice", load.device_choice}});
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                   LoadCheckpointTokenizer(Env::Default(), load.checkpoint));
  std::shared_ptr<const Tokenizer> shared_tokenizer = std::move(tokenizer);
  // Before the conversion, so that a template that does not compile fails
  // start-up at once, naming the construct.
  ASSIGN_OR_RETURN(
      std::shared_ptr<const ChatTemplate> chat_template,
      LoadChatTemplate(Env::Default(), options.chat_template, load.checkpoint, *shared_tokenizer));
  LogInfo("chat template",
          {{"source", options.chat_template.empty() ? "model" : options.chat_template},
           {"present", chat_template != nullptr ? "yes" : "no"}});
  ModelDescription description = DescribeModel(load);
  const uint64_t bytes_total = description.bytes_total;
  metrics.OnConversionPlanned({load.plan.device, load.plan.plan.weight_bytes,
                               load.plan.plan.budget_bytes, load.plan.plan.predicted_peak_bytes});
  if (load.tuning.has_value()) metrics.SetLayoutTuning(*load.tuning);
  state.SetDescription(std::move(description));
  state.SetTokenizer(shared_tokenizer);
  state.SetChatTemplate(std::move(chat_template));
  if (!state.SetState(LifecycleState::kConverting))
    return Status::Cancelled("start-up", "draining");

  // The weights' buffers are registered in the ledger: it lives as long as
  // they do (in LoadedModel).
  auto ledger = std::make_unique<MemoryLedger>(load.device != nullptr ? MemoryLedger::kUnlimited
                                                                      : load.plan.device_capacity);
  ConversionProgress progress(&state, &metrics, bytes_total);
  RelayoutReport report;
  ASSIGN_OR_RETURN(PlacedWeights weights,
                   ConvertForLoad(load, ledger.get(), &progress, &cancel, &report));
  metrics.SetReport(report);
  LogInfo("conversion done", {{"device", report.device},
                              {"weights_bytes", report.weights_bytes},
                              {"budget_bytes", report.budget_bytes},
                              {"predicted_peak_bytes", report.predicted_peak_bytes},
                              {"measured_peak_bytes", report.measured_peak_bytes},
                              {"scratch_peak_bytes", report.scratch_peak_bytes},
                              {"os_peak_rss_bytes", report.os_peak_rss_bytes},
                              {"bound", report.bound_held() ? "held" : "broken"},
                              {"seconds", report.seconds},
                              {"tensors", static_cast<uint64_t>(report.tensors.size())}});
  state.SetReport(std::move(report));

  // What the weights still have to become, when they were loaded native.
  const bool convert_live =
      load.target_plan.has_value() && load.target_plan->plan.steps.size() > 0 &&
      std::any_of(load.target_plan->tensors.begin(), load.target_plan->tensors.end(),
                  [](const TensorConversion& t) { return !(t.to == t.from); });
  const std::string target_layout = load.policy->mode_name();
  const DeviceCaps caps = load.policy->caps();
  const uint64_t weight_bytes = load.plan.plan.weight_bytes;
  LoadedModel loaded{std::move(load), std::move(ledger), std::move(weights), shared_tokenizer,
                     options.limits};
  if (factory) {
    ASSIGN_OR_RETURN(backend, factory(std::move(loaded), &metrics));
    generation->AttachBackend(backend.get());
    if (openai != nullptr) openai->AttachBackend(backend.get());
    kserve->AttachBackend(backend.get());
    relayout->AttachBackend(backend.get(), caps, weight_bytes);
  } else {
    kept_model.emplace(std::move(loaded));
  }
  metrics.SetModelLoadSeconds(std::chrono::duration<double>(Clock::now() - kProcessStart).count());
  if (convert_live && backend != nullptr) {
    // The rest of the start-up conversion, between forward steps; started
    // before SERVING, so that from SERVING on GetModelInfo says converting
    // until it is done (no request is admitted before SERVING).
    Result<size_t> started = relayout->Start(target_layout, options.load.budget, {});
    if (!started.ok()) {
      // The model serves on in its common layout; say why it stays there.
      LogError("conversion while serving refused",
               {{"layout", target_layout},
                {"code", StatusCodeName(started.status().code())},
                {"error", started.status().message()}});
    }
  }
  state.SetState(LifecycleState::kServing);
  return Status::OK();
}

void ServingDaemon::Impl::LoadAndConvert() {
  const Status status = LoadAndConvertSteps();
  if (status.ok() || cancel.load()) return;
  LogError("start-up failed",
           {{"error", status.message()}, {"code", StatusCodeName(status.code())}});
  state.SetError(status.message());
  startup_exit_code.store(1);
  boost::asio::post(io, [this] { io.stop(); });
}

int ServingDaemon::Impl::DrainAndStop(bool signalled) {
  const auto grace = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.drain_grace_seconds));
  const Clock::time_point drain_start = Clock::now();
  // Nothing below may hang: past this point the process logs what still
  // holds it and exits non-zero (ShutdownWatchdog).
  ShutdownWatchdog watchdog(drain_start + grace + kStuckAfterGrace, &inflight);
  if (signalled) {
    cancel.store(true);
    relayout->Cancel();  // the weights stay in whatever layout each has
    state.SetState(LifecycleState::kDraining);
    LogInfo("draining",
            {{"inflight_calls", inflight.count()}, {"grace_seconds", options.drain_grace_seconds}});
    if (!inflight.WaitUntilIdle(drain_start + grace)) {
      // Every stream still running gets its final message (finish reason
      // CANCELLED with the usage) rather than a bare transport error.
      LogWarning("drain grace expired",
                 {{"cancelled_calls", inflight.count()}, {"calls", inflight.Describe()}});
      if (GenerationBackend* b = generation->backend(); b != nullptr) b->CancelAll();
      inflight.WaitUntilIdle(Clock::now() + kFinalMessagesWait);
    }
  }
  // Whatever started since (a Decode of an existing session is still
  // admitted while draining) ends now: the engine refuses new work from
  // here on, so the shutdown below has nothing left to wait for.
  if (GenerationBackend* b = generation != nullptr ? generation->backend() : nullptr) {
    b->CancelAll();
  }
  if (health != nullptr) health->Shutdown();
  // Calls still running (a client that stopped reading its final message)
  // are cancelled by gRPC after this deadline.
  grpc_server->Shutdown(std::chrono::system_clock::now() + kShutdownDeadline);
  grpc_server->Wait();
  // HTTP connections still open are closed (their streams cancelled) while
  // the backend is still there to cancel them.
  http_server.reset();
  if (loader.joinable()) loader.join();
  backend.reset();
  kept_model.reset();
  metrics_server.reset();
  watchdog.Disarm();
  const int code = startup_exit_code.load();
  LogInfo("stopped",
          {{"exit_code", code},
           {"drain_seconds", std::chrono::duration<double>(Clock::now() - drain_start).count()}});
  return code;
}

ServingDaemon::ServingDaemon(ServeOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ServingDaemon::~ServingDaemon() {
  if (impl_->loader.joinable()) {
    impl_->cancel.store(true);
    impl_->loader.join();
  }
}

void ServingDaemon::SetBackendFactory(BackendFactory factory) {
  impl_->factory = std::move(factory);
}

Result<int> ServingDaemon::Run() {
  Impl& d = *impl_;
  // The signals are handled by the io_context from here on; asio blocks
  // nothing, so install the set before any thread starts.
  boost::asio::signal_set signals(d.io, SIGTERM, SIGINT);
  bool signalled = false;
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    signalled = true;
    LogInfo("signal", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    d.io.stop();
  });
  RETURN_IF_ERROR(d.SetUp());
  d.loader = std::thread([&d] { d.LoadAndConvert(); });
  d.io.run();
  return d.DrainAndStop(signalled);
}

}  // namespace relayout::server
