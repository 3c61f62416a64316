// GenerateReactor: one streaming Generate call.
//
// The backend pushes token groups from its threads into a per-call queue;
// the reactor keeps one write in flight and OnWriteDone takes the next
// message from the queue (so a slow client slows only its own stream, and
// tokens that arrive meanwhile are merged into the message waiting to be
// written). The backend's final callback queues the last message (finish
// reason and usage); once it is written the call finishes OK. A client
// cancel calls GenerationBackend::Cancel.
//
// The queue is shared with the backend's callbacks, which may outlive the
// reactor; after the call finished they do nothing. No lock is held across
// callbacks or while calling into gRPC.
//
// Lifetime: created by GenerationService::Generate, deletes itself in OnDone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <grpcpp/support/server_callback.h>

#include "engine/tokenizer.h"
#include "relayout/v1/generation.pb.h"
#include "server/generation_backend.h"
#include "server/inflight_calls.h"
#include "server/server_metrics.h"

namespace relayout::server {

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // metrics and inflight are not owned and must outlive the call;
  // inflight->Begin() was called for this call, and OnDone calls End().
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
  class Queue;  // shared with the backend's callbacks

  // Writes the next queued message, or finishes when the end is queued and
  // nothing is left; does nothing while a write is in flight.
  void Pump();

  ServerMetrics* metrics_;
  InflightCalls* inflight_;
  std::chrono::steady_clock::time_point start_;
  GenerationBackend* backend_ = nullptr;
  std::shared_ptr<Queue> queue_;
  v1::GenerateResponse writing_;  // the message in flight; touched only by the writer
  grpc::Status final_status_;     // set before Finish, read in OnDone
};

}  // namespace relayout::server
