#include "server/rpc/status_conversion.h"

namespace relayout::server {

static_assert(static_cast<int>(StatusCode::kInvalidArgument) ==
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
static_assert(static_cast<int>(StatusCode::kResourceExhausted) ==
              static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
static_assert(static_cast<int>(StatusCode::kUnauthenticated) ==
              static_cast<int>(grpc::StatusCode::UNAUTHENTICATED));
static_assert(static_cast<int>(StatusCode::kDataLoss) ==
              static_cast<int>(grpc::StatusCode::DATA_LOSS));

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::OK();
  const int code = static_cast<int>(status.error_code());
  if (code < 1 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    return Status::FromCode(StatusCode::kUnknown, status.error_message());
  }
  return Status::FromCode(static_cast<StatusCode>(code), status.error_message());
}

}  // namespace relayout::server
