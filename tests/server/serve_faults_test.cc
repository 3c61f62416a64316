// relayoutd serve under faults, end to end: a storm of streams cancelled at
// random points, given deadlines from 1 ms, read slowly or not at all, run
// several rounds, must leave no call, session or KV block behind and let
// SIGTERM finish within the grace; a drain whose grace expires gives every
// stream its final message; a busy gRPC port is an error; session ids are
// unguessable and errors never echo them; Tokenize/Detokenize are bounded;
// a full session table makes Generate wait in the queue.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/status.h"
#include "relayout/v1/generation.grpc.pb.h"
#include "tests/server/serve_test_util.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
using namespace relayout::testing;  // NOLINT: test helpers
using Clock = std::chrono::steady_clock;

// The value of the sample whose name and labels are exactly `series`
// (e.g. relayout_inflight_calls{rpc="Generate"}); -1 when absent.
double SeriesValue(const std::string& text, const std::string& series) {
  const std::string line_start = "\n" + series + " ";
  size_t at = text.find(line_start);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line_start.size()));
}

double Metric(const ServerProcess& server, const std::string& series) {
  const HttpResult m = HttpGet(server.metrics_port(), "/metrics");
  return m.status == 200 ? SeriesValue(m.body, series) : -1;
}

// Polls until every Generation RPC's inflight gauge, the sessions, the
// queue and the KV cache are back to 0.
bool WaitNothingLeft(const ServerProcess& server, int timeout_ms = 10000) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    const HttpResult m = HttpGet(server.metrics_port(), "/metrics");
    bool zero = m.status == 200;
    for (const char* rpc : {"Prefill", "Decode", "Generate", "Release", "Tokenize", "Detokenize"}) {
      zero = zero && SeriesValue(m.body, StrCat("relayout_inflight_calls{rpc=\"", rpc, "\"}")) == 0;
    }
    zero = zero && MetricValue(m.body, "relayout_kv_cache_usage_ratio") == 0 &&
           MetricValue(m.body, "relayout_active_sessions") == 0 &&
           MetricValue(m.body, "relayout_queue_depth") == 0;
    if (zero) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (Clock::now() < deadline);
  return false;
}

// How one stream of the storm treats its call.
enum class Mode { kReadAll, kCancelAfterMessages, kDeadline, kSlowReader, kNeverReadThenCancel };

// One stream of the storm; returns false on an outcome no client should
// see (an INTERNAL or UNKNOWN status, or OK without a final message).
bool StormStream(v1::Generation::Stub* stub, std::mt19937* rng, std::string* what) {
  const Mode mode = static_cast<Mode>((*rng)() % 5);
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 40 + (*rng)() % 400);
  request.mutable_sampling()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  const int deadline_ms = 1 + static_cast<int>((*rng)() % 300);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(mode == Mode::kDeadline ? deadline_ms : 30000));
  const int cancel_after = static_cast<int>((*rng)() % 12);
  const int pause_ms = 1 + static_cast<int>((*rng)() % 4);
  auto reader = stub->Generate(&ctx, request);
  if (mode == Mode::kNeverReadThenCancel) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>((*rng)() % 50)));
    ctx.TryCancel();
  }
  v1::GenerateResponse message;
  int messages = 0;
  bool final_seen = false;
  while (reader->Read(&message)) {
    ++messages;
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) final_seen = true;
    if (mode == Mode::kCancelAfterMessages && messages == cancel_after) ctx.TryCancel();
    if (mode == Mode::kSlowReader) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  }
  const grpc::Status status = reader->Finish();
  const grpc::StatusCode code = status.error_code();
  const bool ok = (code == grpc::StatusCode::OK && final_seen) ||
                  code == grpc::StatusCode::CANCELLED ||
                  code == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (!ok) {
    *what = StrCat("mode ", static_cast<int>(mode), ": code ", static_cast<int>(code), " ",
                   status.error_message());
  }
  return ok;
}

