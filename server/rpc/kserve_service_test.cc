// KserveService over a real gRPC server on loopback, with a fake backend
// (tokens "x", ids 300, 301, ...): health and metadata, ModelInfer,
// ModelStreamInfer (per-token responses, several requests on one stream,
// errors in error_message, empty final responses, cancellation, the drain's
// final responses), admission and metrics.
#include "server/rpc/kserve_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "server/testing/api_front_test.h"
#include "server/testing/fake_generation_backend.h"
#include "server/testing/kserve_requests.h"

namespace relayout::server {
namespace {

using testing::KserveRequestBuilder;
using testing::OutputText;

constexpr char kModel[] = "stories260K";

using StreamReaderWriter =
    grpc::ClientReaderWriter<inference::ModelInferRequest, inference::ModelStreamInferResponse>;

bool FinalFlag(const inference::ModelInferResponse& r) {
  auto it = r.parameters().find("triton_final_response");
  return it != r.parameters().end() && it->second.bool_param();
}

// Accepts every stream and drops its callbacks without calling them.
class DroppingBackend final : public GenerationBackend {
 public:
  uint64_t StartSession(GenerationRequest, StartCallback) override { return 0; }
  void Decode(const std::string&, int64_t, DecodeCallback) override {}
  Status Release(const std::string&) override { return Status::OK(); }
  Result<uint64_t> StreamGenerate(GenerationRequest, TokensCallback, DoneCallback) override {
    return uint64_t{1};
  }
  void Cancel(uint64_t) override {}
  void CancelAll() override {}
};

class KserveServiceTest : public ApiFrontTest {
 protected:
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  void Start(const std::string& token = "") {
    service_ = std::make_unique<KserveService>(KserveServiceDeps{Deps(token), kModel});
    std::shared_ptr<grpc::Channel> channel;
    server_ = StartLoopbackServer(service_.get(), &channel);
    ASSERT_NE(server_, nullptr);
    stub_ = inference::GRPCInferenceService::NewStub(channel);
  }

  void Serve() { MoveToServing(); }
  void StartServing() {
    Start();
    Serve();
    service_->AttachBackend(&backend_);
  }

  static KserveRequestBuilder Request(const std::string& id, int32_t max_tokens, bool stream) {
    KserveRequestBuilder b(kModel);
    b.Id(id).Bytes("text_input", {"Once upon a time"}).Int32("max_tokens", max_tokens);
    if (stream) b.Bool("stream", true);
    return b;
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext ctx;
    return stub_->ModelInfer(&ctx, request, response);
  }

