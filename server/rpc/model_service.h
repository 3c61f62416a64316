// ModelService: relayout.v1.Model. GetModelInfo answers from a copy of the
// ServerState at any point of the lifecycle (it never waits for loading or
// conversion). Checks the bearer token like the Generation service.
//
// Thread safety: methods run concurrently on gRPC's threads.
#pragma once

#include "relayout/v1/model.grpc.pb.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/bearer_token_auth.h"

namespace relayout::server {

// The proto form of the server's state; tensors only with include_tensors.
void ToModelInfo(const ServerState::Snapshot& snapshot, bool include_tensors, v1::ModelInfo* out);
// The proto form of a relayout report (GetModelInfo's, and the final
// message of Admin/Relayout); tensors only with include_tensors.
void ToProtoReport(const RelayoutReport& report, bool include_tensors, v1::RelayoutReport* out);

class ModelService final : public v1::Model::CallbackService {
 public:
  // Not owned; each must outlive the gRPC server.
  ModelService(const ServerState* state, ServerMetrics* metrics, const BearerTokenAuth* auth)
      : state_(state), metrics_(metrics), auth_(auth) {}

  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  const ServerState* state_;
  ServerMetrics* metrics_;
  const BearerTokenAuth* auth_;
};

}  // namespace relayout::server
