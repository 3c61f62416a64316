// Admission: the checks a call that serves the model passes before it does
// any work, shared by the relayout.v1 Generation service and the KServe v2
// inference service so that both refuse the same calls with the same
// codes and messages.
//
// In order:
//   UNAUTHENTICATED        the bearer token (BearerTokenAuth), when one is
//                          configured;
//   UNAVAILABLE "draining" new work while the server drains (work on an
//                          existing session still runs);
//   UNAVAILABLE "model not ready: <state>, N% converted"
//                          while the model loads or converts (calls that
//                          only need the tokenizer run once it is loaded).
//
// Thread safety: immutable after construction; Check may run concurrently.
#pragma once

#include <memory>

#include <grpcpp/support/status.h>

#include "engine/tokenizer/tokenizer.h"
#include "server/observe/server_state.h"
#include "server/rpc/bearer_token_auth.h"

namespace grpc {
class ServerContextBase;
}  // namespace grpc

namespace relayout::server {

class Admission {
 public:
  enum class Work { kNew, kExisting };
  enum class Needs { kModel, kTokenizer };

  // Neither is owned; both must outlive the Admission.
  Admission(const ServerState* state, const BearerTokenAuth* auth) : state_(state), auth_(auth) {}

  // The token, then CheckState. OK when the call may proceed, with
  // *tokenizer set (never null then).
  grpc::Status Check(const grpc::ServerContextBase& context, Work work, Needs needs,
                     std::shared_ptr<const Tokenizer>* tokenizer) const;

  // The lifecycle checks alone (a request on a stream already admitted):
  // `Needs::kModel` asks for SERVING (or DRAINING for existing work).
  grpc::Status CheckState(Work work, Needs needs,
                          std::shared_ptr<const Tokenizer>* tokenizer) const;

  // UNAUTHENTICATED unless the call carries the token (or none is needed).
  grpc::Status CheckToken(const grpc::ServerContextBase& context) const;

 private:
  const ServerState* state_;
  const BearerTokenAuth* auth_;
};

}  // namespace relayout::server
