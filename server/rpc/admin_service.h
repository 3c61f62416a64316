// AdminService: relayout.v1.Admin over the callback API, a thin adapter
// between a streaming call and the RelayoutController (relayout_controller.h),
// which validates the layout and budget, starts the relayout on the serving
// engine and reports it as the start-up conversion is reported.
//
// Relayout, in order: the Generation service's Admission (admission.h):
// UNAUTHENTICATED for the token, UNAVAILABLE "draining", UNAVAILABLE while
// the model loads or converts at start-up; then INVALID_ARGUMENT for an
// empty layout, then the controller's refusals mapped with ToGrpcStatus
// (INVALID_ARGUMENT, UNAVAILABLE, FAILED_PRECONDITION, RESOURCE_EXHAUSTED;
// nothing moved). Once started,
// each converted tensor's progress becomes a message; one write is in
// flight and progress that arrives meanwhile replaces what waits (a slow
// client gets the latest progress, not a backlog). The end writes a final
// message with the report and finishes OK, or finishes with the error that
// stopped the relayout. A client cancel or deadline cancels the relayout
// (RelayoutController::Cancel): the tensors already converted keep their
// new layout and the model keeps serving.
//
// Each call is counted in relayout_requests_total{rpc="Relayout"} and
// relayout_request_duration_seconds, and held in InflightCalls while it
// runs (so a drain waits up to its grace for a relayout in progress).
//
// Thread safety: methods run concurrently on gRPC's threads; the service
// holds no per-call state.
#pragma once

#include "relayout/v1/admin.grpc.pb.h"
#include "server/rpc/api_deps.h"
#include "server/rpc/relayout_controller.h"

namespace relayout::server {

class AdminService final : public v1::Admin::CallbackService {
 public:
  // controller (not owned; null: every Relayout is UNAVAILABLE) and deps'
  // state, auth, metrics and inflight must outlive the gRPC server.
  AdminService(RelayoutController* controller, ApiDeps deps)
      : controller_(controller), deps_(deps) {}

  grpc::ServerWriteReactor<v1::RelayoutProgress>* Relayout(
      grpc::CallbackServerContext* context, const v1::RelayoutRequest* request) override;

 private:
  RelayoutController* const controller_;
  const ApiDeps deps_;
};

}  // namespace relayout::server
