// AdminService over a real gRPC server on loopback, with the
// RelayoutController in front of either the real serving engine over
// stories260K (loaded native: a relayout streams progress and a report
// while a Generate stream keeps its tokens; refusals by the controller and
// the engine) or a scripted backend whose relayout the test drives tensor
// by tensor (one at a time, client cancel, callbacks after the call ended).
#include "server/rpc/admin_service.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <thread>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "engine/model/model_placement.h"
#include "engine/tokenizer/checkpoint_tokenizer.h"
#include "kernels/cpu/runtime/cpu_features.h"
#include "relayout/v1/generation.grpc.pb.h"
#include "server/rpc/engine_generation_backend.h"
#include "server/rpc/generation_service.h"
#include "server/testing/api_front_test.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

const std::string kStories =
    std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.safetensors";

// A server on a free loopback port with every service given, and a channel
// to it; null when it could not start.
std::unique_ptr<grpc::Server> StartServer(std::initializer_list<grpc::Service*> services,
                                          std::shared_ptr<grpc::Channel>* channel) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server != nullptr) {
    *channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }
  return server;
}

// What one Relayout call received.
struct RelayoutCall {
  std::vector<v1::RelayoutProgress> messages;
  grpc::Status status;
};

RelayoutCall CallRelayout(v1::Admin::Stub* stub, const std::string& layout,
                          const std::string& budget = "", const std::string& token = "") {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::RelayoutRequest request;
  request.set_layout(layout);
  request.set_budget(budget);
  RelayoutCall call;
  auto reader = stub->Relayout(&ctx, request);
  v1::RelayoutProgress m;
  while (reader->Read(&m)) call.messages.push_back(m);
  call.status = reader->Finish();
  return call;
}

// ---------------------------------------------------------------------------
// The real serving engine.

