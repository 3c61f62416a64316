// relayoutd serve as users run it: a real process on loopback ports, real
// gRPC clients (generated stubs), the metrics endpoint over HTTP, signals,
// TLS and token auth.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "engine/text/json.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "relayout/v1/generation.grpc.pb.h"
#include "relayout/v1/model.grpc.pb.h"
#include "tests/generated_checkpoint.h"
#include "tests/server/serve_test_util.h"
#include "tests/server/server_process.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::GeneratedCheckpoint;
using testing::HttpGet;
using testing::HttpResult;
using testing::Insecure;
using testing::ProcessResult;
using testing::RunProcess;
using testing::ServerProcess;
using testing::StartServer;
using testing::WaitConverted;
using testing::WaitServing;

const std::string kShared = RELAYOUT_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K/model.safetensors";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

HealthCheckResponse::ServingStatus CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                               const std::string& service,
                                               grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status s = Health::NewStub(channel)->Check(&ctx, request, &response);
  if (status != nullptr) *status = s;
  return s.ok() ? response.status() : HealthCheckResponse::UNKNOWN;
}

// A larger checkpoint (174 MiB) generated once per build directory, with a
// tokenizer beside it, so that its conversion lasts long enough to watch.
std::string MidCheckpoint() {
  return GeneratedCheckpoint("serve_mid",
                             {"--hidden", "1024", "--layers", "4", "--heads", "16", "--kv-heads",
                              "4", "--ffn", "2816", "--vocab", "512", "--seed", "3"},
                             kShared + "/models/stories260K/tok512.bin");
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " missing";
  }
};

TEST_F(ServeTest, HealthGoesFromNotServingToServingWhileTheModelConverts) {
  const std::string model = MidCheckpoint();
  if (model.empty()) GTEST_SKIP() << "no .venv to generate a checkpoint";
  auto server = StartServer({"--model", model, "--workers", "1"});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  // Watch from the start: the first answer is NOT_SERVING, then SERVING.
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  HealthCheckRequest request;
  auto watch = Health::NewStub(channel)->Watch(&watch_ctx, request);
  auto model_stub = v1::Model::NewStub(channel);
  std::vector<HealthCheckResponse::ServingStatus> seen;
  bool saw_progress_state = false;
  HealthCheckResponse update;
  while (watch->Read(&update)) {
    seen.push_back(update.status());
    if (update.status() == HealthCheckResponse::SERVING) break;
    grpc::ClientContext ctx;
    v1::ModelInfo info;
    ASSERT_TRUE(model_stub->GetModelInfo(&ctx, {}, &info).ok());
    if (info.state() == v1::LIFECYCLE_STATE_LOADING ||
        info.state() == v1::LIFECYCLE_STATE_CONVERTING) {
      saw_progress_state = true;
    }
  }
  watch_ctx.TryCancel();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(seen.back(), HealthCheckResponse::SERVING);
  EXPECT_TRUE(saw_progress_state);
  // The services follow "" within the same state change; its log line
  // comes after.
  EXPECT_TRUE(server->WaitForLog("lifecycle state=serving previous=converting", 5000));
  EXPECT_EQ(CheckHealth(channel, "relayout.v1.Generation"), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(channel, "relayout.v1.Model"), HealthCheckResponse::SERVING);
  const std::string log = server->Log();
  EXPECT_NE(log.find("lifecycle state=converting previous=loading"), std::string::npos) << log;
  EXPECT_NE(log.find("conversion progress percent="), std::string::npos);
  EXPECT_NE(log.find("conversion done"), std::string::npos);
  EXPECT_NE(log.find("lifecycle state=serving previous=converting"), std::string::npos);
}

