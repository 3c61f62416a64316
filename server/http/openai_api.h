// OpenAiApi: OpenAI's HTTP API over the same GenerationBackend, limits,
// bearer token, metrics and drain as relayout.v1.Generation; the handler of
// the daemon's HttpServer (--http-listen).
//
//   GET  /v1/models            the served model (/v1/models/<id>: that one)
//   POST /v1/completions       a prompt (text or token ids)
//   POST /v1/chat/completions  messages, rendered by the model's chat template
//   GET  /health               vLLM's probe: 200 while SERVING, else 503 and
//                              the state (no token, not counted)
//
// Each request goes through, in order: the route (404 unknown path, 405
// wrong method, OPTIONS included: no CORS), the bearer token on every /v1/
// path (401), then for the two generation endpoints: 503 "draining" for new
// work while the server drains, 503 while the model loads or converts, 501
// until a backend is attached; then the body (openai_protocol.h: 400), the
// model name (404 model_not_found unless absent or the served id), and the
// same checks as the gRPC API (ToGenerationRequest: limits are 400 here).
// A full queue is 429.
//
// The served model id is --served-model-name, else the KServe API's name
// (ServedModelName: the checkpoint's file name without its extension, or
// its folder's name; "SmolLM2-135M-Instruct.Q4_1").
//
// Generation: the request's tokens are formatted on the engine's thread as
// they come and queued on the HttpExchange (never blocking it). Streamed
// (stream: true) responses are server-sent events whose head is sent with
// the first token or the end, so an error before any token still gets its
// HTTP status; an error after the head is an error event, then [DONE]. A
// client that leaves, or reads too slowly (HttpServer's backpressure),
// cancels its stream so that its KV cache is freed. A stream the server
// cancels (the drain's grace expired) ends normally with finish_reason
// "abort".
//
// Every request is counted in relayout_requests_total{rpc} (rpc
// "openai.models", "openai.completions", "openai.chat.completions",
// "openai.other"; code: our status code name, CANCELLED when the client
// left) and held in InflightCalls until its last byte is written; tokens,
// time to first token and per output token are counted as for Generate.
//
// Thread safety: Handle runs on the HttpServer's threads, the backend's
// callbacks on the engine's; the object holds no per-request state.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "engine/serving/serving_limits.h"
#include "server/http/http_server.h"
#include "server/http/openai_protocol.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/api_deps.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/inflight_calls.h"

namespace relayout::server {

// The fronts' shared deps (api_deps.h; every pointer must outlive the
// HttpServer), the model's id and the body limit.
struct OpenAiApiDeps : ApiDeps {
  std::string served_model_name;  // "": ServedModelName of the model's path
  size_t max_body_bytes = 4 << 20;
};

class OpenAiApi {
 public:
  explicit OpenAiApi(OpenAiApiDeps deps) : deps_(std::move(deps)) {}

  // Until then generation requests get 501. `backend` must outlive the
  // HttpServer.
  void AttachBackend(GenerationBackend* backend) { backend_.store(backend); }

  // The HttpServer::Handler.
  void Handle(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange);

  // The id /v1/models lists and requests may name.
  std::string model_id() const;

  // The body of HttpServer's own answers (a request that fails to parse:
  // 400, 413, 431) as an OpenAI error object (HttpServerOptions::error_body).
  std::string ErrorBody(int http_status, std::string_view message) const;

 private:
  class Call;        // one request's accounting
  class Generation;  // one generation request's state, shared with the backend

  void Generate(const HttpRequest& request, OpenAiEndpoint endpoint,
                const std::shared_ptr<Call>& call);

  const OpenAiApiDeps deps_;
  std::atomic<GenerationBackend*> backend_{nullptr};
};

}  // namespace relayout::server
