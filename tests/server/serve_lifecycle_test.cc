// relayoutd serve's lifecycle with generation end to end: health and the
// Generation service during a conversion that takes seconds (a generated
// 1 GiB F16 checkpoint), a SIGTERM drain that lets an in-flight stream
// finish, and the metrics scraped by a real Prometheus server.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "relayout/v1/generation.grpc.pb.h"
#include "relayout/v1/model.grpc.pb.h"
#include "tests/server/serve_test_util.h"

extern char** environ;

namespace relayout {
namespace {

namespace fs = std::filesystem;
using namespace relayout::testing;  // NOLINT: test helpers
using grpc::health::v1::HealthCheckResponse;

TEST(ServeLifecycleTest, HealthFollowsASlowConversionAndSigtermDrainsAnInflightStream) {
  if (!fs::exists(kShared + "/models/tokenizers/llama2-32k/tokenizer.model")) GTEST_SKIP();
  const std::string model = OneGiBCheckpoint();
  if (model.empty()) GTEST_SKIP() << "no .venv to generate a checkpoint";
  // Converting before serving, the way that keeps /readyz 503 until the
  // last tensor is converted.
  auto server =
      StartServer({"--model", model, "--drain-grace", "120", "--serve-while-converting=false"});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  auto stub = v1::Generation::NewStub(channel);
  auto model_stub = v1::Model::NewStub(channel);

  // Until SERVING: health NOT_SERVING, Generate UNAVAILABLE with progress.
  bool saw_converting = false;
  bool saw_unavailable = false;
  std::vector<HealthCheckResponse::ServingStatus> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto health = CheckHealth(channel, "");
    if (seen.empty() || seen.back() != health) seen.push_back(health);
    if (health == HealthCheckResponse::SERVING) break;
    grpc::ClientContext ctx;
    v1::ModelInfo info;
    if (model_stub->GetModelInfo(&ctx, {}, &info).ok() &&
        info.state() == v1::LIFECYCLE_STATE_CONVERTING) {
      saw_converting = true;
      const StreamResult r = Generate(stub.get(), GreedyRequest("Hello", 2), 10);
      if (r.status.error_code() == grpc::StatusCode::UNAVAILABLE &&
          r.status.error_message().find("model not ready") != std::string::npos) {
        saw_unavailable = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), HealthCheckResponse::NOT_SERVING);
  ASSERT_EQ(seen.back(), HealthCheckResponse::SERVING) << server->Log();
  EXPECT_TRUE(saw_converting);
  EXPECT_TRUE(saw_unavailable);

  // A stream in flight when SIGTERM comes finishes; new work is refused.
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 4);
  request.mutable_sampling()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse first;
  ASSERT_TRUE(reader->Read(&first)) << server->Log();
  server->Signal(SIGTERM);
  ASSERT_TRUE(server->WaitForLog("lifecycle state=draining", 10000));
  EXPECT_EQ(CheckHealth(channel, ""), HealthCheckResponse::NOT_SERVING);
  const StreamResult refused = Generate(stub.get(), GreedyRequest("Hello", 2), 10);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.status.error_message(), "draining");
  StreamResult rest = ReadStream(reader.get());
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_EQ(first.tokens_size() + static_cast<int>(rest.ids.size()), 4);
  EXPECT_EQ(rest.finish, v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(server->Wait(60000), 0) << server->Log();
  EXPECT_NE(server->Log().find("stopped exit_code=0"), std::string::npos);
}

// --serve-while-converting (the default): SERVING as soon as the weights
// are loaded in their common layout; the conversion then runs between
// forward steps, GetModelInfo and /readyz say "converting" with its
// progress, a request served meanwhile gets the tokens of one served after,
// and the report at the end holds the bound.
TEST(ServeLifecycleTest, ServesWhileConvertingWithTheSameTokens) {
  if (!fs::exists(kShared + "/models/tokenizers/llama2-32k/tokenizer.model")) GTEST_SKIP();
  const std::string model = OneGiBCheckpoint();
  if (model.empty()) GTEST_SKIP() << "no .venv to generate a checkpoint";
  auto server = StartServer({"--model", model, "--layout", "rowgroup-g8k8", "--threads", "2"});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel, 120)) << server->Log();
  auto stub = v1::Generation::NewStub(channel);
  auto model_stub = v1::Model::NewStub(channel);

  // Right after SERVING the conversion is still running (a 1 GiB model's
  // tensors move between steps of the request below).
  grpc::ClientContext info_ctx;
  v1::ModelInfo during;
  ASSERT_TRUE(model_stub->GetModelInfo(&info_ctx, {}, &during).ok());
  EXPECT_EQ(during.state(), v1::LIFECYCLE_STATE_SERVING);
  const HttpResult ready = HttpGet(server->metrics_port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  if (during.converting()) {
    EXPECT_LT(during.progress().ratio(), 1.0);
    EXPECT_EQ(ready.body.rfind("serving\n", 0), 0u) << ready.body;
  }
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 12);
  request.mutable_sampling()->set_ignore_eos(true);
  const StreamResult while_converting = Generate(stub.get(), request, 120);
  ASSERT_TRUE(while_converting.status.ok()) << while_converting.status.error_message();

  ASSERT_TRUE(server->WaitForLog("conversion done live=true", 120000)) << server->Log();
  grpc::ClientContext after_ctx;
  v1::ModelInfo after;
  v1::GetModelInfoRequest with_tensors;
  with_tensors.set_include_tensors(true);
  ASSERT_TRUE(model_stub->GetModelInfo(&after_ctx, with_tensors, &after).ok());
  EXPECT_FALSE(after.converting());
  EXPECT_EQ(after.progress().ratio(), 1.0);
  EXPECT_GT(after.report().tensors_size(), 0);
  EXPECT_LE(after.report().measured_peak_bytes(),
            after.report().weights_bytes() + after.report().budget_bytes());
  for (const v1::TensorClass& c : after.tensor_classes()) {
    if (c.role() == "attn_q") EXPECT_EQ(c.layout(), "rowgroup-g8k8");
  }
  const HttpResult ready_after = HttpGet(server->metrics_port(), "/readyz");
  EXPECT_EQ(ready_after.body, "serving\n");
  const HttpResult metrics = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(metrics.body, "relayout_conversion_progress_ratio"), 1.0);

  const StreamResult converted = Generate(stub.get(), request, 120);
  ASSERT_TRUE(converted.status.ok()) << converted.status.error_message();
  EXPECT_EQ(while_converting.ids, converted.ids);
  EXPECT_EQ(while_converting.text, converted.text);
  EXPECT_TRUE(server->WaitForLog("conversion progress", 1000));
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// A child process killed when the test ends.
class Child {
 public:
  explicit Child(std::vector<std::string> argv, const std::string& log) {
    std::vector<char*> cargs;
    for (std::string& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    if (posix_spawn(&pid_, cargs[0], &actions, nullptr, cargs.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

// The value (a string in Prometheus' JSON) of the first sample of a query
// answer; "" when there is none yet.
std::string FirstSampleValue(const std::string& body) {
  const size_t at = body.find("\"value\":[");
  if (at == std::string::npos) return "";
  const size_t open = body.find('"', body.find(',', at));
  const size_t close = body.find('"', open + 1);
  if (open == std::string::npos || close == std::string::npos) return "";
  return body.substr(open + 1, close - open - 1);
}

TEST(ServePrometheusTest, PrometheusScrapesTheMeasuredPeak) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  if (!fs::exists("/usr/bin/prometheus")) GTEST_SKIP() << "prometheus not installed";
  auto server = StartServer({"--model", kStories});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));
  const std::optional<v1::ModelInfo> info = WaitConverted(channel);
  ASSERT_TRUE(info.has_value()) << server->Log();
  const uint64_t peak = info->report().measured_peak_bytes();
  ASSERT_GT(peak, 0u);

  char dir_template[] = "/tmp/relayoutd_prometheus.XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup{dir};
  std::ofstream(dir + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: relayoutd\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << server->metrics_port() << "']\n";
  const int port = FreePort();
  ASSERT_GT(port, 0);
  Child prometheus({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                    "--storage.tsdb.path=" + dir + "/data",
                    "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                   dir + "/prometheus.log");
  ASSERT_TRUE(prometheus.started());

  bool up = false;
  std::string value;
  for (int i = 0; i < 600 && value.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!up) {
      const HttpResult targets = HttpGet(port, "/api/v1/targets");
      up = targets.body.find("\"health\":\"up\"") != std::string::npos;
      continue;
    }
    value =
        FirstSampleValue(HttpGet(port, "/api/v1/query?query=relayout_conversion_peak_bytes").body);
  }
  ASSERT_TRUE(up) << ReadWholeFile(dir + "/prometheus.log");
  ASSERT_FALSE(value.empty());
  EXPECT_EQ(std::stod(value), static_cast<double>(peak));
}

}  // namespace
}  // namespace relayout
