// GenerateReactor: one streaming Generate call, a thin adapter between
// gRPC's write reactor and StreamCallQueue (stream_call_queue.h), which
// decides every write and the one Finish whatever order the events come
// in: tokens and the end from the backend's threads, write completions
// and cancellation from gRPC's.
//
// The backend pushes token groups into the queue; one write is in flight
// and tokens that arrive meanwhile join the next message (a slow client
// slows only its own stream). The backend's end queues the final message
// (finish reason and usage): for a stream the server cancelled (drain
// grace expired) that is FINISH_REASON_CANCELLED and the call ends OK. A
// client cancel or deadline calls GenerationBackend::Cancel and drops what
// is queued.
//
// Token counters and time to first token move per token group; time per
// output token is observed once the call is done.
//
// Lifetime: created by GenerationService::Generate, deletes itself in
// OnDone. The queue is shared with the backend's callbacks, which may
// outlive the reactor: after Finish every event is a no-op, so they never
// touch it then.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <grpcpp/support/server_callback.h>

#include "engine/tokenizer/tokenizer.h"
#include "relayout/v1/generation.pb.h"
#include "server/observe/server_metrics.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/inflight_calls.h"

namespace relayout::server {

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // metrics and inflight are not owned and must outlive the call;
  // inflight->Begin("Generate") was called for this call, and OnDone
  // calls End.
  GenerateReactor(ServerMetrics* metrics, InflightCalls* inflight,
                  std::chrono::steady_clock::time_point start);

  // Ends the call with `status` before any message (admission or validation
  // errors). REQUIRES: Run was not called.
  void FinishWithStatus(const grpc::Status& status);

  // Starts the stream on `backend` (not owned; outlives the call).
  void Run(GenerationBackend* backend, std::shared_ptr<const Tokenizer> tokenizer,
           GenerationRequest request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Shared;  // the queue and counters, shared with the backend's callbacks

  ServerMetrics* metrics_;
  InflightCalls* inflight_;
  std::chrono::steady_clock::time_point start_;
  GenerationBackend* backend_ = nullptr;
  std::shared_ptr<Shared> shared_;
};

}  // namespace relayout::server
