#include "server/rpc/bearer_token_auth.h"

#include <cctype>
#include <memory>
#include <span>

#include <grpcpp/server_context.h>

namespace relayout::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length is not secret (and a mismatch in length fails anyway); the
  // loop always covers b so that its time tells nothing about the content.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

Result<BearerTokenAuth> BearerTokenAuth::FromFile(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env->OpenForRead(path));
  constexpr uint64_t kMaxTokenFileBytes = 4096;
  if (file->size() > kMaxTokenFileBytes) {
    return Status::InvalidArgument(path, StrCat("a token file holds at most ", kMaxTokenFileBytes,
                                                " bytes, this one ", file->size()));
  }
  std::string text(static_cast<size_t>(file->size()), '\0');
  RETURN_IF_ERROR(file->ReadAt(0, std::as_writable_bytes(std::span(text.data(), text.size()))));
  const size_t newline = text.find('\n');
  std::string_view line(text.data(), newline == std::string::npos ? text.size() : newline);
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
  while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
  if (line.empty()) return Status::InvalidArgument(path, "the token file is empty");
  return BearerTokenAuth(std::string(line));
}

grpc::Status BearerTokenAuth::CheckHeader(std::string_view authorization_value,
                                          bool present) const {
  if (!enabled()) return grpc::Status::OK;
  if (!present) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "authorization: missing \"authorization: Bearer <token>\" metadata");
  }
  // The scheme is case-insensitive (RFC 7235, 2.1) and may be followed by
  // more than one space; the token is compared exactly.
  constexpr std::string_view kScheme = "bearer";
  std::string_view value = authorization_value;
  bool scheme_ok = value.size() > kScheme.size();
  for (size_t i = 0; scheme_ok && i < kScheme.size(); ++i) {
    scheme_ok = std::tolower(static_cast<unsigned char>(value[i])) == kScheme[i];
  }
  scheme_ok = scheme_ok && value[kScheme.size()] == ' ';
  if (scheme_ok) {
    value.remove_prefix(kScheme.size());
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (!scheme_ok || !ConstantTimeEquals(value, token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "authorization: invalid bearer token");
  }
  return grpc::Status::OK;
}

grpc::Status BearerTokenAuth::Check(const grpc::ServerContextBase& context) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return CheckHeader({}, false);
  return CheckHeader(std::string_view(it->second.data(), it->second.size()), true);
}

}  // namespace relayout::server
