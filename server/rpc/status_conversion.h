// The one mapping from relayout::Status to grpc::Status. The codes are
// numbered identically (engine/base/status.h), so the mapping is a cast; the
// message travels unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "engine/base/status.h"

namespace relayout::server {

// OK for OK; otherwise the same code and message.
grpc::Status ToGrpcStatus(const Status& status);

// The inverse, for clients and tests: codes outside the canonical set
// become kUnknown.
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace relayout::server
