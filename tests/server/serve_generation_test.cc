// relayoutd serve's Generation service end to end, from the C++ client:
// greedy output against llama2.c's, sessions, 16 concurrent streams,
// cancellation, session expiry, every limit and malformed request, and
// token auth on Generate. After each, the KV cache must be all free
// (/metrics) and the server still serving.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "relayout/v1/generation.grpc.pb.h"
#include "tests/server/serve_test_util.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
using namespace relayout::testing;  // NOLINT: test helpers
using Clock = std::chrono::steady_clock;

const std::string kReference = kShared + "/reference/stories260K/greedy_once_upon_a_time_n64.txt";

class ServeGenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " missing";
  }
  // Starts a stories260K server and waits for SERVING.
  bool Serve(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--model", kStories};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = StartServer(args);
    if (server_ == nullptr) return false;
    channel_ = Insecure(*server_);
    stub_ = v1::Generation::NewStub(channel_);
    return WaitServing(channel_);
  }
  // The server answers and holds no KV block.
  void ExpectStillServingAndAllFree() {
    EXPECT_TRUE(WaitKvFree(*server_)) << HttpGet(server_->metrics_port(), "/metrics").body;
    grpc::ClientContext ctx;
    v1::TokenizeRequest request;
    request.set_text("still here");
    v1::TokenizeResponse response;
    EXPECT_TRUE(stub_->Tokenize(&ctx, request, &response).ok());
  }

  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

TEST_F(ServeGenerationTest, GreedyGenerateEqualsLlama2cOutput) {
  ASSERT_TRUE(Serve());
  const StreamResult r = Generate(stub_.get(), GreedyRequest("Once upon a time", 60));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ("Once upon a time" + r.text + "\n", ReadWholeFile(kReference));
  EXPECT_EQ(r.usage.prompt_tokens(), 5u);
  EXPECT_EQ(r.usage.generated_tokens(), r.ids.size());
  EXPECT_NE(r.finish, v1::FINISH_REASON_UNSPECIFIED);
  ExpectStillServingAndAllFree();
}

