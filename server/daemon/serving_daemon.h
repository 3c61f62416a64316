// ServingDaemon: `relayoutd serve` as an object. It listens at once (gRPC,
// the metrics port and the OpenAI HTTP API, server/http/openai_api.h),
// then loads and converts the model on a start-up thread while health says
// NOT_SERVING and GetModelInfo reports progress, serves, and on
// SIGTERM/SIGINT drains and stops.
//
//   LOADING     fetch the default model if needed, open the checkpoint,
//               plan the conversion, load the tokenizer
//   CONVERTING  ExecuteConversion with the ConversionProgress observer
//   SERVING     health SERVING ("" and both services), /readyz 200
//   DRAINING    health NOT_SERVING; the Generation service refuses new
//               work; in-flight calls get drain_grace_seconds to finish;
//               past it every stream still running is cancelled and gets
//               its final message (FINISH_REASON_CANCELLED and the usage)
//               within a second, gRPC cancels what still remains a second
//               later, and Run returns 0. A shutdown still stuck 6 s after
//               the grace logs the calls that hold it ("shutdown stuck")
//               and exits the process with code 3 instead of hanging.
//
// A start-up failure (bad checkpoint, budget, tokenizer) is logged, shown
// in GetModelInfo.error, and Run returns 1 (so a supervisor restarts or
// reports it).
//
// Thread safety: Run is called once, from the main thread (it installs the
// signal handlers); SetBackendFactory before Run.
#pragma once

#include <functional>
#include <memory>

#include "engine/base/status.h"
#include "server/daemon/serve_options.h"
#include "server/observe/server_metrics.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/loaded_model.h"

namespace relayout::server {

class ServingDaemon {
 public:
  // Builds the engine's backend from the converted model, on the start-up
  // thread, before SERVING. An error fails start-up. `metrics` (outlives the
  // backend) is where the backend reports the scheduler's gauges (batch
  // size, queue depth, active sessions, KV-cache usage); the service already
  // counts requests, tokens, time to first token and per output token.
  using BackendFactory = std::function<Result<std::unique_ptr<GenerationBackend>>(
      LoadedModel model, ServerMetrics* metrics)>;

  explicit ServingDaemon(ServeOptions options);
  ~ServingDaemon();
  ServingDaemon(const ServingDaemon&) = delete;
  ServingDaemon& operator=(const ServingDaemon&) = delete;

  // Without a factory the daemon keeps the converted weights and the
  // Generation service answers Prefill/Decode/Generate/Release with
  // UNIMPLEMENTED "generation backend not attached".
  void SetBackendFactory(BackendFactory factory);

  // Runs until a signal and the drain. Errors before serving anything (a
  // flag's value, a TLS or token file, a port that cannot be bound or that
  // another process serves: SO_REUSEPORT is off) are
  // returned as Status; otherwise the exit code: 0 after a drain, 1 when
  // start-up failed.
  Result<int> Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relayout::server
