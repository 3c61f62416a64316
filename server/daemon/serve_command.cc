#include "server/daemon/serve_command.h"

#include <array>

#include "engine/conversion/budget.h"
#include "server/cli/flags.h"
#include "server/cli/load_flags.h"
#include "server/daemon/relayout_command.h"
#include "server/daemon/serving_daemon.h"
#include "server/observe/structured_log.h"
#include "server/rpc/engine_generation_backend.h"

namespace relayout::server {
namespace {

Status PositiveFlag(const char* flag, int64_t value) {
  if (value <= 0) return Status::InvalidArgument(flag, StrCat(value, " must be above 0"));
  return Status::OK();
}

}  // namespace

int RunServe(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  ServeOptions options;
  cli::LoadFlags load_flags;
  load_flags.require_model = false;
  std::string log_format = "text";
  std::string max_message = "4MiB";
  std::string kv_cache = "1GiB";
  int64_t max_batch_tokens = 512;
  int64_t threads = 0;
  bool no_prefix_caching = false;
  bool help = false;
  cli::FlagSet flags("serve");
  load_flags.Register(&flags);
  flags.AddBool("serve-while-converting", &options.serve_while_converting,
                "serve as soon as the weights are loaded in their common layout and convert them "
                "between forward steps (--serve-while-converting=false: convert first)");
  flags.AddString("listen", &options.listen, "gRPC address host:port (port 0: any free port)");
  flags.AddString("metrics-listen", &options.metrics_listen,
                  "HTTP address of /metrics, /healthz and /readyz");
  flags.AddString("http-listen", &options.http_listen,
                  "OpenAI-compatible HTTP API address host:port (empty: off)");
  flags.AddString("served-model-name", &options.served_model_name,
                  "model id of the OpenAI and KServe APIs (default: the model file's name "
                  "without its extension)");
  flags.AddString("chat-template", &options.chat_template,
                  "chat template for chat requests: empty (default) the model's own, 'chatml' "
                  "the built-in ChatML, else a .jinja file; one that does not compile fails "
                  "start-up");
  flags.AddInt("max-prompt-tokens", &options.limits.max_prompt_tokens,
               "longest prompt in tokens (RESOURCE_EXHAUSTED above)");
  flags.AddInt("max-new-tokens", &options.limits.max_new_tokens,
               "most tokens one request may generate (and the default)");
  flags.AddInt("max-sessions", &options.limits.max_sessions, "sessions alive at once");
  flags.AddInt("max-queue", &options.limits.max_queue, "requests waiting for admission");
  flags.AddInt("session-idle-ttl", &options.limits.session_idle_ttl_seconds,
               "seconds before an unused session is released");
  flags.AddInt("max-tokenize-bytes", &options.limits.max_tokenize_bytes,
               "text bytes of one Tokenize call (RESOURCE_EXHAUSTED above)");
  flags.AddInt("max-detokenize-ids", &options.limits.max_detokenize_ids,
               "token ids of one Detokenize call (RESOURCE_EXHAUSTED above)");
  flags.AddString("kv-cache-bytes", &kv_cache,
                  "KV-cache pool of the serving engine: 1GiB, 256MiB, ... (pages are touched as "
                  "used)");
  flags.AddInt("max-batch-tokens", &max_batch_tokens,
               "tokens of one batched forward pass (decodes, then prefills)");
  flags.AddInt("threads", &threads, "compute threads (0: one per hardware thread)");
  flags.AddBool("no-prefix-caching", &no_prefix_caching,
                "prefill every prompt whole (by default a prompt that starts with KV blocks "
                "another request computed reuses them)");
  flags.AddString("max-message-bytes", &max_message, "largest request message: 4MiB, 65536, ...");
  flags.AddString("tls-cert", &options.tls_cert, "server certificate chain (PEM); enables TLS");
  flags.AddString("tls-key", &options.tls_key, "server private key (PEM)");
  flags.AddString("tls-client-ca", &options.tls_client_ca,
                  "CA (PEM) that client certificates must chain to (mutual TLS)");
  flags.AddString("auth-token-file", &options.auth_token_file,
                  "file whose first line is the bearer token the API requires");
  flags.AddString("log-format", &log_format, "text or json");
  flags.AddDouble("drain-grace", &options.drain_grace_seconds,
                  "seconds in-flight calls may take to finish after SIGTERM");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return cli::ReportError(err, s);
  if (help) {
    out << "relayoutd serve: serve a model over gRPC (default: SmolLM2-135M-Instruct Q4_1,\n"
           "fetched once into the cache)\n\n"
        << flags.Usage();
    return 0;
  }
  if (Status s = load_flags.Finish(); !s.ok()) return cli::ReportError(err, s.WithPrefix("serve"));
  options.load = load_flags.options;
  Result<LogFormat> format = ParseLogFormat(log_format);
  if (!format.ok()) return cli::ReportError(err, format.status());
  options.log_format = *format;
  Result<uint64_t> message_bytes = ParseBudget(max_message, 0);
  if (!message_bytes.ok()) {
    return cli::ReportError(
        err, Status::InvalidArgument("--max-message-bytes", message_bytes.status().message()));
  }
  options.max_message_bytes = static_cast<int64_t>(*message_bytes);
  for (const auto& [flag, value] :
       {std::pair{"--max-prompt-tokens", options.limits.max_prompt_tokens},
        {"--max-new-tokens", options.limits.max_new_tokens},
        {"--max-sessions", options.limits.max_sessions},
        {"--max-queue", options.limits.max_queue},
        {"--session-idle-ttl", options.limits.session_idle_ttl_seconds},
        {"--max-tokenize-bytes", options.limits.max_tokenize_bytes},
        {"--max-detokenize-ids", options.limits.max_detokenize_ids},
        {"--max-batch-tokens", max_batch_tokens}}) {
    if (Status s = PositiveFlag(flag, value); !s.ok()) return cli::ReportError(err, s);
  }
  if (!(options.drain_grace_seconds >= 0)) {
    return cli::ReportError(err, Status::InvalidArgument("--drain-grace", "must be >= 0"));
  }
  EngineBackendOptions engine_options;
  Result<uint64_t> kv_bytes = ParseBudget(kv_cache, 0);
  if (!kv_bytes.ok()) {
    return cli::ReportError(
        err, Status::InvalidArgument("--kv-cache-bytes", kv_bytes.status().message()));
  }
  if (threads < 0 || threads > 1024) {
    return cli::ReportError(err, Status::InvalidArgument("--threads", "must be in 0..1024"));
  }
  engine_options.kv_cache_bytes = *kv_bytes;
  engine_options.max_batch_tokens = max_batch_tokens;
  engine_options.threads = static_cast<int>(threads);
  engine_options.prefix_caching = !no_prefix_caching;

  InitLogging(options.log_format);
  ServingDaemon daemon(std::move(options));
  daemon.SetBackendFactory([engine_options](LoadedModel model, ServerMetrics* metrics)
                               -> Result<std::unique_ptr<GenerationBackend>> {
    ASSIGN_OR_RETURN(std::unique_ptr<EngineGenerationBackend> backend,
                     EngineGenerationBackend::Create(std::move(model), metrics, engine_options));
    return std::unique_ptr<GenerationBackend>(std::move(backend));
  });
  Result<int> code = daemon.Run();
  if (!code.ok()) return cli::ReportError(err, code.status().WithPrefix("serve"));
  return *code;
}

std::span<const cli::Command> ServerCommands() {
  static constexpr std::array<cli::Command, 2> kCommands = {{
      {"serve", "load, convert and serve a model over gRPC, with Prometheus metrics", &RunServe},
      {"relayout", "convert a running server's weights into another layout while it serves",
       &RunRelayoutClient},
  }};
  return kCommands;
}

}  // namespace relayout::server