// The same served from the host-reference device: the weights, the KV
// cache and the forward pass go through the device ABI, and the output is
// the same text. Concurrent streams batch on the device as on the CPU.
TEST_F(ServeGenerationTest, ServedFromTheHostReferenceDeviceTheTextIsTheSame) {
  ASSERT_TRUE(Serve({"--device", "hostref"}));
  const StreamResult r = Generate(stub_.get(), GreedyRequest("Once upon a time", 60));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ("Once upon a time" + r.text + "\n", ReadWholeFile(kReference));
  std::vector<std::thread> clients;
  std::atomic<int> equal{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      const StreamResult c = Generate(stub_.get(), GreedyRequest("Once upon a time", 60));
      if (c.status.ok() && c.text == r.text) equal.fetch_add(1);
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(equal.load(), 4);
  ExpectStillServingAndAllFree();
}

// Out of device memory while serving (the KV cache fits, a large prompt's
// activations do not): that request fails with RESOURCE_EXHAUSTED naming
// the workspace, and the server keeps serving the next one.
TEST_F(ServeGenerationTest, DeviceOutOfMemoryFailsOneRequestAndTheServerKeepsServing) {
  // 64 MiB: 1.1 MiB of weights, 62 MiB of KV cache, and under 1 MiB left,
  // which a short prompt's activations fit (17 KiB) and a 400-token one's
  // (1.1 MiB) do not.
  ::setenv("RELAYOUT_HOSTREF_MEMORY_BYTES", std::to_string(64 << 20).c_str(), 1);
  const bool serving =
      Serve({"--device", "hostref", "--kv-cache-bytes", "62MiB", "--budget", "1MiB"});
  ::unsetenv("RELAYOUT_HOSTREF_MEMORY_BYTES");
  ASSERT_TRUE(serving);
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "Once upon a time ";
  const StreamResult big = Generate(stub_.get(), GreedyRequest(long_prompt, 4));
  EXPECT_EQ(big.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << big.status.error_message();
  EXPECT_NE(big.status.error_message().find("forward workspace"), std::string::npos)
      << big.status.error_message();
  const StreamResult small = Generate(stub_.get(), GreedyRequest("Once upon a time", 60));
  ASSERT_TRUE(small.status.ok()) << small.status.error_message();
  EXPECT_EQ("Once upon a time" + small.text + "\n", ReadWholeFile(kReference));
  ExpectStillServingAndAllFree();
}

// Prefill, then Decode in steps, gives the tokens of one Generate; then the
// session is gone.
TEST_F(ServeGenerationTest, PrefillDecodeAndReleaseFollowGenerate) {
  ASSERT_TRUE(Serve());
  const StreamResult whole = Generate(stub_.get(), GreedyRequest("Once upon a time", 60));
  ASSERT_TRUE(whole.status.ok());

  v1::PrefillRequest prefill;
  prefill.mutable_prompt()->set_text("Once upon a time");
  prefill.mutable_sampling()->set_temperature(0);
  prefill.mutable_sampling()->set_max_new_tokens(60);
  prefill.mutable_sampling()->set_logprobs(true);
  v1::PrefillResponse started;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Prefill(&ctx, prefill, &started).ok());
  }
  EXPECT_EQ(started.prompt_tokens(), 5u);
  EXPECT_TRUE(started.token().has_logprob());
  std::vector<int32_t> ids = {started.token().id()};
  std::string text = started.token().text();
  v1::FinishReason finish = started.finish_reason();
  while (finish == v1::FINISH_REASON_UNSPECIFIED) {
    grpc::ClientContext ctx;
    v1::DecodeRequest decode;
    decode.set_session_id(started.session_id());
    decode.set_num_tokens(9);
    v1::DecodeResponse response;
    const grpc::Status s = stub_->Decode(&ctx, decode, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const v1::Token& t : response.tokens()) {
      ids.push_back(t.id());
      text += t.text();
    }
    finish = response.finish_reason();
    EXPECT_EQ(response.usage().generated_tokens(), ids.size());
  }
  EXPECT_EQ(ids, whole.ids);
  EXPECT_EQ(text, whole.text);
  EXPECT_EQ(finish, whole.finish);

  // A live session: Release frees it, a second Release and a Decode are NOT_FOUND.
  v1::PrefillResponse other;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Prefill(&ctx, prefill, &other).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest release;
    release.set_session_id(other.session_id());
    v1::ReleaseResponse response;
    EXPECT_TRUE(stub_->Release(&ctx, release, &response).ok());
    grpc::ClientContext ctx2;
    EXPECT_EQ(stub_->Release(&ctx2, release, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::DecodeRequest decode;
    decode.set_session_id(other.session_id());
    v1::DecodeResponse response;
    EXPECT_EQ(stub_->Decode(&ctx, decode, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  ExpectStillServingAndAllFree();
}

// 16 clients stream at once; each gets exactly what it gets alone.
TEST_F(ServeGenerationTest, SixteenConcurrentStreamsEqualTheirSingleRuns) {
  ASSERT_TRUE(Serve());
  const char* const kStarts[] = {
      "Once upon a time", "One day",     "Lily wanted",    "Tom and Sue",        "The sun was",
      "A little bird",    "Mom said",    "The dog ran",    "There was a big",    "Ben liked",
      "In the park",      "The cat saw", "Sara had a toy", "It was a rainy day", "The boy",
      "Max found"};
  constexpr int kClients = 16;
  constexpr uint32_t kTokens = 64;
  std::vector<StreamResult> alone(kClients), together(kClients);
  const auto t0 = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    alone[i] = Generate(stub_.get(), GreedyRequest(kStarts[i], kTokens));
    ASSERT_TRUE(alone[i].status.ok()) << alone[i].status.error_message();
  }
  const double serial_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto t1 = Clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto stub = v1::Generation::NewStub(Insecure(*server_));
      together[i] = Generate(stub.get(), GreedyRequest(kStarts[i], kTokens));
    });
  }
  for (std::thread& t : clients) t.join();
  const double concurrent_s = std::chrono::duration<double>(Clock::now() - t1).count();
  size_t tokens = 0;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].ids, alone[i].ids) << kStarts[i];
    EXPECT_EQ(together[i].text, alone[i].text) << kStarts[i];
    tokens += together[i].ids.size();
  }
  std::printf(
      "16 streams: %zu tokens, one at a time %.3f s (%.0f tokens/s), concurrently %.3f s "
      "(%.0f tokens/s)\n",
      tokens, serial_s, static_cast<double>(tokens) / serial_s, concurrent_s,
      static_cast<double>(tokens) / concurrent_s);
  const HttpResult m = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_GE(MetricValue(m.body, "relayout_generated_tokens_total"), 2.0 * tokens);
  ExpectStillServingAndAllFree();
}