TEST_F(ServeTest, GetModelInfoHasTheConvertReportsFieldsAndPeak) {
  const std::string json_path = std::string(RELAYOUT_GENERATED_DIR) + "/serve_report.json";
  fs::create_directories(RELAYOUT_GENERATED_DIR);
  const ProcessResult convert =
      RunProcess({RELAYOUTD_BINARY, "convert", "--model", kStories, "--workers", "1", "--quiet",
                  "--report-json", json_path});
  ASSERT_EQ(convert.exit_code, 0) << convert.err;
  Result<JsonValue> json = ParseJson(ReadFile(json_path));
  ASSERT_TRUE(json.ok()) << json.status();

  // The start-up conversion as `convert` runs it (serving while converting
  // reports the live relayout's, whose tensors are the moved ones only).
  auto server =
      StartServer({"--model", kStories, "--workers", "1", "--serve-while-converting=false"});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));
  grpc::ClientContext ctx;
  v1::GetModelInfoRequest request;
  request.set_include_tensors(true);
  v1::ModelInfo info;
  ASSERT_TRUE(v1::Model::NewStub(channel)->GetModelInfo(&ctx, request, &info).ok());

  // Every key of the JSON report is a field of the same name.
  const auto* report_type = v1::RelayoutReport::descriptor();
  for (const auto& [key, value] : json->as_object()) {
    EXPECT_NE(report_type->FindFieldByName(key), nullptr) << key;
  }
  const JsonValue* tensors = json->Find("tensors");
  ASSERT_NE(tensors, nullptr);
  ASSERT_FALSE(tensors->as_array().empty());
  for (const auto& [key, value] : tensors->as_array()[0].as_object()) {
    EXPECT_NE(v1::TensorReport::descriptor()->FindFieldByName(key), nullptr) << key;
  }
  const v1::RelayoutReport& r = info.report();
  EXPECT_EQ(r.weights_bytes(), *json->Find("weights_bytes")->as_uint64());
  EXPECT_EQ(r.budget_bytes(), *json->Find("budget_bytes")->as_uint64());
  EXPECT_EQ(r.predicted_peak_bytes(), *json->Find("predicted_peak_bytes")->as_uint64());
  EXPECT_EQ(r.measured_peak_bytes(), *json->Find("measured_peak_bytes")->as_uint64());
  EXPECT_GT(r.measured_peak_bytes(), 0u);
  EXPECT_EQ(r.tensors_size(), static_cast<int>(tensors->as_array().size()));
  EXPECT_EQ(r.tensors(0).name(), tensors->as_array()[0].Find("name")->as_string());

  EXPECT_EQ(info.state(), v1::LIFECYCLE_STATE_SERVING);
  EXPECT_DOUBLE_EQ(info.progress().ratio(), 1.0);
  EXPECT_EQ(info.progress().tensors_done(), info.progress().tensors_total());
  EXPECT_EQ(info.model_path(), kStories);
  EXPECT_EQ(info.format(), "safetensors");
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.config().vocab_size(), 512);
  EXPECT_EQ(info.config().hidden_size(), 64);
  EXPECT_EQ(info.config().num_layers(), 5);
  EXPECT_EQ(info.config().num_kv_heads(), 4);
  ASSERT_GT(info.tensor_classes_size(), 0);
  uint64_t class_bytes = 0;
  for (const v1::TensorClass& c : info.tensor_classes()) {
    EXPECT_FALSE(c.layout().empty());
    EXPECT_EQ(c.dtype(), "F32");
    class_bytes += c.bytes();
  }
  EXPECT_EQ(class_bytes, r.weights_bytes());
  EXPECT_TRUE(info.error().empty());
}

