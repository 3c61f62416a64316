#include "server/rpc/status_conversion.h"

#include <gtest/gtest.h>

namespace relayout::server {
namespace {

TEST(StatusConversionTest, EveryCodeKeepsItsNumberAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const Status s = Status::FromCode(static_cast<StatusCode>(code), "model.gguf", "reason");
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "model.gguf: reason");
    const Status back = FromGrpcStatus(g);
    EXPECT_EQ(back.code(), s.code());
    EXPECT_EQ(back.message(), s.message());
  }
}

TEST(StatusConversionTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(Status::OK()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusConversionTest, ResourceExhaustedMapsToResourceExhausted) {
  const grpc::Status g = ToGrpcStatus(Status::ResourceExhausted("prompt", "5000 tokens"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(StatusConversionTest, UnknownGrpcCodeIsUnknown) {
  const Status s = FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(99), "odd"));
  EXPECT_EQ(s.code(), StatusCode::kUnknown);
  EXPECT_EQ(s.message(), "odd");
}

}  // namespace
}  // namespace relayout::server