// A checkpoint slow enough (40M parameters, tens of ms a token) that a
// long stream is still running when the client gives up.
std::string SlowCheckpoint() {
  return GeneratedCheckpoint("serve_mid",
                             {"--hidden", "1024", "--layers", "4", "--heads", "16", "--kv-heads",
                              "4", "--ffn", "2816", "--vocab", "512", "--seed", "3"},
                             kShared + "/models/stories260K/tok512.bin");
}

TEST_F(ServeGenerationTest, CancelMidStreamAndDeadlineFreeTheKvCache) {
  const std::string model = SlowCheckpoint();
  if (model.empty()) GTEST_SKIP() << "no .venv to generate a checkpoint";
  server_ = StartServer({"--model", model});
  ASSERT_NE(server_, nullptr);
  channel_ = Insecure(*server_);
  stub_ = v1::Generation::NewStub(channel_);
  ASSERT_TRUE(WaitServing(channel_, 120));
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 1000);
  request.mutable_sampling()->set_ignore_eos(true);
  {
    grpc::ClientContext ctx;
    auto reader = stub_->Generate(&ctx, request);
    v1::GenerateResponse message;
    ASSERT_TRUE(reader->Read(&message));
    ctx.TryCancel();
    while (reader->Read(&message)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ExpectStillServingAndAllFree();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(700));
    auto reader = stub_->Generate(&ctx, request);
    const StreamResult r = ReadStream(reader.get());
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << r.status.error_message();
    EXPECT_LT(r.ids.size(), 1000u);
  }
  ExpectStillServingAndAllFree();
  const HttpResult m = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_NE(m.body.find("relayout_requests_total{code=\"CANCELLED\",rpc=\"Generate\"}"),
            std::string::npos)
      << m.body;
}

TEST_F(ServeGenerationTest, IdleSessionExpiresAfterTheTtl) {
  ASSERT_TRUE(Serve({"--session-idle-ttl", "1"}));
  v1::PrefillRequest prefill;
  prefill.mutable_prompt()->set_text("Once upon a time");
  prefill.mutable_sampling()->set_temperature(0);
  v1::PrefillResponse started;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Prefill(&ctx, prefill, &started).ok());
  ASSERT_EQ(started.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_TRUE(WaitKvFree(*server_, 5000));  // released by the server at the TTL
  grpc::ClientContext ctx2;
  v1::DecodeRequest decode;
  decode.set_session_id(started.session_id());
  v1::DecodeResponse response;
  const grpc::Status s = stub_->Decode(&ctx2, decode, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("expired"), std::string::npos) << s.error_message();
  ExpectStillServingAndAllFree();
}

struct BadCall {
  std::string name;
  std::function<grpc::Status(v1::Generation::Stub*)> call;
  grpc::StatusCode code;
  std::string needle;
};

grpc::Status PrefillWith(v1::Generation::Stub* stub,
                         const std::function<void(v1::PrefillRequest*)>& edit,
                         int timeout_ms = 60000) {
  v1::PrefillRequest r;
  r.mutable_prompt()->set_text("Once upon a time");
  edit(&r);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  v1::PrefillResponse response;
  return stub->Prefill(&ctx, r, &response);
}

grpc::Status GenerateWith(v1::Generation::Stub* stub,
                          const std::function<void(v1::GenerateRequest*)>& edit) {
  v1::GenerateRequest r = GreedyRequest("Once upon a time", 4);
  edit(&r);
  return Generate(stub, r).status;
}

