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

  // gRPC address; port 0 picks a free port (the "listening" log line says
  // which).
  std::string listen = "127.0.0.1:50051";
  // HTTP /metrics, /healthz, /readyz; a separate port so that it can be
  // exposed to a scraper without exposing the API.
  std::string metrics_listen = "127.0.0.1:9464";

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
