#include "engine/base/status.h"

#include <gtest/gtest.h>

namespace relayout {
namespace {

TEST(StatusTest, OkHasNoMessage) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, FactoriesJoinSubjectAndReason) {
  Status s =
      Status::DataLoss("model.gguf", "tensor blk.3.attn_q extends 4096 bytes past end of file");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsDataLoss());
  EXPECT_EQ(s.message(), "model.gguf: tensor blk.3.attn_q extends 4096 bytes past end of file");
  EXPECT_EQ(s.ToString(),
            "DATA_LOSS: model.gguf: tensor blk.3.attn_q extends 4096 bytes past end of file");
  EXPECT_EQ(Status::NotFound("x").message(), "x");
}

TEST(StatusTest, CopiesShareTheMessageAndPrefixAddsContext) {
  Status a = Status::InvalidArgument("budget", "below minimum");
  Status b = a;
  EXPECT_EQ(b.message(), a.message());
  EXPECT_EQ(a.WithPrefix("plan").message(), "plan: budget: below minimum");
  EXPECT_TRUE(Status().WithPrefix("plan").ok());
}

TEST(StatusTest, CodesMatchTheGrpcNumbering) {
  EXPECT_EQ(static_cast<int>(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(StatusCode::kResourceExhausted), 8);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(StatusCode::kDataLoss), 15);
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("half", StrCat(x, " is odd"));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return Status::OK();
}

TEST(StatusTest, ResultPropagatesThroughMacros) {
  ASSERT_TRUE(Quarter(8).ok());
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "half: 3 is odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).message(), "half: 5 is odd");
}

}  // namespace
}  // namespace relayout
