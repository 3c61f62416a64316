#include "engine/base/status.h"

#include <ostream>

namespace relayout {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kCancelled:
      return "CANCELLED";
    case StatusCode::kUnknown:
      return "UNKNOWN";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kAborted:
      return "ABORTED";
    case StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::kInternal:
      return "INTERNAL";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kDataLoss:
      return "DATA_LOSS";
    case StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string_view msg, std::string_view msg2) {
  assert(code != StatusCode::kOk);
  std::string text(msg);
  if (!msg2.empty()) {
    text.append(": ");
    text.append(msg2);
  }
  rep_ = std::make_shared<const Rep>(Rep{code, std::move(text)});
}

#define RELAYOUT_STATUS_FACTORY_(Name, Code)                         \
  Status Status::Name(std::string_view msg, std::string_view msg2) { \
    return Status(StatusCode::Code, msg, msg2);                      \
  }
RELAYOUT_STATUS_FACTORY_(Cancelled, kCancelled)
RELAYOUT_STATUS_FACTORY_(InvalidArgument, kInvalidArgument)
RELAYOUT_STATUS_FACTORY_(DeadlineExceeded, kDeadlineExceeded)
RELAYOUT_STATUS_FACTORY_(NotFound, kNotFound)
RELAYOUT_STATUS_FACTORY_(PermissionDenied, kPermissionDenied)
RELAYOUT_STATUS_FACTORY_(ResourceExhausted, kResourceExhausted)
RELAYOUT_STATUS_FACTORY_(FailedPrecondition, kFailedPrecondition)
RELAYOUT_STATUS_FACTORY_(OutOfRange, kOutOfRange)
RELAYOUT_STATUS_FACTORY_(Unimplemented, kUnimplemented)
RELAYOUT_STATUS_FACTORY_(Internal, kInternal)
RELAYOUT_STATUS_FACTORY_(Unavailable, kUnavailable)
RELAYOUT_STATUS_FACTORY_(DataLoss, kDataLoss)
RELAYOUT_STATUS_FACTORY_(Unauthenticated, kUnauthenticated)
RELAYOUT_STATUS_FACTORY_(IOError, kUnavailable)
#undef RELAYOUT_STATUS_FACTORY_

Status Status::FromCode(StatusCode code, std::string_view msg, std::string_view msg2) {
  if (code == StatusCode::kOk) return Status();
  return Status(code, msg, msg2);
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return StrCat(StatusCodeName(rep_->code), ": ", rep_->message);
}

Status Status::WithPrefix(std::string_view prefix) const {
  if (ok()) return *this;
  return Status(rep_->code, prefix, rep_->message);
}

std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

}  // namespace relayout