class AdminServiceEngineTest : public ApiFrontTest {
 protected:
  void SetUp() override {
    ApiFrontTest::SetUp();
    if (IsSkipped()) return;
    if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories << " missing";
    LoadOptions load_options;
    load_options.model_path = kStories;
    load_options.device = "cpu";
    load_options.layout = "native";
    Result<PreparedLoad> load = PrepareLoad(Env::Default(), load_options);
    ASSERT_TRUE(load.ok()) << load.status();
    Result<std::unique_ptr<Tokenizer>> tokenizer =
        LoadCheckpointTokenizer(Env::Default(), load->checkpoint);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    auto ledger = std::make_unique<MemoryLedger>();
    Result<PlacedWeights> weights = ConvertForLoad(*load, ledger.get(), nullptr, nullptr, nullptr);
    ASSERT_TRUE(weights.ok()) << weights.status();
    const uint64_t weight_bytes = load->plan.plan.weight_bytes;
    LoadedModel model{std::move(*load), std::move(ledger), std::move(*weights),
                      std::shared_ptr<const Tokenizer>(std::move(*tokenizer)), limits_};
    EngineBackendOptions options;
    options.kv_cache_bytes = 16 << 20;
    options.threads = 2;
    Result<std::unique_ptr<EngineGenerationBackend>> backend =
        EngineGenerationBackend::Create(std::move(model), &metrics_, options);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
    controller_ = std::make_unique<RelayoutController>(&state_, &metrics_);
    controller_->AttachBackend(backend_.get(), DeviceCaps{kernels::DetectCpuFeatures()},
                               weight_bytes);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  void Start(const std::string& token = "") {
    const ApiDeps deps = Deps(token);
    generation_ = std::make_unique<GenerationService>(deps);
    generation_->AttachBackend(backend_.get());
    admin_ = std::make_unique<AdminService>(controller_.get(), deps);
    std::shared_ptr<grpc::Channel> channel;
    server_ = StartServer({generation_.get(), admin_.get()}, &channel);
    ASSERT_NE(server_, nullptr);
    admin_stub_ = v1::Admin::NewStub(channel);
    generation_stub_ = v1::Generation::NewStub(channel);
    MoveToServing();
  }

  // Greedy token ids of a Generate stream.
  std::vector<int32_t> Generate(const std::string& prompt, uint32_t tokens,
                                std::promise<void>* first_message = nullptr) {
    grpc::ClientContext ctx;
    v1::GenerateRequest r;
    r.mutable_prompt()->set_text(prompt);
    r.mutable_sampling()->set_temperature(0);
    r.mutable_sampling()->set_max_new_tokens(tokens);
    r.mutable_sampling()->set_ignore_eos(true);
    auto reader = generation_stub_->Generate(&ctx, r);
    std::vector<int32_t> ids;
    v1::GenerateResponse m;
    while (reader->Read(&m)) {
      if (first_message != nullptr && ids.empty()) first_message->set_value();
      for (const v1::Token& t : m.tokens()) ids.push_back(t.id());
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return ids;
  }

  std::unique_ptr<EngineGenerationBackend> backend_;
  std::unique_ptr<RelayoutController> controller_;
  std::unique_ptr<GenerationService> generation_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Admin::Stub> admin_stub_;
  std::unique_ptr<v1::Generation::Stub> generation_stub_;
};

TEST_F(AdminServiceEngineTest, RelayoutStreamsProgressThenTheReportWhileGenerateKeepsItsTokens) {
  Start();
  state_.SetDescription(ModelDescription{});
  const std::vector<int32_t> reference = Generate("Once upon a time", 200);
  ASSERT_EQ(reference.size(), 200u);

  std::promise<void> first_tokens;
  std::future<void> started = first_tokens.get_future();
  std::future<std::vector<int32_t>> during = std::async(
      std::launch::async, [&] { return Generate("Once upon a time", 200, &first_tokens); });
  started.wait();
  const RelayoutCall call = CallRelayout(admin_stub_.get(), "rowgroup-g8k8");
  EXPECT_EQ(during.get(), reference);

  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  ASSERT_GE(call.messages.size(), 2u);  // at least one tensor, then the end
  uint32_t done = 0;
  for (size_t i = 0; i + 1 < call.messages.size(); ++i) {
    const v1::RelayoutProgress& m = call.messages[i];
    EXPECT_FALSE(m.has_report()) << i;
    EXPECT_GE(m.tensors_done(), done);
    EXPECT_GT(m.tensors_done(), 0u);
    EXPECT_LE(m.tensors_done(), m.tensors_total());
    EXPECT_LE(m.bytes_done(), m.bytes_total());
    EXPECT_FALSE(m.tensor().empty());
    EXPECT_EQ(m.layout(), "rowgroup-g8k8");
    done = m.tensors_done();
  }
  const v1::RelayoutProgress& last = call.messages.back();
  ASSERT_TRUE(last.has_report());
  EXPECT_GT(last.tensors_total(), 0u);
  EXPECT_EQ(last.tensors_done(), last.tensors_total());
  EXPECT_EQ(last.bytes_done(), last.bytes_total());
  EXPECT_EQ(last.ratio(), 1.0);
  const v1::RelayoutReport& report = last.report();
  EXPECT_EQ(report.budget_bytes(), uint64_t{64} << 20);  // the default
  EXPECT_GT(report.weights_bytes(), 0u);
  EXPECT_GT(report.measured_peak_bytes(), 0u);
  EXPECT_LE(report.measured_peak_bytes(), report.weights_bytes() + report.budget_bytes());
  EXPECT_TRUE(report.tensors().empty());

  // GetModelInfo's layouts follow the weights.
  const auto layout_of = [&](const std::string& role) {
    const ServerState::Snapshot s = state_.Get();
    for (const TensorClassSummary& c : s.description->tensor_classes) {
      if (c.role == role) return c.layout;
    }
    return std::string("(none)");
  };
  EXPECT_EQ(state_.Get().description->layout_mode, "rowgroup-g8k8");
  EXPECT_EQ(layout_of("attn_q"), "rowgroup-g8k8");
  EXPECT_EQ(layout_of("attn_norm"), "native");

  // Served in the new layout, the model gives the same tokens; and back.
  EXPECT_EQ(Generate("Once upon a time", 200), reference);
  const RelayoutCall back = CallRelayout(admin_stub_.get(), "native", "5%");
  ASSERT_TRUE(back.status.ok()) << back.status.error_message();
  EXPECT_EQ(back.messages.back().tensors_total(), last.tensors_total());
  EXPECT_EQ(Generate("Once upon a time", 200), reference);
  EXPECT_EQ(state_.Get().description->layout_mode, "native");
  EXPECT_EQ(layout_of("attn_q"), "native");
}

TEST_F(AdminServiceEngineTest, RelayoutToTheLayoutsItHasEndsAtOnceWithAReport) {
  Start();
  const RelayoutCall call = CallRelayout(admin_stub_.get(), "native");
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  ASSERT_EQ(call.messages.size(), 1u);
  EXPECT_TRUE(call.messages[0].has_report());
  EXPECT_EQ(call.messages[0].tensors_total(), 0u);
  EXPECT_EQ(call.messages[0].ratio(), 1.0);
}

TEST_F(AdminServiceEngineTest, UnknownLayoutOrBudgetIsInvalidArgumentNamingIt) {
  Start();
  RelayoutCall call = CallRelayout(admin_stub_.get(), "no-such-layout");
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(call.status.error_message().find("no-such-layout"), std::string::npos)
      << call.status.error_message();
  EXPECT_TRUE(call.messages.empty());

  call = CallRelayout(admin_stub_.get(), "rowgroup-g8k8", "lots");
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(call.status.error_message().find("budget"), std::string::npos)
      << call.status.error_message();

  call = CallRelayout(admin_stub_.get(), "");
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(call.status.error_message().find("layout"), std::string::npos);
}

TEST_F(AdminServiceEngineTest, BudgetBelowATensorsScratchIsResourceExhausted) {
  Start();
  const RelayoutCall call = CallRelayout(admin_stub_.get(), "rowgroup-g8k8", "1");
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << call.status.error_message();
  EXPECT_TRUE(call.messages.empty());
}

TEST_F(AdminServiceEngineTest, MissingOrWrongTokenIsUnauthenticated) {
  Start("s3cret");
  EXPECT_EQ(CallRelayout(admin_stub_.get(), "native").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallRelayout(admin_stub_.get(), "native", "", "wrong").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const RelayoutCall ok = CallRelayout(admin_stub_.get(), "native", "", "s3cret");
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST_F(AdminServiceEngineTest, DrainingIsUnavailable) {
  Start();
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  const RelayoutCall call = CallRelayout(admin_stub_.get(), "rowgroup-g8k8");
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(call.status.error_message().find("draining"), std::string::npos);
}

// ---------------------------------------------------------------------------
// A scripted relayout: the test converts each tensor and ends the job.

class ScriptedRelayoutBackend final : public GenerationBackend {
 public:
  uint64_t StartSession(GenerationRequest, StartCallback) override { return 0; }
  void Decode(const std::string&, int64_t, DecodeCallback) override {}
  Status Release(const std::string&) override { return Status::OK(); }
  Result<uint64_t> StreamGenerate(GenerationRequest, TokensCallback, DoneCallback) override {
    return Status::Unimplemented("scripted backend");
  }
  void Cancel(uint64_t) override {}
  void CancelAll() override {}

  // As the engine: one relayout at a time; a plan of `steps` tensors.
  Result<LiveRelayoutPlan> StartRelayout(RelayoutJobOptions options) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_.has_value()) {
      return Status::FailedPrecondition("relayout", "another relayout is running");
    }
    LiveRelayoutPlan plan;
    plan.steps.resize(steps);
    for (LiveRelayoutStep& s : plan.steps) s.bytes = 1000;
    plan.bytes_to_convert = 1000 * steps;
    plan.weight_bytes = 5000;
    plan.budget_bytes = options.budget_bytes;
    if (options.on_start) options.on_start(plan);
    job_ = std::move(options);
    done_ = 0;
    ++started_;
    return plan;
  }
  // Records the cancel; the test ends the job (as the engine does later,
  // after the tensor being converted).
  void CancelRelayout() override { cancels_.fetch_add(1); }

  // One more tensor converted.
  void Step() {
    std::shared_ptr<ConversionObserver> observer;
    size_t done = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      observer = job_->observer;
      done = ++done_;
    }
    TensorConversionReport t;
    t.internal_name = StrCat("blk.", done, ".attn_q");
    t.layout = "rowgroup-g8k8";
    t.bytes = 1000;
    observer->OnTensorConverted(t, done, steps, MemoryLedgerSnapshot{});
  }
  void End(const Status& status) {
    std::function<void(const Status&, const RelayoutReport&)> on_done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      on_done = std::move(job_->on_done);
      job_.reset();
    }
    RelayoutReport report;
    report.weights_bytes = 5000;
    report.budget_bytes = 64 << 20;
    report.measured_peak_bytes = 5100;
    on_done(status, report);
  }
  int started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