// Each malformed request or limit gets its status, from Prefill and
// Generate alike; the server keeps serving with nothing held.
TEST_F(ServeGenerationTest, MalformedRequestsAndLimitsGetTheirStatus) {
  ASSERT_TRUE(
      Serve({"--max-prompt-tokens", "16", "--max-new-tokens", "32", "--max-sessions", "2"}));
  using Code = grpc::StatusCode;
  struct Edit {
    std::string name;
    std::function<void(v1::Prompt*, v1::SamplingParams*)> edit;
    Code code;
    std::string needle;
  };
  const std::vector<Edit> table = {
      {"EmptyPrompt", [](v1::Prompt* p, v1::SamplingParams*) { p->clear_kind(); },
       Code::INVALID_ARGUMENT, "prompt"},
      {"EmptyText", [](v1::Prompt* p, v1::SamplingParams*) { p->set_text(""); },
       Code::INVALID_ARGUMENT, "empty"},
      {"TokenOutsideVocabulary",
       [](v1::Prompt* p, v1::SamplingParams*) { p->mutable_token_ids()->add_ids(512); },
       Code::INVALID_ARGUMENT, "outside the vocabulary"},
      {"NegativeTokenId",
       [](v1::Prompt* p, v1::SamplingParams*) { p->mutable_token_ids()->add_ids(-1); },
       Code::INVALID_ARGUMENT, "outside the vocabulary"},
      {"NegativeTemperature", [](v1::Prompt*, v1::SamplingParams* s) { s->set_temperature(-1); },
       Code::INVALID_ARGUMENT, "temperature"},
      {"ZeroTopP", [](v1::Prompt*, v1::SamplingParams* s) { s->set_top_p(0); },
       Code::INVALID_ARGUMENT, "top_p"},
      {"TooManyTopLogprobs", [](v1::Prompt*, v1::SamplingParams* s) { s->set_top_logprobs(21); },
       Code::INVALID_ARGUMENT, "top_logprobs"},
      {"EmptyStopString", [](v1::Prompt*, v1::SamplingParams* s) { s->add_stop(""); },
       Code::INVALID_ARGUMENT, "stop"},
      {"StopTokenOutsideVocabulary",
       [](v1::Prompt*, v1::SamplingParams* s) { s->add_stop_token_ids(100000); },
       Code::INVALID_ARGUMENT, "stop_token_ids"},
      {"PromptOverLimit",
       [](v1::Prompt* p, v1::SamplingParams*) {
         p->set_text("one two three four five six seven eight nine ten eleven twelve thirteen");
       },
       Code::RESOURCE_EXHAUSTED, "--max-prompt-tokens"},
      {"MaxNewTokensOverLimit",
       [](v1::Prompt*, v1::SamplingParams* s) { s->set_max_new_tokens(33); },
       Code::RESOURCE_EXHAUSTED, "--max-new-tokens"},
  };
  for (const Edit& e : table) {
    const grpc::Status p = PrefillWith(stub_.get(), [&](v1::PrefillRequest* r) {
      e.edit(r->mutable_prompt(), r->mutable_sampling());
    });
    EXPECT_EQ(p.error_code(), e.code) << e.name << ": " << p.error_message();
    EXPECT_NE(p.error_message().find(e.needle), std::string::npos)
        << e.name << ": " << p.error_message();
    const grpc::Status g = GenerateWith(stub_.get(), [&](v1::GenerateRequest* r) {
      e.edit(r->mutable_prompt(), r->mutable_sampling());
    });
    EXPECT_EQ(g.error_code(), e.code) << e.name << ": " << g.error_message();
  }
  // Session ids and counts.
  auto decode = [&](const std::string& id, uint32_t n) {
    grpc::ClientContext ctx;
    v1::DecodeRequest r;
    r.set_session_id(id);
    r.set_num_tokens(n);
    v1::DecodeResponse response;
    return stub_->Decode(&ctx, r, &response);
  };
  auto release = [&](const std::string& id) {
    grpc::ClientContext ctx;
    v1::ReleaseRequest r;
    r.set_session_id(id);
    v1::ReleaseResponse response;
    return stub_->Release(&ctx, r, &response);
  };
  EXPECT_EQ(decode("", 1).error_code(), Code::INVALID_ARGUMENT);
  EXPECT_EQ(decode("s-999", 1).error_code(), Code::NOT_FOUND);
  EXPECT_EQ(decode("not a session", 1).error_code(), Code::NOT_FOUND);
  EXPECT_EQ(decode("s-1", 33).error_code(), Code::RESOURCE_EXHAUSTED);
  EXPECT_EQ(release("").error_code(), Code::INVALID_ARGUMENT);
  EXPECT_EQ(release("s-999").error_code(), Code::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    v1::DetokenizeRequest r;
    r.add_token_ids(9999);
    v1::DetokenizeResponse response;
    EXPECT_EQ(stub_->Detokenize(&ctx, r, &response).error_code(), Code::INVALID_ARGUMENT);
  }
  // --max-sessions 2: two live sessions; a third request waits in the
  // queue, here until its deadline, and leaves the queue with its caller.
  std::vector<std::string> sessions;
  for (int i = 0; i < 2; ++i) {
    v1::PrefillRequest r;
    r.mutable_prompt()->set_text("Once upon a time");
    r.mutable_sampling()->set_temperature(0);
    grpc::ClientContext ctx;
    v1::PrefillResponse response;
    ASSERT_TRUE(stub_->Prefill(&ctx, r, &response).ok());
    sessions.push_back(response.session_id());
  }
  const grpc::Status third = PrefillWith(
      stub_.get(), [](v1::PrefillRequest*) {}, 300);
  EXPECT_EQ(third.error_code(), Code::DEADLINE_EXCEEDED) << third.error_message();
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  auto reader = stub_->Generate(&stream_ctx, GreedyRequest("Once upon a time", 4));
  EXPECT_EQ(ReadStream(reader.get()).status.error_code(), Code::DEADLINE_EXCEEDED);
  // Both callers left: nothing waits any more.
  for (int i = 0; i < 200 && MetricValue(HttpGet(server_->metrics_port(), "/metrics").body,
                                         "relayout_queue_depth") != 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(MetricValue(HttpGet(server_->metrics_port(), "/metrics").body, "relayout_queue_depth"),
            0);
  for (const std::string& id : sessions) EXPECT_TRUE(release(id).ok());
  ExpectStillServingAndAllFree();
}

// A KV cache of two 16-token blocks: a request whose worst case is larger
// is refused; while a session holds the cache a stream waits in the queue
// (--max-queue 1), so the next request is refused; releasing the session
// lets the stream finish.
TEST_F(ServeGenerationTest, KvCacheAndQueueLimits) {
  // stories260K: 5 layers * K and V * 16 tokens * 32 floats * 4 bytes.
  ASSERT_TRUE(Serve({"--kv-cache-bytes", std::to_string(2 * 5 * 2 * 16 * 32 * 4), "--max-queue",
                     "1", "--max-new-tokens", "40"}));
  const grpc::Status too_big = GenerateWith(stub_.get(), [](v1::GenerateRequest* r) {
    r->mutable_sampling()->set_max_new_tokens(30);  // 5 + 30 - 1 positions: 3 blocks
  });
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(too_big.error_message().find("kv_cache_bytes"), std::string::npos)
      << too_big.error_message();

  v1::PrefillRequest hold;
  hold.mutable_prompt()->set_text("Once upon a time");
  hold.mutable_sampling()->set_temperature(0);
  hold.mutable_sampling()->set_max_new_tokens(20);  // 24 positions: both blocks
  v1::PrefillResponse session;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Prefill(&ctx, hold, &session).ok());
  }
  StreamResult waited;
  std::thread waiter([&] {
    auto stub = v1::Generation::NewStub(Insecure(*server_));
    waited = Generate(stub.get(), GreedyRequest("Once upon a time", 20));
  });
  // Wait for the stream to sit in the queue.
  for (int i = 0; i < 500; ++i) {
    if (MetricValue(HttpGet(server_->metrics_port(), "/metrics").body, "relayout_queue_depth") ==
        1) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const grpc::Status refused = GenerateWith(stub_.get(), [](v1::GenerateRequest*) {});
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("max_queue"), std::string::npos)
      << refused.error_message();
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest r;
    r.set_session_id(session.session_id());
    v1::ReleaseResponse response;
    EXPECT_TRUE(stub_->Release(&ctx, r, &response).ok());
  }
  waiter.join();
  EXPECT_TRUE(waited.status.ok()) << waited.status.error_message();
  EXPECT_FALSE(waited.ids.empty());
  ExpectStillServingAndAllFree();
}

TEST_F(ServeGenerationTest, BearerTokenGuardsGenerate) {
  const std::string token_file = std::string(RELAYOUT_GENERATED_DIR) + "/serve_generate_token";
  fs::create_directories(RELAYOUT_GENERATED_DIR);
  std::ofstream(token_file) << "s3cret\n";
  ASSERT_TRUE(Serve({"--auth-token-file", token_file}));
  const v1::GenerateRequest request = GreedyRequest("Once upon a time", 8);
  EXPECT_EQ(Generate(stub_.get(), request).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Generate(stub_.get(), request, 60, "wrong").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const StreamResult ok = Generate(stub_.get(), request, 60, "s3cret");
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.ids.size(), 8u);
}

}  // namespace
}  // namespace relayout