// Runs `streams` storm streams, `concurrency` at a time.
void Storm(const ServerProcess& server, int streams, int concurrency, uint32_t seed) {
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      // One channel per thread: connections, like separate clients.
      auto stub = v1::Generation::NewStub(Insecure(server));
      std::mt19937 rng(seed * 1000 + static_cast<uint32_t>(t));
      while (next.fetch_add(1) < streams) {
        std::string what;
        if (!StormStream(stub.get(), &rng, &what)) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(what);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " bad outcomes, first: " << failures[0];
}

TEST(ServeFaultsTest, StormOfCancelsDeadlinesAndSlowReadersLeavesNothingAndSigtermExitsInGrace) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  auto server = StartServer(
      {"--model", kStories, "--drain-grace", "2", "--threads", "1", "--max-sessions", "16"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  // Rounds, so that a rare interleaving gets several chances to show.
  for (uint32_t round = 0; round < 3; ++round) {
    Storm(*server, 100, 24, round + 1);
    ASSERT_TRUE(WaitNothingLeft(*server)) << "round " << round << "\n"
                                          << HttpGet(server->metrics_port(), "/metrics").body;
  }
  // Before the signal: nothing in flight.
  EXPECT_EQ(Metric(*server, "relayout_inflight_calls{rpc=\"Generate\"}"), 0);
  const auto signalled = Clock::now();
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(3000), 0) << server->Log();
  const std::chrono::duration<double> exit_after = Clock::now() - signalled;
  EXPECT_LT(exit_after.count(), 3.0);
  RecordProperty("sigterm_to_exit_seconds", std::to_string(exit_after.count()));
  std::printf("storm: 3 rounds of 100 streams; SIGTERM to exit %.3f s (grace 2 s)\n",
              exit_after.count());
  EXPECT_EQ(server->Log().find("shutdown stuck"), std::string::npos) << server->Log();
}

TEST(ServeFaultsTest, DrainGraceExpiryGivesEveryStreamItsFinalMessageAndExitsZero) {
  if (!fs::exists(kShared + "/models/tokenizers/llama2-32k/tokenizer.model")) GTEST_SKIP();
  const std::string model = OneGiBCheckpoint();
  if (model.empty()) GTEST_SKIP() << "no .venv to generate a checkpoint";
  auto server = StartServer({"--model", model, "--drain-grace", "1"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server), 300)) << server->Log();
  auto stub = v1::Generation::NewStub(Insecure(*server));

  // Three long streams: two read, the third reads its first message and
  // then nothing (gRPC cancels it at shutdown).
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader;
    int tokens = 0;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 3; ++i) {
    auto s = std::make_unique<Stream>();
    v1::GenerateRequest request = GreedyRequest("Once upon a time", 500);
    request.mutable_sampling()->set_ignore_eos(true);
    s->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    s->reader = stub->Generate(&s->ctx, request);
    v1::GenerateResponse first;
    ASSERT_TRUE(s->reader->Read(&first)) << server->Log();
    s->tokens = first.tokens_size();
    streams.push_back(std::move(s));
  }
  // The token counter moves while the streams run, not only at their end.
  double generated = 0;
  for (int i = 0; i < 200 && generated < 3; ++i) {
    generated = Metric(*server, "relayout_generated_tokens_total");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(generated, 3);
  EXPECT_EQ(Metric(*server, "relayout_inflight_calls{rpc=\"Generate\"}"), 3);

  const auto signalled = Clock::now();
  server->Signal(SIGTERM);
  for (int i = 0; i < 2; ++i) {
    StreamResult rest = ReadStream(streams[static_cast<size_t>(i)]->reader.get());
    ASSERT_TRUE(rest.status.ok()) << rest.status.error_message() << "\n" << server->Log();
    EXPECT_EQ(rest.finish, v1::FINISH_REASON_CANCELLED);
    const int tokens = streams[static_cast<size_t>(i)]->tokens + static_cast<int>(rest.ids.size());
    EXPECT_EQ(rest.usage.generated_tokens(), static_cast<uint32_t>(tokens));
    EXPECT_LT(tokens, 500);
  }
  EXPECT_EQ(server->Wait(6000), 0) << server->Log();
  const std::chrono::duration<double> exit_after = Clock::now() - signalled;
  EXPECT_LT(exit_after.count(), 1.0 + 3.0);
  std::printf("drain: grace 1 s expired with 3 streams; SIGTERM to exit %.3f s\n",
              exit_after.count());
  const std::string log = server->Log();
  EXPECT_NE(log.find("drain grace expired"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped exit_code=0"), std::string::npos) << log;
  StreamResult silent = ReadStream(streams[2]->reader.get());
  EXPECT_TRUE(silent.status.ok() || silent.status.error_code() == grpc::StatusCode::CANCELLED ||
              silent.status.error_code() == grpc::StatusCode::UNAVAILABLE)
      << silent.status.error_message();
}

TEST(ServeFaultsTest, SecondServerOnABusyGrpcPortExitsTwoWithOneLine) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  auto first = StartServer({"--model", kStories});
  ASSERT_NE(first, nullptr);
  const ProcessResult second =
      RunProcess({RELAYOUTD_BINARY, "serve", "--model", kStories, "--listen", first->grpc_address(),
                  "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_EQ(CountLines(second.err), 1) << second.err;
  EXPECT_NE(second.err.find(first->grpc_address()), std::string::npos) << second.err;
  // The first server still serves.
  EXPECT_TRUE(WaitServing(Insecure(*first)));
}

v1::PrefillResponse Prefill(v1::Generation::Stub* stub, grpc::Status* status) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::PrefillRequest request;
  request.mutable_prompt()->set_text("Once upon a time");
  request.mutable_sampling()->set_temperature(0);
  request.mutable_sampling()->set_max_new_tokens(20);
  v1::PrefillResponse response;
  *status = stub->Prefill(&ctx, request, &response);
  return response;
}

grpc::Status DecodeSession(v1::Generation::Stub* stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::DecodeRequest request;
  request.set_session_id(id);
  request.set_num_tokens(1);
  v1::DecodeResponse response;
  return stub->Decode(&ctx, request, &response);
}

TEST(ServeFaultsTest, SessionIdsAreUnguessableAndErrorsEchoNoClientBytes) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  auto server = StartServer({"--model", kStories});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  auto stub = v1::Generation::NewStub(Insecure(*server));
  grpc::Status s1, s2;
  const std::string a = Prefill(stub.get(), &s1).session_id();
  const std::string b = Prefill(stub.get(), &s2).session_id();
  ASSERT_TRUE(s1.ok() && s2.ok()) << s1.error_message() << s2.error_message();
  // 128 bits each, as hex; consecutive ids share no visible pattern: about
  // 30 of 32 digits differ for random ids, a counter differs in one or two.
  ASSERT_EQ(a.size(), 32u) << a;
  ASSERT_EQ(b.size(), 32u) << b;
  int differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i];
  EXPECT_GE(differing, 20) << a << " " << b;

  grpc::ClientContext release_ctx;
  v1::ReleaseRequest release;
  release.set_session_id(a);
  v1::ReleaseResponse released;
  ASSERT_TRUE(stub->Release(&release_ctx, release, &released).ok());
  // Gone, never existed, and hostile bytes: one answer, which repeats none
  // of the client's bytes.
  const grpc::Status gone = DecodeSession(stub.get(), a);
  const grpc::Status never = DecodeSession(stub.get(), "0123456789abcdef0123456789abcdef");
  const std::string hostile("s-1\0\x01<script>", 14);
  const grpc::Status odd = DecodeSession(stub.get(), hostile);
  for (const grpc::Status& s : {gone, never, odd}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), gone.error_message());
  }
  EXPECT_EQ(gone.error_message().find(a), std::string::npos) << gone.error_message();
  EXPECT_EQ(odd.error_message().find('\0'), std::string::npos);
  EXPECT_EQ(odd.error_message().find("<script>"), std::string::npos);
  EXPECT_TRUE(DecodeSession(stub.get(), b).ok());
}