  const size_t steps = 3;
  std::atomic<int> cancels_{0};

 private:
  std::mutex mu_;
  std::optional<RelayoutJobOptions> job_;  // GUARDED_BY(mu_)
  size_t done_ = 0;                        // GUARDED_BY(mu_)
  int started_ = 0;                        // GUARDED_BY(mu_)
};

class AdminServiceScriptedTest : public ApiFrontTest {
 protected:
  void SetUp() override {
    ApiFrontTest::SetUp();
    if (IsSkipped()) return;
    controller_ = std::make_unique<RelayoutController>(&state_, &metrics_);
    controller_->AttachBackend(&backend_, DeviceCaps{kernels::DetectCpuFeatures()}, 5000);
    admin_ = std::make_unique<AdminService>(controller_.get(), Deps(""));
    std::shared_ptr<grpc::Channel> channel;
    server_ = StartServer({admin_.get()}, &channel);
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Admin::NewStub(channel);
    MoveToServing();
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Waits until the backend has started `n` relayouts in all.
  void WaitStarted(int n) {
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
    while (backend_.started() < n && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(backend_.started(), n);
  }

  void WaitIdle() { EXPECT_TRUE(inflight_.WaitUntilIdle(Clock::now() + std::chrono::seconds(10))); }

  ScriptedRelayoutBackend backend_;  // outlives the server (declared before it)
  std::unique_ptr<RelayoutController> controller_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Admin::Stub> stub_;
};

TEST_F(AdminServiceScriptedTest, SecondRelayoutWhileOneRunsIsFailedPrecondition) {
  std::future<RelayoutCall> first =
      std::async(std::launch::async, [this] { return CallRelayout(stub_.get(), "rowgroup-g8k8"); });
  WaitStarted(1);
  const RelayoutCall second = CallRelayout(stub_.get(), "rowgroup-g8k8");
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << second.status.error_message();
  EXPECT_TRUE(second.messages.empty());

  for (size_t i = 0; i < backend_.steps; ++i) backend_.Step();
  backend_.End(Status::OK());
  const RelayoutCall call = first.get();
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  ASSERT_GE(call.messages.size(), 1u);
  const v1::RelayoutProgress& last = call.messages.back();
  ASSERT_TRUE(last.has_report());
  EXPECT_EQ(last.tensors_done(), 3u);
  EXPECT_EQ(last.tensors_total(), 3u);
  EXPECT_EQ(last.bytes_done(), 3000u);
  EXPECT_EQ(last.ratio(), 1.0);
  EXPECT_EQ(last.tensor(), "blk.3.attn_q");
  EXPECT_EQ(last.report().measured_peak_bytes(), 5100u);
  EXPECT_EQ(backend_.cancels_.load(), 0);
}

TEST_F(AdminServiceScriptedTest, ClientCancelCancelsTheRelayoutAndALaterOneIsAccepted) {
  grpc::ClientContext ctx;
  v1::RelayoutRequest request;
  request.set_layout("rowgroup-g8k8");
  auto reader = stub_->Relayout(&ctx, request);
  WaitStarted(1);
  backend_.Step();
  v1::RelayoutProgress m;
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.tensors_done(), 1u);
  EXPECT_EQ(m.tensors_total(), 3u);
  EXPECT_EQ(m.tensor(), "blk.1.attn_q");
  EXPECT_EQ(m.layout(), "rowgroup-g8k8");
  EXPECT_FALSE(m.has_report());

  ctx.TryCancel();
  while (reader->Read(&m)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  WaitIdle();  // the reactor is gone
  EXPECT_EQ(backend_.cancels_.load(), 1);

  // The engine's callbacks after the call ended: they touch nothing.
  backend_.Step();
  backend_.End(Status::Cancelled("relayout", "cancelled"));

  std::future<RelayoutCall> later =
      std::async(std::launch::async, [this] { return CallRelayout(stub_.get(), "native"); });
  WaitStarted(2);
  backend_.End(Status::OK());
  const RelayoutCall call = later.get();
  EXPECT_TRUE(call.status.ok()) << call.status.error_message();
  ASSERT_FALSE(call.messages.empty());
  EXPECT_TRUE(call.messages.back().has_report());
  EXPECT_EQ(backend_.cancels_.load(), 1);
}

TEST_F(AdminServiceScriptedTest, RelayoutThatFailsEndsTheCallWithItsError) {
  std::future<RelayoutCall> call =
      std::async(std::launch::async, [this] { return CallRelayout(stub_.get(), "rowgroup-g8k8"); });
  WaitStarted(1);
  backend_.Step();
  backend_.End(Status::DataLoss("blk.2.attn_q", "upload failed"));
  const RelayoutCall result = call.get();
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_NE(result.status.error_message().find("blk.2.attn_q"), std::string::npos);
  for (const v1::RelayoutProgress& m : result.messages) EXPECT_FALSE(m.has_report());
}

TEST_F(AdminServiceScriptedTest, CallsAreCountedByCode) {
  std::future<RelayoutCall> call =
      std::async(std::launch::async, [this] { return CallRelayout(stub_.get(), "rowgroup-g8k8"); });
  WaitStarted(1);
  EXPECT_EQ(CallRelayout(stub_.get(), "rowgroup-g8k8").status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  backend_.End(Status::OK());
  EXPECT_TRUE(call.get().status.ok());
  WaitIdle();
  const std::string text = metrics_.Serialize();
  EXPECT_NE(text.find("rpc=\"Relayout\""), std::string::npos);
  EXPECT_NE(text.find("FAILED_PRECONDITION"), std::string::npos);
}

}  // namespace
}  // namespace relayout::server
