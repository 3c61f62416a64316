// ServingDaemon in-process with a fake backend: start-up hands the converted
// model to the backend factory, and SIGTERM drains: new work is refused
// while a stream in flight runs to its end, then Run returns 0.
#include "server/daemon/serving_daemon.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "relayout/v1/generation.grpc.pb.h"
#include "relayout/v1/model.grpc.pb.h"
#include "server/testing/fake_generation_backend.h"

namespace relayout::server {
namespace {

const std::string kStories =
    std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.safetensors";

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(ServingDaemonTest, SigtermLetsAStreamInFlightFinishThenRunReturnsZero) {
  if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories << " missing";
  ServeOptions options;
  options.load.model_path = kStories;
  options.listen = StrCat("127.0.0.1:", FreePort());
  options.metrics_listen = "127.0.0.1:0";
  options.drain_grace_seconds = 20;
  ServingDaemon daemon(options);
  std::atomic<bool> factory_called{false};
  daemon.SetBackendFactory(
      [&](LoadedModel model, ServerMetrics* metrics) -> Result<std::unique_ptr<GenerationBackend>> {
        EXPECT_FALSE(model.weights.host.tensors.empty());
        EXPECT_NE(model.tokenizer, nullptr);
        EXPECT_EQ(model.load.checkpoint.config.vocab_size, 512);
        EXPECT_NE(metrics, nullptr);
        auto backend = std::make_unique<FakeGenerationBackend>();
        backend->delay_ms = 10;
        factory_called.store(true);
        return std::unique_ptr<GenerationBackend>(std::move(backend));
      });
  std::optional<Result<int>> result;
  std::thread runner([&] { result.emplace(daemon.Run()); });

  auto channel = grpc::CreateChannel(options.listen, grpc::InsecureChannelCredentials());
  auto model = v1::Model::NewStub(channel);
  auto generation = v1::Generation::NewStub(channel);
  bool serving = false;
  for (int i = 0; i < 1000 && !serving; ++i) {
    grpc::ClientContext ctx;
    v1::ModelInfo info;
    serving =
        model->GetModelInfo(&ctx, {}, &info).ok() && info.state() == v1::LIFECYCLE_STATE_SERVING;
    if (!serving) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(serving);
  EXPECT_TRUE(factory_called.load());

  grpc::ClientContext stream_ctx;
  v1::GenerateRequest request;
  request.mutable_prompt()->set_text("Once upon a time");
  request.mutable_sampling()->set_max_new_tokens(40);
  auto reader = generation->Generate(&stream_ctx, request);
  v1::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));
  int tokens = message.tokens_size();

  ::kill(::getpid(), SIGTERM);
  grpc::Status refused;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    v1::PrefillRequest prefill;
    prefill.mutable_prompt()->set_text("Once");
    v1::PrefillResponse response;
    refused = generation->Prefill(&ctx, prefill, &response);
    if (refused.error_code() == grpc::StatusCode::UNAVAILABLE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.error_message(), "draining");

  v1::GenerateResponse last;
  while (reader->Read(&message)) {
    tokens += message.tokens_size();
    last = message;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 40);
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);

  runner.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_EQ(**result, 0);
}

}  // namespace
}  // namespace relayout::server
