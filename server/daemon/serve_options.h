// ServeOptions: everything `relayoutd serve` is configured with. Flags (and
// RELAYOUTD_<FLAG> variables) only fill this struct.
#pragma once

#include <cstdint>
#include <string>

#include "engine/conversion/model_loader.h"
#include "engine/serving/serving_limits.h"
#include "server/observe/structured_log.h"

namespace relayout::server {

struct ServeOptions {
  // The checkpoint and its conversion. An empty model_path serves the
  // default model (default_model.h), fetched once into the cache.
  LoadOptions load;
  // Take traffic as soon as the weights are loaded in their common layout
  // and convert them into the chosen layouts while serving, tensor by
  // tensor between forward steps (live_relayout.h); /readyz is ready from
  // then on and says "converting: x%". False: the conversion runs first
  // and the server is ready after it.
  bool serve_while_converting = true;

  // gRPC address; port 0 picks a free port (the "listening" log line says
  // which).
  std::string listen = "127.0.0.1:50051";
  // HTTP /metrics, /healthz, /readyz; a separate port so that it can be
  // exposed to a scraper without exposing the API.
  std::string metrics_listen = "127.0.0.1:9464";
  // The OpenAI-compatible HTTP API (server/http/openai_api.h), on the port
  // vLLM uses; empty: off. Same token, limits and drain as the gRPC API.
  std::string http_listen = "127.0.0.1:8000";
  // The model id of the OpenAI and KServe APIs; empty: ServedModelName of
  // the checkpoint's path (its file name without the extension).
  std::string served_model_name;
  // The chat template (engine/chat/chat_template_source.h): empty, the
  // model's own; "chatml", the built-in one; else a .jinja file. One that
  // does not compile fails start-up.
  std::string chat_template;

  ServingLimits limits;
  // Largest request message accepted (ServerBuilder::SetMaxReceiveMessageSize);
  // bigger ones fail with RESOURCE_EXHAUSTED before reaching a service.
  int64_t max_message_bytes = 4 << 20;

  // TLS: server certificate chain and key (PEM). With tls_client_ca, clients
  // must present a certificate signed by it (mutual TLS). All empty: plain
  // TCP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // A file whose first line is the bearer token the API requires; empty:
  // no token (bearer_token_auth.h).
  std::string auth_token_file;

  LogFormat log_format = LogFormat::kText;
  // After SIGTERM/SIGINT: how long in-flight calls may take to finish
  // before they are cancelled.
  double drain_grace_seconds = 30;
};

}  // namespace relayout::server