TEST_F(ServeTest, MetricsExposeEveryNameAndTheMeasuredPeakAndPassPromtool) {
  auto server = StartServer({"--model", kStories});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));
  {
    grpc::ClientContext ctx;
    v1::TokenizeRequest request;
    request.set_text("Once upon a time");
    v1::TokenizeResponse response;
    ASSERT_TRUE(v1::Generation::NewStub(channel)->Tokenize(&ctx, request, &response).ok());
  }
  // The report and metrics of the conversion that runs while serving.
  const std::optional<v1::ModelInfo> converted = WaitConverted(channel);
  ASSERT_TRUE(converted.has_value()) << server->Log();
  const v1::ModelInfo& info = *converted;

  const HttpResult metrics = HttpGet(server->metrics_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.body;
  for (const char* name : {"relayout_weights_bytes{device=\"cpu\"}",
                           "relayout_conversion_budget_bytes{",
                           "relayout_conversion_predicted_peak_bytes{",
                           "relayout_conversion_peak_bytes{",
                           "relayout_conversion_scratch_peak_bytes{",
                           "relayout_conversion_staging_peak_bytes{",
                           "relayout_conversion_seconds{",
                           "relayout_conversion_progress_ratio{device=\"cpu\"} 1",
                           "relayout_tensors_converted_total{strategy=",
                           "relayout_tensor_conversion_seconds_bucket{",
                           "relayout_tensor_scratch_bytes_bucket{",
                           "relayout_requests_total{code=\"OK\",rpc=\"Tokenize\"} 1",
                           "relayout_request_duration_seconds_bucket{",
                           "relayout_time_to_first_token_seconds_bucket",
                           "relayout_time_per_output_token_seconds_bucket",
                           "relayout_prompt_tokens_total",
                           "relayout_prefix_cache_hit_tokens_total",
                           "relayout_generated_tokens_total",
                           "relayout_batch_size",
                           "relayout_queue_depth",
                           "relayout_active_sessions",
                           "relayout_kv_cache_usage_ratio",
                           "relayout_process_resident_memory_bytes",
                           "relayout_lifecycle_state{state=\"serving\"} 1",
                           "relayout_lifecycle_state{state=\"loading\"} 0",
                           "relayout_requests_running",
                           "relayout_model_load_seconds",
                           "vllm:num_requests_waiting",
                           "vllm:num_requests_running",
                           "vllm:kv_cache_usage_perc",
                           "vllm:gpu_cache_usage_perc"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  const std::string peak_key = "relayout_conversion_peak_bytes{device=\"cpu\"} ";
  const size_t at = text.find(peak_key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::stod(text.substr(at + peak_key.size())),
            static_cast<double>(info.report().measured_peak_bytes()));

  EXPECT_EQ(HttpGet(server->metrics_port(), "/healthz").status, 200);
  EXPECT_EQ(HttpGet(server->metrics_port(), "/readyz").status, 200);
  EXPECT_EQ(HttpGet(server->metrics_port(), "/nope").status, 404);

  if (std::string(RELAYOUT_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed";
  const std::string file = std::string(RELAYOUT_GENERATED_DIR) + "/serve_metrics.txt";
  std::ofstream(file) << text;
  const ProcessResult check =
      RunProcess({"/bin/sh", "-c", std::string(RELAYOUT_PROMTOOL) + " check metrics < " + file});
  // The one lint allowed: the vllm:* names an inference gateway's endpoint
  // picker reads contain ':' (a name reserved for recording rules), by that
  // protocol's choice. Every other finding fails.
  std::istringstream findings(check.out + check.err);
  for (std::string line; std::getline(findings, line);) {
    const bool gateway_name = line.rfind("vllm:", 0) == 0 &&
                              line.find("metric names should not contain ':'") != std::string::npos;
    EXPECT_TRUE(line.empty() || gateway_name) << line;
  }
}

// The ids llama.cpp gives for the ten strings of tokenize_llamacpp.json.
void ExpectTokenizerMatchesLlamaCpp(const std::string& model, const std::string& key) {
  Result<JsonValue> json = ParseJson(ReadFile(kShared + "/reference/tokenize_llamacpp.json"));
  ASSERT_TRUE(json.ok()) << json.status();
  const JsonValue* cases = json->Find(key);
  ASSERT_NE(cases, nullptr) << key;
  auto server = StartServer({"--model", model});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));
  auto stub = v1::Generation::NewStub(channel);
  for (const JsonValue& c : cases->as_array()) {
    const std::string& text = c.Find("text")->as_string();
    std::vector<int32_t> want;
    for (const JsonValue& id : c.Find("ids_with_bos")->as_array()) {
      want.push_back(static_cast<int32_t>(*id.as_int64()));
    }
    grpc::ClientContext ctx;
    v1::TokenizeRequest request;
    request.set_text(text);
    v1::TokenizeResponse response;
    ASSERT_TRUE(stub->Tokenize(&ctx, request, &response).ok()) << text;
    EXPECT_EQ(std::vector<int32_t>(response.token_ids().begin(), response.token_ids().end()), want)
        << text;

    grpc::ClientContext ctx2;
    v1::DetokenizeRequest detokenize;
    for (int32_t id : want) detokenize.add_token_ids(id);
    v1::DetokenizeResponse decoded;
    ASSERT_TRUE(stub->Detokenize(&ctx2, detokenize, &decoded).ok()) << text;
    EXPECT_EQ(decoded.text(), text);
  }
}

TEST_F(ServeTest, TokenizeMatchesLlamaCppOnStories260K) {
  ExpectTokenizerMatchesLlamaCpp(kStories, "tok512 (stories260K/llama2xs)");
}

TEST_F(ServeTest, TokenizeMatchesLlamaCppOnAidreams260KGguf) {
  ExpectTokenizerMatchesLlamaCpp(kShared + "/models/aidreams260K/model.gguf", "aidreams tok512");
}

TEST_F(ServeTest, ReflectionListsTheServices) {
  auto server = StartServer({"--model", kStories});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  using grpc::reflection::v1alpha::ServerReflection;
  using grpc::reflection::v1alpha::ServerReflectionRequest;
  using grpc::reflection::v1alpha::ServerReflectionResponse;
  grpc::ClientContext ctx;
  auto stream = ServerReflection::NewStub(channel)->ServerReflectionInfo(&ctx);
  ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  for (const char* want :
       {"relayout.v1.Generation", "relayout.v1.Model", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  request.set_file_containing_symbol("relayout.v1.Generation");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServeTest, SigtermDrainsAndExitsZero) {
  auto server = StartServer({"--model", kStories, "--drain-grace", "5"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(10000), 0) << server->Log();
  const std::string log = server->Log();
  EXPECT_NE(log.find("signal signal=SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("lifecycle state=draining previous=serving"), std::string::npos);
  EXPECT_NE(log.find("stopped exit_code=0"), std::string::npos);
}

TEST_F(ServeTest, StartupFailureExitsOneAndBadFlagsTwo) {
  const ProcessResult bad_flag =
      RunProcess({RELAYOUTD_BINARY, "serve", "--model", kStories, "--log-format", "xml"});
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_NE(bad_flag.err.find("--log-format"), std::string::npos) << bad_flag.err;

  const ProcessResult no_model = RunProcess(
      {RELAYOUTD_BINARY, "serve", "--model", "/nonexistent/model.gguf", "--listen", "127.0.0.1:0",
       "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  EXPECT_EQ(no_model.exit_code, 1);
  EXPECT_NE(no_model.err.find("start-up failed"), std::string::npos) << no_model.err;
}

TEST_F(ServeTest, ChatTemplateThatDoesNotCompileFailsStartUpNamingTheConstruct) {
  const std::string path = ::testing::TempDir() + "relayoutd_bad_chat_template.jinja";
  std::ofstream(path) << "{% extends 'base.jinja' %}\n";
  const ProcessResult r = RunProcess(
      {RELAYOUTD_BINARY, "serve", "--model", kStories, "--chat-template", path, "--listen",
       "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("start-up failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unsupported statement"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("extends"), std::string::npos) << r.err;
  std::filesystem::remove(path);
}

// A throwaway CA, a server certificate for 127.0.0.1 and a client
// certificate, made with openssl in a temporary directory.
class TlsFiles {
 public:
  TlsFiles() {
    char dir[] = "/tmp/relayoutd_tls.XXXXXX";
    dir_ = mkdtemp(dir);
    ok_ = Run("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
              "-subj /CN=test-ca") &&
          Issue("server", "subjectAltName=IP:127.0.0.1,DNS:localhost") &&
          Issue("client", "extendedKeyUsage=clientAuth");
  }
  ~TlsFiles() { fs::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Read(const std::string& name) const { return ReadFile(Path(name)); }

 private:
  bool Run(const std::string& command) {
    const ProcessResult r = RunProcess({"/bin/sh", "-c", "cd " + dir_ + " && " + command});
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.err;
    return r.exit_code == 0;
  }
  bool Issue(const std::string& name, const std::string& extension) {
    std::ofstream(Path(name + ".ext")) << extension << "\n";
    return Run("openssl req -newkey rsa:2048 -nodes -keyout " + name + ".key -out " + name +
               ".csr -subj /CN=" + name) &&
           Run("openssl x509 -req -in " + name +
               ".csr -CA ca.pem -CAkey ca.key -CAcreateserial "
               "-out " +
               name + ".pem -days 1 -extfile " + name + ".ext");
  }
  std::string dir_;
  bool ok_ = false;
};

grpc::Status GetInfo(const std::shared_ptr<grpc::Channel>& channel, const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::ModelInfo info;
  return v1::Model::NewStub(channel)->GetModelInfo(&ctx, {}, &info);
}

TEST_F(ServeTest, TlsAcceptsClientsThatTrustTheServerOnly) {
  TlsFiles tls;
  ASSERT_TRUE(tls.ok());
  auto server = StartServer({"--model", kStories, "--tls-cert", tls.Path("server.pem"), "--tls-key",
                             tls.Path("server.key")});
  ASSERT_NE(server, nullptr);
  grpc::SslCredentialsOptions trusted;
  trusted.pem_root_certs = tls.Read("ca.pem");
  EXPECT_TRUE(
      GetInfo(grpc::CreateChannel(server->grpc_address(), grpc::SslCredentials(trusted))).ok());
  EXPECT_FALSE(GetInfo(Insecure(*server)).ok());
}

TEST_F(ServeTest, MutualTlsRequiresAClientCertificate) {
  TlsFiles tls;
  ASSERT_TRUE(tls.ok());
  auto server = StartServer({"--model", kStories, "--tls-cert", tls.Path("server.pem"), "--tls-key",
                             tls.Path("server.key"), "--tls-client-ca", tls.Path("ca.pem")});
  ASSERT_NE(server, nullptr);
  grpc::SslCredentialsOptions with_cert;
  with_cert.pem_root_certs = tls.Read("ca.pem");
  with_cert.pem_cert_chain = tls.Read("client.pem");
  with_cert.pem_private_key = tls.Read("client.key");
  EXPECT_TRUE(
      GetInfo(grpc::CreateChannel(server->grpc_address(), grpc::SslCredentials(with_cert))).ok());
  grpc::SslCredentialsOptions without_cert;
  without_cert.pem_root_certs = tls.Read("ca.pem");
  EXPECT_FALSE(
      GetInfo(grpc::CreateChannel(server->grpc_address(), grpc::SslCredentials(without_cert)))
          .ok());
}

TEST_F(ServeTest, BearerTokenGuardsTheApiButNotHealth) {
  const std::string token_file = std::string(RELAYOUT_GENERATED_DIR) + "/serve_token";
  fs::create_directories(RELAYOUT_GENERATED_DIR);
  std::ofstream(token_file) << "t0k3n\n";
  auto server = StartServer({"--model", kStories, "--auth-token-file", token_file});
  ASSERT_NE(server, nullptr);
  auto channel = Insecure(*server);
  ASSERT_TRUE(WaitServing(channel));  // health needs no token
  EXPECT_EQ(GetInfo(channel).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetInfo(channel, "wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(GetInfo(channel, "t0k3n").ok());
}

}  // namespace
}  // namespace relayout
