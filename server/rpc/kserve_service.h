// KserveService: the Open Inference Protocol (KServe v2) gRPC service,
// inference.GRPCInferenceService, over the same GenerationBackend, limits,
// admission, metrics and drain as relayout.v1.Generation, so that
// tritonclient, genai-perf and other KServe v2 clients use relayoutd as
// they use Triton's vLLM or TensorRT-LLM backends. The tensors and their
// conversion are in kserve_messages.h.
//
// The server serves one model, named KserveServiceDeps::model_name, version
// "1" (a request may leave the version empty); any other name is NOT_FOUND.
//
// Methods:
//   ServerLive, ServerReady  open to every caller (probes, like
//                            grpc.health.v1): live is always true, ready
//                            while SERVING with a backend attached;
//   ModelReady, ServerMetadata, ModelMetadata, ModelConfig
//                            the bearer token first; answered in any
//                            lifecycle state;
//   ModelInfer               one response with the whole text; a request
//                            with stream=true is INVALID_ARGUMENT (it
//                            needs ModelStreamInfer);
//   ModelStreamInfer         the token is checked once per stream
//                            (UNAUTHENTICATED ends it); each request is
//                            admitted, converted and run on its own, and
//                            several may run at once. A request gets one
//                            response per group of tokens when it streams,
//                            else one, and every response echoes its id;
//                            with triton_enable_empty_final_response it
//                            ends with an empty response whose parameter
//                            triton_final_response is true. A failed
//                            request gets one response with error_message
//                            set (the stream stays open). A client that
//                            cancels the stream cancels its requests.
//                            Reading pauses while 64 responses wait to be
//                            written (a client that does not read them).
// Admission (admission.h) is that of Generate: UNAVAILABLE "draining" for
// new requests while the server drains, UNAVAILABLE while the model loads
// or converts, UNIMPLEMENTED "generation backend not attached" before
// AttachBackend. A drain that cancels every stream (CancelAll) gives each
// running request its final response, finish_reason "abort".
//
// Metrics: every call is counted in relayout_requests_total{rpc} and
// relayout_request_duration_seconds; on a stream, each inference request
// is one count (rpc "ModelStreamInfer") with its own code. Tokens, time to
// first token and time per output token move as for Generate. Each
// inference request is held in InflightCalls while it runs, so a drain
// waits for it.
//
// Thread safety: methods run concurrently on gRPC's threads.
#pragma once

#include <atomic>
#include <string>

#include "engine/serving/serving_limits.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/api_deps.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/generation_backend.h"
#include "server/rpc/inflight_calls.h"

namespace relayout::server {

// What the service reads: the fronts' shared deps (api_deps.h; every pointer
// must outlive the gRPC server) and the model's name.
struct KserveServiceDeps : ApiDeps {
  std::string model_name;  // ServedModelName (kserve_messages.h) of the model
};

class KserveService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit KserveService(KserveServiceDeps deps) : deps_(std::move(deps)) {}

  // Routes inference to `backend` (not owned; must outlive the gRPC
  // server). Until then ModelInfer and ModelStreamInfer requests are
  // UNIMPLEMENTED and the server is not ready.
  void AttachBackend(GenerationBackend* backend) { backend_.store(backend); }
  // The name the model is served under.
  const std::string& model_name() const { return deps_.model_name; }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

 private:
  class Run;            // one inference request on the backend
  class StreamReactor;  // a ModelStreamInfer call

  // Counts a unary call that ends at once and finishes it.
  grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const char* rpc,
                                      const grpc::Status& status) const;
  // NOT_FOUND unless name and version are the served model's.
  grpc::Status CheckModel(const std::string& name, const std::string& version) const;
  bool Ready() const;

  const KserveServiceDeps deps_;
  std::atomic<GenerationBackend*> backend_{nullptr};
};

}  // namespace relayout::server
