// The gRPC side of StreamCallQueue (stream_call_queue.h), which has none:
// the status conversions and carrying out a Step on a ServerWriteReactor.
// One piece for every server-streaming call (Generate, Admin/Relayout).
#pragma once

#include <grpcpp/support/server_callback.h>

#include <mutex>

#include "server/rpc/stream_call_queue.h"

namespace relayout::server {

inline CallStatus ToCallStatus(const grpc::Status& s) {
  return {static_cast<int>(s.error_code()), s.error_message()};
}

inline grpc::Status ToGrpc(const CallStatus& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code), s.message);
}

// Takes `step` on `reactor`: starts its write, or records its code in
// *final_code (under *mu, for the call's metrics after OnDone) and
// finishes the call. REQUIRES: the reactor is alive whenever step is not
// kNothing (it is deleted only after the one kFinish).
template <typename Message>
void ApplyStreamStep(const typename StreamCallQueue<Message>::Step& step,
                     grpc::ServerWriteReactor<Message>* reactor, std::mutex* mu,
                     grpc::StatusCode* final_code) {
  using Kind = typename StreamCallQueue<Message>::Step::Kind;
  switch (step.kind) {
    case Kind::kNothing:
      return;
    case Kind::kWrite:
      reactor->StartWrite(step.message);
      return;
    case Kind::kFinish: {
      {
        std::lock_guard<std::mutex> lock(*mu);
        *final_code = static_cast<grpc::StatusCode>(step.status.code);
      }
      reactor->Finish(ToGrpc(step.status));
      return;
    }
  }
}

}  // namespace relayout::server