  void WaitIdle() {
    EXPECT_TRUE(
        inflight_.WaitUntilIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  }

  bool MetricsHave(const std::string& line) {
    return metrics_.Serialize().find(line) != std::string::npos;
  }
  // A counter's value; 0 while the series does not exist.
  int64_t Counter(const std::string& series) {
    const std::string text = metrics_.Serialize();
    const size_t at = text.find(series + " ");
    if (at == std::string::npos) return 0;
    return std::stoll(text.substr(at + series.size() + 1));
  }

  FakeGenerationBackend backend_;  // outlives the server (declared before it)
  std::unique_ptr<KserveService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(KserveServiceTest, LiveAlwaysReadyOnlyWhileServingWithABackend) {
  Start();
  grpc::ClientContext c1, c2, c3, c4;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&c2, {}, &ready).ok());
  EXPECT_FALSE(ready.ready());
  Serve();
  service_->AttachBackend(&backend_);
  ASSERT_TRUE(stub_->ServerReady(&c3, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ModelReadyRequest model;
  model.set_name(kModel);
  inference::ModelReadyResponse model_ready;
  ASSERT_TRUE(stub_->ModelReady(&c4, model, &model_ready).ok());
  EXPECT_TRUE(model_ready.ready());
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  grpc::ClientContext c5;
  ASSERT_TRUE(stub_->ServerReady(&c5, {}, &ready).ok());
  EXPECT_FALSE(ready.ready());
}

TEST_F(KserveServiceTest, MetadataAndConfigDescribeTheServedModel) {
  Start();  // answered in any lifecycle state
  grpc::ClientContext c1, c2, c3, c4;
  inference::ServerMetadataResponse server;
  ASSERT_TRUE(stub_->ServerMetadata(&c1, {}, &server).ok());
  EXPECT_EQ(server.name(), "relayoutd");
  EXPECT_EQ(std::vector<std::string>(server.extensions().begin(), server.extensions().end()),
            (std::vector<std::string>{"model_configuration", "parameters"}));
  inference::ModelMetadataRequest request;
  request.set_name(kModel);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&c2, request, &metadata).ok());
  EXPECT_EQ(metadata.name(), kModel);
  EXPECT_EQ(metadata.platform(), "relayoutd");
  EXPECT_EQ(metadata.inputs(0).name(), "text_input");
  inference::ModelConfigRequest config_request;
  config_request.set_name(kModel);
  inference::ModelConfigResponse config;
  ASSERT_TRUE(stub_->ModelConfig(&c3, config_request, &config).ok());
  EXPECT_TRUE(config.config().model_transaction_policy().decoupled());
  request.set_name("other");
  EXPECT_EQ(stub_->ModelMetadata(&c4, request, &metadata).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(KserveServiceTest, ModelInferReturnsTheWholeTextAfterThePrompt) {
  StartServing();
  KserveRequestBuilder b = Request("r1", 5, false);
  b.Bool("return_finish_reason", true)
      .Bool("return_num_input_tokens", true)
      .Bool("return_num_output_tokens", true);
  inference::ModelInferResponse response;
  const grpc::Status status = Infer(b.request(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "r1");
  EXPECT_EQ(OutputText(response, "text_output"), "Once upon a timexxxxx");
  EXPECT_EQ(OutputText(response, "finish_reason"), "length");
  EXPECT_EQ(OutputText(response, "num_output_tokens"), "5");
  EXPECT_EQ(OutputText(response, "num_input_tokens"), "5");
  WaitIdle();
  EXPECT_TRUE(MetricsHave("relayout_requests_total{code=\"OK\",rpc=\"ModelInfer\"} 1"));
  EXPECT_TRUE(MetricsHave("relayout_generated_tokens_total 5"));
}

TEST_F(KserveServiceTest, ModelInferEndsWithInternalWhenTheBackendDropsItsCallbacks) {
  DroppingBackend dropping;
  Start();
  Serve();
  service_->AttachBackend(&dropping);
  inference::ModelInferResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status status = stub_->ModelInfer(&ctx, Request("r", 3, false).request(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
  WaitIdle();
  server_->Shutdown();
  server_.reset();
}

TEST_F(KserveServiceTest, ModelInferRefusesStreaming) {
  StartServing();
  inference::ModelInferResponse response;
  const grpc::Status status = Infer(Request("r", 5, true).request(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("ModelStreamInfer"), std::string::npos);
}

TEST_F(KserveServiceTest, ModelInferErrorsAreThoseOfGenerate) {
  StartServing();
  inference::ModelInferResponse response;
  KserveRequestBuilder missing(kModel);
  missing.Bool("stream", false);
  grpc::Status s = Infer(missing.request(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("text_input: missing"), std::string::npos);
  // Limits are checked by ToGenerationRequest, with Generate's message.
  s = Infer(Request("r", static_cast<int32_t>(limits_.max_new_tokens) + 1, false).request(),
            &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("--max-new-tokens"), std::string::npos) << s.error_message();
  KserveRequestBuilder huge(kModel);
  huge.Bytes("text_input", {std::string(limits_.max_prompt_tokens * 64 + 2048, 'a')});
  EXPECT_EQ(Infer(huge.request(), &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  KserveRequestBuilder other("gpt-9");
  other.Bytes("text_input", {"hi"});
  EXPECT_EQ(Infer(other.request(), &response).error_code(), grpc::StatusCode::NOT_FOUND);
  WaitIdle();
  EXPECT_TRUE(
      MetricsHave("relayout_requests_total{code=\"INVALID_ARGUMENT\",rpc=\"ModelInfer\"} 1"));
}

TEST_F(KserveServiceTest, NotReadyDrainingAndNoBackendAreRefused) {
  Start();
  inference::ModelInferResponse response;
  grpc::Status s = Infer(Request("r", 3, false).request(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("model not ready"), std::string::npos);
  Serve();
  EXPECT_EQ(Infer(Request("r", 3, false).request(), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  service_->AttachBackend(&backend_);
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  s = Infer(Request("r", 3, false).request(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "draining");
}

TEST_F(KserveServiceTest, TokenIsRequiredWhenConfigured) {
  Start("s3cret");
  Serve();
  service_->AttachBackend(&backend_);
  inference::ModelInferResponse response;
  EXPECT_EQ(Infer(Request("r", 3, false).request(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext right;
  right.AddMetadata("authorization", "Bearer s3cret");
  EXPECT_TRUE(stub_->ModelInfer(&right, Request("r", 3, false).request(), &response).ok());
  grpc::ClientContext metadata;
  inference::ServerMetadataResponse server;
  EXPECT_EQ(stub_->ServerMetadata(&metadata, {}, &server).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext probe;  // probes stay open
  inference::ServerLiveResponse live;
  EXPECT_TRUE(stub_->ServerLive(&probe, {}, &live).ok());
  grpc::ClientContext stream_ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&stream_ctx);
  stream->Write(Request("r", 3, true).request());
  inference::ModelStreamInferResponse message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(KserveServiceTest, StreamSendsOneResponsePerTokenGroupThenAnEmptyFinalOne) {
  StartServing();
  backend_.delay_ms = 2;
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  KserveRequestBuilder b = Request("s1", 10, true);
  b.Param("triton_enable_empty_final_response", true)
      .Bool("return_finish_reason", true)
      .Bool("return_num_output_tokens", true);
  ASSERT_TRUE(stream->Write(b.request()));
  ASSERT_TRUE(stream->WritesDone());
  inference::ModelStreamInferResponse message;
  std::string text;
  int tokens = 0, responses = 0, finals = 0;
  std::string finish;
  while (stream->Read(&message)) {
    ASSERT_EQ(message.error_message(), "");
    const inference::ModelInferResponse& r = message.infer_response();
    EXPECT_EQ(r.id(), "s1");
    if (FinalFlag(r)) {
      ++finals;
      EXPECT_EQ(r.outputs_size(), 0);
      continue;
    }
    EXPECT_EQ(finals, 0) << "a response after the final one";
    ++responses;
    text += OutputText(r, "text_output");
    tokens += std::stoi(OutputText(r, "num_output_tokens"));
    if (testing::HasOutput(r, "finish_reason")) finish = OutputText(r, "finish_reason");
  }
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(text, "xxxxxxxxxx");  // no prompt when streaming
  EXPECT_EQ(tokens, 10);
  EXPECT_GT(responses, 1);
  EXPECT_EQ(finals, 1);
  EXPECT_EQ(finish, "length");
  WaitIdle();
  EXPECT_TRUE(MetricsHave("relayout_requests_total{code=\"OK\",rpc=\"ModelStreamInfer\"} 1"));
  EXPECT_TRUE(MetricsHave("relayout_generated_tokens_total 10"));
}

TEST_F(KserveServiceTest, SeveralRequestsShareAStreamAndErrorsKeepItOpen) {
  StartServing();
  backend_.delay_ms = 1;
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  ASSERT_TRUE(stream->Write(Request("a", 6, true).request()));
  KserveRequestBuilder bad(kModel);
  bad.Id("bad").Bytes("text_input", {"x"}).Bytes("sampling_parameters", {"{nope"});
  ASSERT_TRUE(stream->Write(bad.request()));
  ASSERT_TRUE(stream->Write(Request("b", 4, false).request()));
  ASSERT_TRUE(stream->WritesDone());
  inference::ModelStreamInferResponse message;
  std::map<std::string, std::string> text;
  std::string error;
  while (stream->Read(&message)) {
    if (!message.error_message().empty()) {
      EXPECT_EQ(message.infer_response().id(), "bad");
      error = message.error_message();
      continue;
    }
    text[message.infer_response().id()] += OutputText(message.infer_response(), "text_output");
  }
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(error.find("sampling_parameters: JSON at byte"), std::string::npos) << error;
  EXPECT_EQ(text["a"], "xxxxxx");
  EXPECT_EQ(text["b"], "Once upon a timexxxx");  // not streaming: one response, prompt first
  WaitIdle();
  EXPECT_TRUE(MetricsHave("relayout_requests_total{code=\"OK\",rpc=\"ModelStreamInfer\"} 2"));
  EXPECT_TRUE(
      MetricsHave("relayout_requests_total{code=\"INVALID_ARGUMENT\",rpc=\"ModelStreamInfer\"} 1"));
}

TEST_F(KserveServiceTest, StreamRequestsWhileDrainingGetAnError) {
  StartServing();
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  ASSERT_TRUE(stream->Write(Request("late", 3, true).request()));
  ASSERT_TRUE(stream->WritesDone());
  inference::ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_EQ(message.error_message(), "draining");
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(KserveServiceTest, CancellingTheStreamCancelsItsRequests) {
  StartServing();
  backend_.delay_ms = 5;
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  ASSERT_TRUE(stream->Write(Request("long", 1000, true).request()));
  inference::ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));
  ctx.TryCancel();
  while (stream->Read(&message)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 200 && backend_.cancel_calls.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(backend_.cancel_calls.load(), 1);
  WaitIdle();
  EXPECT_EQ(inflight_.Describe(), "");
}

// A client that sends requests and never reads the responses: once 64 wait
// (beyond what the transport buffers) the stream stops reading requests, so
// the client's writes block rather than the server's queue growing without
// bound.
TEST_F(KserveServiceTest, AStreamStopsReadingWhileTooManyResponsesWait) {
  StartServing();
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  // Each is refused (another model) with a response that echoes its 1 MiB id.
  KserveRequestBuilder unknown("another-model");
  unknown.Id(std::string(1 << 20, 'i')).Bytes("text_input", {"x"});
  constexpr int kRequests = 200;
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < kRequests && stream->Write(unknown.request()); ++i) ++written;
  });
  const std::string refused =
      "relayout_requests_total{code=\"NOT_FOUND\",rpc=\"ModelStreamInfer\"}";
  int64_t seen = -1;
  for (int i = 0; i < 50 && Counter(refused) != seen && written.load() < kRequests; ++i) {
    seen = Counter(refused);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_LT(Counter(refused), kRequests);
  EXPECT_LT(written.load(), kRequests);
  ctx.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// The drain's grace expired: every running request still gets its final
// response, finish_reason "abort".
TEST_F(KserveServiceTest, AServerSideCancelEndsEachRequestWithItsFinalResponse) {
  StartServing();
  backend_.delay_ms = 5;
  grpc::ClientContext ctx;
  std::unique_ptr<StreamReaderWriter> stream = stub_->ModelStreamInfer(&ctx);
  KserveRequestBuilder b = Request("long", 1000, true);
  b.Bool("return_finish_reason", true).Param("triton_enable_empty_final_response", true);
  ASSERT_TRUE(stream->Write(b.request()));
  inference::ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));
  backend_.CancelAll();
  std::string finish;
  bool final_seen = false;
  while (!final_seen && stream->Read(&message)) {
    const inference::ModelInferResponse& r = message.infer_response();
    if (testing::HasOutput(r, "finish_reason")) finish = OutputText(r, "finish_reason");
    final_seen = FinalFlag(r);
  }
  EXPECT_TRUE(final_seen);
  EXPECT_EQ(finish, "abort");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  WaitIdle();
}

}  // namespace
}  // namespace relayout::server
