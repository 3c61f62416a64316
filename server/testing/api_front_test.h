// ApiFrontTest: the fixture the API fronts' tests share (relayout.v1
// Generation, KServe v2, the OpenAI HTTP API): a ServerState holding the
// stories260K tokenizer from ../shared (the test skips without it), and the
// metrics, token, in-flight ledger and limits every front reads (ApiDeps).
// A derived fixture declares its backend and server after these, so they
// are destroyed first.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "engine/base/env.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/rpc/api_deps.h"

namespace relayout::server {

// A gRPC server on a free loopback port serving `service`, and a channel to
// it; null when it could not start.
inline std::unique_ptr<grpc::Server> StartLoopbackServer(grpc::Service* service,
                                                         std::shared_ptr<grpc::Channel>* channel) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server != nullptr) {
    *channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }
  return server;
}

class ApiFrontTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/tok512.bin";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
    Result<std::unique_ptr<Tokenizer>> t = LoadTokenizerFile(Env::Default(), path);
    ASSERT_TRUE(t.ok()) << t.status();
    state_.SetTokenizer(std::shared_ptr<const Tokenizer>(std::move(*t)));
  }

  // The deps a front is built with; token "" requires none.
  ApiDeps Deps(const std::string& token) {
    auth_ = BearerTokenAuth(token);
    return ApiDeps{&state_, &metrics_, &auth_, &inflight_, limits_};
  }

  // LOADING -> CONVERTING -> SERVING.
  void MoveToServing() {
    ASSERT_TRUE(state_.SetState(LifecycleState::kConverting));
    ASSERT_TRUE(state_.SetState(LifecycleState::kServing));
  }

  ServerState state_;
  ServerMetrics metrics_;
  BearerTokenAuth auth_;
  InflightCalls inflight_;
  ServingLimits limits_;
};

}  // namespace relayout::server