TEST(ServeFaultsTest, TokenizeAndDetokenizeAreBoundedAndTheServerKeepsServing) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  auto server = StartServer(
      {"--model", kStories, "--max-tokenize-bytes", "1000", "--max-detokenize-ids", "100"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  auto stub = v1::Generation::NewStub(Insecure(*server));
  const auto tokenize = [&](size_t bytes) {
    grpc::ClientContext ctx;
    v1::TokenizeRequest request;
    request.set_text(std::string(bytes, 'a'));
    v1::TokenizeResponse response;
    return stub->Tokenize(&ctx, request, &response);
  };
  EXPECT_TRUE(tokenize(1000).ok());
  const grpc::Status big = tokenize(1001);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(big.error_message().find("--max-tokenize-bytes"), std::string::npos)
      << big.error_message();
  const auto detokenize = [&](int ids) {
    grpc::ClientContext ctx;
    v1::DetokenizeRequest request;
    for (int i = 0; i < ids; ++i) request.add_token_ids(65);
    v1::DetokenizeResponse response;
    return stub->Detokenize(&ctx, request, &response);
  };
  EXPECT_TRUE(detokenize(100).ok());
  const grpc::Status many = detokenize(101);
  EXPECT_EQ(many.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(many.error_message().find("--max-detokenize-ids"), std::string::npos);
  EXPECT_TRUE(Generate(stub.get(), GreedyRequest("Once upon a time", 5)).status.ok());
}

TEST(ServeFaultsTest, GenerateWaitsInTheQueueWhenEverySessionIsTaken) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  auto server = StartServer({"--model", kStories, "--max-sessions", "2", "--max-queue", "4"});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  auto stub = v1::Generation::NewStub(Insecure(*server));
  grpc::Status s;
  const std::string first = Prefill(stub.get(), &s).session_id();
  ASSERT_TRUE(s.ok()) << s.error_message();
  Prefill(stub.get(), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // Both sessions idle: Generate waits (not RESOURCE_EXHAUSTED at once), so
  // its short deadline passes in the queue.
  const StreamResult timed_out = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    auto reader = stub->Generate(&ctx, GreedyRequest("Hello", 3));
    return ReadStream(reader.get());
  }();
  EXPECT_EQ(timed_out.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << timed_out.status.error_message();

  // The expired request leaves the queue (its cancellation is processed on
  // the engine's thread, so it can still be counted right after the deadline).
  const auto wait_depth = [&](double depth) {
    for (int i = 0; i < 500 && Metric(*server, "relayout_queue_depth") != depth; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Metric(*server, "relayout_queue_depth");
  };
  EXPECT_EQ(wait_depth(0), 0);

  // A waiting Generate runs as soon as a session is released.
  StreamResult waited;
  std::thread waiter([&] { waited = Generate(stub.get(), GreedyRequest("Hello", 3), 30); });
  EXPECT_EQ(wait_depth(1), 1);
  grpc::ClientContext ctx;
  v1::ReleaseRequest release;
  release.set_session_id(first);
  v1::ReleaseResponse released;
  ASSERT_TRUE(stub->Release(&ctx, release, &released).ok());
  waiter.join();
  EXPECT_TRUE(waited.status.ok()) << waited.status.error_message();
  EXPECT_EQ(waited.finish, v1::FINISH_REASON_LENGTH);
}

TEST(ServeFaultsTest, LowerCaseBearerSchemeIsAccepted) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories;
  const std::string token_file = ::testing::TempDir() + "/faults_token";
  std::ofstream(token_file) << "s3cret\n";
  auto server = StartServer({"--model", kStories, "--auth-token-file", token_file});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(WaitServing(Insecure(*server)));
  auto stub = v1::Generation::NewStub(Insecure(*server));
  for (const char* scheme : {"Bearer", "bearer", "BEARER"}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", StrCat(scheme, " s3cret"));
    v1::TokenizeRequest request;
    request.set_text("Hello");
    v1::TokenizeResponse response;
    EXPECT_TRUE(stub->Tokenize(&ctx, request, &response).ok()) << scheme;
  }
}

}  // namespace
}  // namespace relayout
