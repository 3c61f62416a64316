// Helpers shared by the end-to-end tests of `relayoutd serve`: starting a
// server, waiting for SERVING, reading /metrics, generated checkpoints, and
// small clients of the Generation service.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "relayout/v1/generation.grpc.pb.h"
#include "relayout/v1/model.grpc.pb.h"
#include "tests/generated_checkpoint.h"
#include "tests/server/server_process.h"
#include "tests/subprocess.h"

namespace relayout::testing {

inline const std::string kShared = RELAYOUT_SHARED_DIR;
inline const std::string kStories = kShared + "/models/stories260K/model.safetensors";

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

inline std::unique_ptr<ServerProcess> StartServer(const std::vector<std::string>& args) {
  std::string error;
  std::unique_ptr<ServerProcess> server = ServerProcess::Start(args, &error);
  EXPECT_NE(server, nullptr) << error;
  return server;
}

inline std::shared_ptr<grpc::Channel> Insecure(const ServerProcess& server) {
  return grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
}

inline grpc::health::v1::HealthCheckResponse::ServingStatus CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, request, &response);
  return s.ok() ? response.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
}

// Waits up to timeout_s for the Model service to be SERVING.
inline bool WaitServing(const std::shared_ptr<grpc::Channel>& channel, int timeout_s = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (CheckHealth(channel, "relayout.v1.Model") ==
        grpc::health::v1::HealthCheckResponse::SERVING) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// After WaitServing: polls GetModelInfo until the start-up conversion that
// runs while serving (--serve-while-converting) is done, for tests that read
// its report or metrics; the info then, or nullopt after timeout_s.
inline std::optional<v1::ModelInfo> WaitConverted(const std::shared_ptr<grpc::Channel>& channel,
                                                  bool include_tensors = false,
                                                  int timeout_s = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto stub = v1::Model::NewStub(channel);
  v1::GetModelInfoRequest request;
  request.set_include_tensors(include_tensors);
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    v1::ModelInfo info;
    if (stub->GetModelInfo(&ctx, request, &info).ok() &&
        info.state() == v1::LIFECYCLE_STATE_SERVING && !info.converting()) {
      return info;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

// The value of the first sample of `name` (with its labels, if any) in a
// Prometheus exposition; -1 when absent.
inline double MetricValue(const std::string& text, const std::string& name) {
  size_t at = 0;
  while ((at = text.find(name, at)) != std::string::npos) {
    const bool line_start = at == 0 || text[at - 1] == '\n';
    const char next = at + name.size() < text.size() ? text[at + name.size()] : '\0';
    if (line_start && (next == ' ' || next == '{')) {
      const size_t space =
          text.find(' ', text[at + name.size()] == '{' ? text.find('}', at) : at + name.size());
      return std::stod(text.substr(space + 1));
    }
    at += name.size();
  }
  return -1;
}

// 1 GiB of F16 weights at TinyLlama's width, with Llama 2's 32k tokenizer:
// its conversion takes seconds, its decode steps a good fraction of one (so
// streams are still running when a short drain grace expires).
inline std::string OneGiBCheckpoint() {
  return GeneratedCheckpoint("serve_f16_1gib",
                             {"--preset", "1gib", "--dtype", "F16", "--seed", "7"},
                             kShared + "/models/tokenizers/llama2-32k/tokenizer.model");
}

// Polls /metrics until no session is active and no KV block is used.
inline bool WaitKvFree(const ServerProcess& server, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    const HttpResult m = HttpGet(server.metrics_port(), "/metrics");
    if (m.status == 200 && MetricValue(m.body, "relayout_kv_cache_usage_ratio") == 0 &&
        MetricValue(m.body, "relayout_active_sessions") == 0 &&
        MetricValue(m.body, "relayout_queue_depth") == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// What one Generate call returned.
struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  int messages = 0;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;
};

inline StreamResult ReadStream(grpc::ClientReaderInterface<v1::GenerateResponse>* reader) {
  StreamResult out;
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
    ++out.messages;
    for (const v1::Token& t : message.tokens()) {
      out.ids.push_back(t.id());
      out.text += t.text();
    }
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      out.finish = message.finish_reason();
      out.usage = message.usage();
    }
  }
  out.status = reader->Finish();
  return out;
}

inline v1::GenerateRequest GreedyRequest(const std::string& prompt, uint32_t max_new_tokens) {
  v1::GenerateRequest request;
  request.mutable_prompt()->set_text(prompt);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_sampling()->set_max_new_tokens(max_new_tokens);
  return request;
}

inline StreamResult Generate(v1::Generation::StubInterface* stub,
                             const v1::GenerateRequest& request, int timeout_s = 60,
                             const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto reader = stub->Generate(&ctx, request);
  return ReadStream(reader.get());
}

}  // namespace relayout::testing
