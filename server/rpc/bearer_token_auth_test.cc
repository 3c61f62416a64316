#include "server/rpc/bearer_token_auth.h"

#include <gtest/gtest.h>

namespace relayout::server {
namespace {

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secrets"));
  EXPECT_FALSE(ConstantTimeEquals("secrets", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "secret"));
}

TEST(BearerTokenAuthTest, DisabledAcceptsEverything) {
  BearerTokenAuth auth;
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.CheckHeader({}, false).ok());
}

TEST(BearerTokenAuthTest, RightTokenPasses) {
  BearerTokenAuth auth("s3cret");
  EXPECT_TRUE(auth.CheckHeader("Bearer s3cret", true).ok());
  // The scheme is case-insensitive (RFC 7235); the token is not.
  EXPECT_TRUE(auth.CheckHeader("bearer s3cret", true).ok());
  EXPECT_TRUE(auth.CheckHeader("BEARER  s3cret", true).ok());
}

TEST(BearerTokenAuthTest, MissingHeaderIsUnauthenticated) {
  const grpc::Status s = BearerTokenAuth("s3cret").CheckHeader({}, false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("missing"), std::string::npos);
}

TEST(BearerTokenAuthTest, WrongTokenOrSchemeIsUnauthenticatedWithoutEchoingIt) {
  BearerTokenAuth auth("s3cret");
  for (const char* value : {"Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET", "s3cret",
                            "Basic s3cret", "Bearer ", "Bearers3cret", "Bearer\ts3cret"}) {
    const grpc::Status s = auth.CheckHeader(value, true);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << value;
    EXPECT_EQ(s.error_message().find("s3cret"), std::string::npos) << s.error_message();
  }
}

TEST(BearerTokenAuthTest, FromFileReadsTheFirstLineTrimmed) {
  InMemoryEnv env;
  env.AddFile("/token", "  abc123 \r\nsecond line\n");
  Result<BearerTokenAuth> auth = BearerTokenAuth::FromFile(&env, "/token");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->CheckHeader("Bearer abc123", true).ok());
}

TEST(BearerTokenAuthTest, EmptyTokenFileIsInvalidArgument) {
  InMemoryEnv env;
  env.AddFile("/token", " \n");
  Result<BearerTokenAuth> auth = BearerTokenAuth::FromFile(&env, "/token");
  ASSERT_FALSE(auth.ok());
  EXPECT_TRUE(auth.status().IsInvalidArgument());
  EXPECT_EQ(auth.status().message(), "/token: the token file is empty");
}

TEST(BearerTokenAuthTest, MissingTokenFileIsNotFound) {
  InMemoryEnv env;
  Result<BearerTokenAuth> auth = BearerTokenAuth::FromFile(&env, "/nope");
  ASSERT_FALSE(auth.ok());
  EXPECT_TRUE(auth.status().IsNotFound()) << auth.status();
}

}  // namespace
}  // namespace relayout::server
