// Status and Result<T>: the one error type of relayoutd.
//
// A Status is OK or carries a canonical code (the gRPC code set, so the
// server maps it one to one) and a message written "subject: reason", e.g.
//   "model.gguf: tensor blk.3.attn_q.weight extends 4096 bytes past end of file".
// OK holds no allocation, so the success path costs a null pointer.
//
// Result<T> is a value or a non-OK Status. Both are [[nodiscard]].
// Propagate with RETURN_IF_ERROR(expr) and ASSIGN_OR_RETURN(lhs, expr) in a
// flat sequence; the engine never throws across its boundary and never aborts
// on input.
//
// Thread safety: Status and Result are values; distinct objects may be used
// from different threads, a shared const object may be read concurrently.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace relayout {

// The canonical codes, numbered as in grpc::StatusCode.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "INVALID_ARGUMENT" etc.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status OK() { return Status(); }
  // Each factory joins msg and msg2 as "msg: msg2" when msg2 is not empty.
  static Status Cancelled(std::string_view msg, std::string_view msg2 = {});
  static Status InvalidArgument(std::string_view msg, std::string_view msg2 = {});
  static Status DeadlineExceeded(std::string_view msg, std::string_view msg2 = {});
  static Status NotFound(std::string_view msg, std::string_view msg2 = {});
  static Status PermissionDenied(std::string_view msg, std::string_view msg2 = {});
  static Status ResourceExhausted(std::string_view msg, std::string_view msg2 = {});
  static Status FailedPrecondition(std::string_view msg, std::string_view msg2 = {});
  static Status OutOfRange(std::string_view msg, std::string_view msg2 = {});
  static Status Unimplemented(std::string_view msg, std::string_view msg2 = {});
  static Status Internal(std::string_view msg, std::string_view msg2 = {});
  static Status Unavailable(std::string_view msg, std::string_view msg2 = {});
  static Status DataLoss(std::string_view msg, std::string_view msg2 = {});
  static Status Unauthenticated(std::string_view msg, std::string_view msg2 = {});
  static Status IOError(std::string_view msg, std::string_view msg2 = {});  // kUnavailable
  static Status FromCode(StatusCode code, std::string_view msg, std::string_view msg2 = {});

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The message alone; empty for OK.
  const std::string& message() const;
  // "CODE_NAME: message", or "OK".
  std::string ToString() const;

  bool IsInvalidArgument() const { return code() == StatusCode::kInvalidArgument; }
  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsResourceExhausted() const { return code() == StatusCode::kResourceExhausted; }
  bool IsDataLoss() const { return code() == StatusCode::kDataLoss; }
  bool IsUnimplemented() const { return code() == StatusCode::kUnimplemented; }
  bool IsCancelled() const { return code() == StatusCode::kCancelled; }

  // A copy whose message is "prefix: <old message>"; OK stays OK.
  Status WithPrefix(std::string_view prefix) const;

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  Status(StatusCode code, std::string_view msg, std::string_view msg2);
  // Immutable once built, so copies share it.
  std::shared_ptr<const Rep> rep_;
};

std::ostream& operator<<(std::ostream& os, const Status& s);

// A value or an error. REQUIRES for value()/operator*: ok().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "Result built from an OK status holds no value");
    if (status_.ok()) status_ = Status::Internal("Result", "built from OK status without a value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

// Concatenates any streamable values into a string; for error messages.
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace relayout

#define RELAYOUT_CONCAT_INNER_(a, b) a##b
#define RELAYOUT_CONCAT_(a, b) RELAYOUT_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::relayout::Status relayout_status_ = (expr);        \
    if (!relayout_status_.ok()) return relayout_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)   \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(RELAYOUT_CONCAT_(relayout_result_, __LINE__), lhs, expr)
