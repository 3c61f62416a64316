// GenerationService: relayout.v1.Generation over the callback API, a thin
// adapter: each method checks the caller's token and the lifecycle,
// validates and converts the request (generation_messages.h), calls the
// GenerationBackend and maps its Status with ToGrpcStatus.
//
// Admission, in order: UNAUTHENTICATED (token), then UNAVAILABLE "draining"
// for new work while the server drains (Prefill, Generate, Tokenize,
// Detokenize; Decode and Release of existing sessions still run), then
// UNAVAILABLE while the model loads or converts (Tokenize and Detokenize
// run as soon as the tokenizer is loaded), then UNIMPLEMENTED "generation
// backend not attached" until AttachBackend.
//
// Each call ends exactly once (UnaryCall for the unary methods, the
// GenerateReactor's state machine for Generate), is counted in
// relayout_requests_total and relayout_request_duration_seconds, and held
// in InflightCalls while it runs. Tokenize and Detokenize are bounded by
// ServingLimits::max_tokenize_bytes and max_detokenize_ids
// (RESOURCE_EXHAUSTED).
//
// Thread safety: methods run concurrently on gRPC's threads; the service
// holds no per-call state.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "engine/serving/serving_limits.h"
#include "relayout/v1/generation.grpc.pb.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/api_deps.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/inflight_calls.h"

namespace relayout::server {

// What the service reads (api_deps.h); every pointer must outlive the gRPC
// server.
using GenerationServiceDeps = ApiDeps;

class GenerationService final : public v1::Generation::CallbackService {
 public:
  explicit GenerationService(GenerationServiceDeps deps) : deps_(deps) {}

  // Routes Prefill, Decode, Generate and Release to `backend` (not owned;
  // must outlive the gRPC server). Until then they are UNIMPLEMENTED.
  void AttachBackend(GenerationBackend* backend) { backend_.store(backend); }
  // The attached backend, or null (read from any thread).
  GenerationBackend* backend() const { return backend_.load(); }

  grpc::ServerUnaryReactor* Prefill(grpc::CallbackServerContext* context,
                                    const v1::PrefillRequest* request,
                                    v1::PrefillResponse* response) override;
  grpc::ServerUnaryReactor* Decode(grpc::CallbackServerContext* context,
                                   const v1::DecodeRequest* request,
                                   v1::DecodeResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;

 private:
  enum class Work { kNew, kExisting };
  // The admission checks above; OK when the call may proceed, with
  // *tokenizer set (never null then). `needs_model` asks for SERVING (or
  // DRAINING for existing work); else the tokenizer suffices. With
  // `backend`, also UNIMPLEMENTED until one is attached, else *backend set.
  grpc::Status Admit(const grpc::CallbackServerContext& context, Work work, bool needs_model,
                     std::shared_ptr<const Tokenizer>* tokenizer,
                     GenerationBackend** backend = nullptr) const;
  class UnaryCall;  // one unary call's end, exactly once

  GenerationServiceDeps deps_;
  std::atomic<GenerationBackend*> backend_{nullptr};
};

}  // namespace relayout::server
