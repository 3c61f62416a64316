// BearerTokenAuth: the optional shared-secret check of the relayout.v1
// services (--auth-token-file). A call passes when its metadata holds
//   authorization: Bearer <token>
// with exactly the configured token, compared in constant time (the time
// does not depend on where the first difference is). Otherwise the call
// fails with UNAUTHENTICATED before any work.
//
// Where it applies: the Generation and Model services check it at the top
// of every method. grpc.health.v1.Health stays open (probes carry no
// token), and so does server reflection: it describes the API, which is
// public in proto/, and serves no model data.
//
// Why not an AuthMetadataProcessor: gRPC runs those only under TLS
// (InsecureServerCredentials refuses one), and a token over plain TCP on a
// private network is a supported set-up; a server interceptor cannot fail
// a callback-API call with a status of its choice.
//
// Thread safety: immutable after construction; Check may run concurrently.
#pragma once

#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include "engine/base/env.h"
#include "engine/base/status.h"

namespace grpc {
class ServerContextBase;
}  // namespace grpc

namespace relayout::server {

class BearerTokenAuth {
 public:
  // No token: every call passes.
  BearerTokenAuth() = default;
  explicit BearerTokenAuth(std::string token) : token_(std::move(token)) {}

  // Reads the token from the first line of a file (surrounding white space
  // dropped). NotFound/Unavailable from the file; InvalidArgument
  // "path: the token file is empty" for a blank token.
  static Result<BearerTokenAuth> FromFile(Env* env, const std::string& path);

  bool enabled() const { return !token_.empty(); }
  // The token, for a client that sends it (relayoutd relayout).
  const std::string& token() const { return token_; }

  // OK when disabled or when `authorization_value` is "Bearer <token>" (the
  // scheme in any case, RFC 7235);
  // UNAUTHENTICATED otherwise (the message never echoes the token).
  grpc::Status CheckHeader(std::string_view authorization_value, bool present) const;

  // CheckHeader on the call's "authorization" metadata.
  grpc::Status Check(const grpc::ServerContextBase& context) const;

 private:
  std::string token_;
};

// Whether a and b are equal, in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace relayout::server
