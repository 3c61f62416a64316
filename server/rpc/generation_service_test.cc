// GenerationService over a real gRPC server on loopback, with a fake
// backend: admission, validation, the unary adapters and the streaming
// reactor (ordering, final message, cancellation).
#include "server/rpc/generation_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "server/testing/api_front_test.h"
#include "server/testing/fake_generation_backend.h"

namespace relayout::server {
namespace {

class GenerationServiceTest : public ApiFrontTest {
 protected:
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  void Start(const std::string& token = "") {
    service_ = std::make_unique<GenerationService>(Deps(token));
    std::shared_ptr<grpc::Channel> channel;
    server_ = StartLoopbackServer(service_.get(), &channel);
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Generation::NewStub(channel);
  }

  void Serve() { MoveToServing(); }

  static v1::GenerateRequest GenerateText(const std::string& text, uint32_t max_new_tokens) {
    v1::GenerateRequest r;
    r.mutable_prompt()->set_text(text);
    r.mutable_sampling()->set_max_new_tokens(max_new_tokens);
    return r;
  }

  FakeGenerationBackend backend_;  // outlives the server (declared before it)
  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

TEST_F(GenerationServiceTest, GenerateStreamsEveryTokenThenTheFinishReasonAndUsage) {
  Start();
  Serve();
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, GenerateText("Once upon a time", 20));
  v1::GenerateResponse message;
  std::vector<int32_t> ids;
  v1::GenerateResponse last;
  while (reader->Read(&message)) {
    for (const v1::Token& t : message.tokens()) ids.push_back(t.id());
    last = message;
  }
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(ids.size(), 20u);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<int32_t>(300 + i));
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().prompt_tokens(), 5u);
  EXPECT_EQ(last.usage().generated_tokens(), 20u);
  // The reactor's OnDone (which counts the call) may run after the client
  // has the status.
  EXPECT_TRUE(inflight_.WaitUntilIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  const std::string text = metrics_.Serialize();
  EXPECT_NE(text.find("relayout_requests_total{code=\"OK\",rpc=\"Generate\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("relayout_generated_tokens_total 20"), std::string::npos);
}

TEST_F(GenerationServiceTest, CancellingAStreamCancelsItInTheBackend) {
  Start();
  Serve();
  backend_.delay_ms = 5;
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, GenerateText("Once", 1000));
  v1::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(reader->Read(&message));
  ctx.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 200 && backend_.cancel_calls.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(backend_.cancel_calls.load(), 1);
}

// The drain's grace expired: the server cancels the stream, and the client
// still gets a final message with FINISH_REASON_CANCELLED and the usage.
TEST_F(GenerationServiceTest, AServerSideCancelEndsTheStreamWithItsFinalMessage) {
  Start();
  Serve();
  backend_.delay_ms = 5;
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, GenerateText("Once", 1000));
  v1::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));
  int tokens = message.tokens_size();
  backend_.CancelAll();
  v1::GenerateResponse last;
  while (reader->Read(&message)) {
    tokens += message.tokens_size();
    last = message;
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_EQ(last.usage().generated_tokens(), static_cast<uint32_t>(tokens));
  EXPECT_LT(tokens, 1000);
  EXPECT_TRUE(inflight_.WaitUntilIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  EXPECT_EQ(inflight_.Describe(), "");
}

TEST_F(GenerationServiceTest, WithoutBackendGenerationIsUnimplemented) {
  Start();
  Serve();
  grpc::ClientContext ctx;
  v1::PrefillRequest request;
  request.mutable_prompt()->set_text("Once");
  v1::PrefillResponse response;
  const grpc::Status status = stub_->Prefill(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(status.error_message(), "generation backend not attached");

  grpc::ClientContext ctx2;
  auto reader = stub_->Generate(&ctx2, GenerateText("Once", 3));
  v1::GenerateResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(GenerationServiceTest, BeforeServingGenerationIsUnavailableButTokenizeRuns) {
  Start();
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, GenerateText("Once", 3));
  v1::GenerateResponse message;
  EXPECT_FALSE(reader->Read(&message));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message().rfind("model not ready: loading", 0), 0u)
      << status.error_message();

  grpc::ClientContext ctx2;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Once upon a time");
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(stub_->Tokenize(&ctx2, tokenize, &tokens).ok());
  EXPECT_EQ(tokens.token_ids_size(), 5);
}

TEST_F(GenerationServiceTest, DrainingRefusesNewWorkButDecodesExistingSessions) {
  Start();
  Serve();
  service_->AttachBackend(&backend_);
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  grpc::ClientContext ctx;
  v1::PrefillRequest prefill;
  prefill.mutable_prompt()->set_text("Once");
  v1::PrefillResponse prefilled;
  const grpc::Status status = stub_->Prefill(&ctx, prefill, &prefilled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "draining");

  grpc::ClientContext ctx2;
  v1::DecodeRequest decode;
  decode.set_session_id("session-1");
  v1::DecodeResponse decoded;
  ASSERT_TRUE(stub_->Decode(&ctx2, decode, &decoded).ok());
  EXPECT_EQ(decoded.tokens_size(), 1);
}

TEST_F(GenerationServiceTest, PrefillDecodeReleaseGoThroughTheBackend) {
  Start();
  Serve();
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  v1::PrefillRequest prefill;
  prefill.mutable_prompt()->set_text("Once upon a time");
  prefill.mutable_sampling()->set_top_logprobs(2);
  v1::PrefillResponse prefilled;
  ASSERT_TRUE(stub_->Prefill(&ctx, prefill, &prefilled).ok());
  EXPECT_EQ(prefilled.session_id(), "session-1");
  EXPECT_EQ(prefilled.prompt_tokens(), 5u);
  EXPECT_EQ(prefilled.token().id(), 403);
  EXPECT_EQ(prefilled.token().text(), " Once");
  ASSERT_TRUE(prefilled.token().has_logprob());
  EXPECT_FLOAT_EQ(prefilled.token().logprob(), -0.5f);
  ASSERT_EQ(prefilled.token().top_logprobs_size(), 2);
  EXPECT_EQ(prefilled.token().top_logprobs(1).id(), 407);
  EXPECT_EQ(backend_.last_request_.sampling.top_logprobs, 2);

  grpc::ClientContext ctx2;
  v1::DecodeRequest decode;
  decode.set_session_id("session-1");
  decode.set_num_tokens(3);
  v1::DecodeResponse decoded;
  ASSERT_TRUE(stub_->Decode(&ctx2, decode, &decoded).ok());
  EXPECT_EQ(decoded.tokens_size(), 3);
  EXPECT_FALSE(decoded.tokens(0).has_logprob());
  EXPECT_EQ(decoded.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(decoded.usage().generated_tokens(), 4u);

  grpc::ClientContext ctx3;
  decode.set_session_id("nope");
  EXPECT_EQ(stub_->Decode(&ctx3, decode, &decoded).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext ctx4;
  v1::ReleaseRequest release;
  release.set_session_id("session-1");
  v1::ReleaseResponse released;
  EXPECT_TRUE(stub_->Release(&ctx4, release, &released).ok());
  EXPECT_TRUE(inflight_.WaitUntilIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
}

TEST_F(GenerationServiceTest, InvalidRequestsAreRefusedBeforeTheBackend) {
  Start();
  Serve();
  service_->AttachBackend(&backend_);
  grpc::ClientContext ctx;
  v1::PrefillRequest prefill;  // no prompt
  v1::PrefillResponse prefilled;
  grpc::Status status = stub_->Prefill(&ctx, prefill, &prefilled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext ctx2;
  prefill.mutable_prompt()->set_text("Once");
  prefill.mutable_sampling()->set_max_new_tokens(5000);
  status = stub_->Prefill(&ctx2, prefill, &prefilled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--max-new-tokens"), std::string::npos);
}

TEST_F(GenerationServiceTest, TokenizeAndDetokenizeRoundTrip) {
  Start();
  Serve();
  grpc::ClientContext ctx;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hello world");
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(stub_->Tokenize(&ctx, tokenize, &tokens).ok());
  EXPECT_EQ(std::vector<int32_t>(tokens.token_ids().begin(), tokens.token_ids().end()),
            (std::vector<int32_t>{1, 346, 306, 414, 263, 304, 341}));
  EXPECT_EQ(tokens.pieces_size(), tokens.token_ids_size());

  grpc::ClientContext ctx2;
  v1::DetokenizeRequest detokenize;
  *detokenize.mutable_token_ids() = tokens.token_ids();
  v1::DetokenizeResponse text;
  ASSERT_TRUE(stub_->Detokenize(&ctx2, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "Hello world");

  grpc::ClientContext ctx3;
  detokenize.add_token_ids(99999);
  const grpc::Status status = stub_->Detokenize(&ctx3, detokenize, &text);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "token_ids[7]: 99999 is outside the vocabulary [0, 512)");
}

TEST_F(GenerationServiceTest, TokenIsRequiredWhenConfigured) {
  Start("s3cret");
  Serve();
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hello");
  v1::TokenizeResponse tokens;
  grpc::ClientContext without;
  EXPECT_EQ(stub_->Tokenize(&without, tokenize, &tokens).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext wrong;
  wrong.AddMetadata("authorization", "Bearer nope");
  EXPECT_EQ(stub_->Tokenize(&wrong, tokenize, &tokens).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext right;
  right.AddMetadata("authorization", "Bearer s3cret");
  EXPECT_TRUE(stub_->Tokenize(&right, tokenize, &tokens).ok());
}

}  // namespace
}  // namespace relayout::server
