#include "engine/serving/serving_engine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <thread>

#include "engine/model/generation.h"
#include "engine/model/model_test_util.h"
#include "engine/serving/serving_test_util.h"

namespace relayout {
namespace {

using testing::ModelPath;
using testing::ReferencePath;
using Clock = std::chrono::steady_clock;

const std::string kStories = ModelPath("stories260K", "model.safetensors");

// The engine over stories260K, loaded through the real start-up path.
Result<std::unique_ptr<ServingEngine>> LoadEngine(ServingEngineOptions options) {
  options.threads = 2;
  return testing::LoadServingEngine(kStories, "auto", std::move(options));
}

// What one stream delivered.
struct StreamOutput {
  std::vector<int32_t> ids;
  std::string text;
  Status status;
  StreamEnd end;
};

// Starts a stream whose output lands in the returned future.
struct StreamHandle {
  uint64_t id = 0;
  std::shared_ptr<StreamOutput> out = std::make_shared<StreamOutput>();
  std::shared_ptr<std::promise<void>> done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  bool Wait(int seconds = 30) {
    return finished.wait_for(std::chrono::seconds(seconds)) == std::future_status::ready;
  }
};

Result<StreamHandle> Start(ServingEngine* engine, ServingRequest request,
                           std::promise<void>* first_token = nullptr) {
  StreamHandle h;
  auto out = h.out;
  auto done = h.done;
  auto first = std::make_shared<bool>(false);
  ASSIGN_OR_RETURN(h.id, engine->StartStream(
                             std::move(request),
                             [out, first, first_token](std::span<const ServingToken> tokens) {
                               for (const ServingToken& t : tokens) {
                                 out->ids.push_back(t.id);
                                 out->text += t.text;
                               }
                               if (first_token != nullptr && !*first) first_token->set_value();
                               *first = true;
                             },
                             [out, done](const Status& s, const StreamEnd& end) {
                               out->status = s;
                               out->end = end;
                               done->set_value();
                             }));
  return h;
}

ServingRequest Greedy(const Tokenizer& tokenizer, const std::string& prompt, int64_t max_new) {
  ServingRequest r;
  r.prompt_ids = *tokenizer.Encode(prompt, EncodeOptions{});
  r.sampling.temperature = 0;
  r.max_new_tokens = max_new;
  return r;
}

// Polls until the engine holds no KV block and no sequence.
bool WaitAllFree(const ServingEngine& engine) {
  for (int i = 0; i < 2000; ++i) {
    const ServingStats s = engine.stats();
    if (s.kv_blocks_used == 0 && s.active_sessions == 0 && s.queue_depth == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

class ServingEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kStories)) GTEST_SKIP() << kStories;
  }
  std::unique_ptr<ServingEngine> Engine(ServingEngineOptions options = {}) {
    Result<std::unique_ptr<ServingEngine>> e = LoadEngine(std::move(options));
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }
};

TEST_F(ServingEngineTest, GreedyStreamEqualsLlama2cReference) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  // llama2.c -n 64 with a 5-token prompt: 60 new tokens at most.
  Result<StreamHandle> h = Start(engine.get(), Greedy(engine->tokenizer(), "Once upon a time", 60));
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(h->Wait());
  EXPECT_TRUE(h->out->status.ok()) << h->out->status;
  EXPECT_EQ("Once upon a time" + h->out->text + "\n",
            testing::ReadText(ReferencePath("stories260K", "greedy_once_upon_a_time_n64.txt")));
  EXPECT_EQ(h->out->end.prompt_tokens, 5);
  EXPECT_TRUE(WaitAllFree(*engine));
}

// Several prompts at once, batched in the same forward passes, give what
// Generate gives each alone.
TEST_F(ServingEngineTest, BatchedStreamsEqualGenerateAlone) {
  std::atomic<int64_t> widest{0};
  ServingEngineOptions options;
  options.on_stats = [&](const ServingStats& s) {
    if (s.batch_size > widest.load()) widest.store(s.batch_size);
  };
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  const std::vector<std::string> prompts = {"Once upon a time", "One day",       "Lily and Tom",
                                            "The big dog",      "She was happy", "Tim had a ball"};
  std::vector<StreamHandle> handles;
  for (const std::string& p : prompts) {
    ServingRequest r = Greedy(engine->tokenizer(), p, 48);
    r.logprobs = true;
    Result<StreamHandle> h = Start(engine.get(), std::move(r));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(std::move(*h));
  }
  kernels::ThreadPool pool(1);
  Result<testing::LoadedModel> alone = testing::LoadModel(kStories, "auto", &pool);
  ASSERT_TRUE(alone.ok()) << alone.status();
  MemoryLedger ledger;
  auto cache = std::move(*KvCache::Create(alone->model->kv_cache_shape(), 1 << 20, &ledger));
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(handles[i].Wait());
    GenerationOptions go;
    go.sampling.temperature = 0;
    go.max_new_tokens = 48;
    Result<GenerationResult> want =
        Generate(alone->model.get(), cache.get(), *alone->tokenizer, prompts[i], go);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(handles[i].out->ids, want->ids) << prompts[i];
    EXPECT_EQ(handles[i].out->text, want->text) << prompts[i];
    EXPECT_EQ(handles[i].out->end.generated_tokens, static_cast<int64_t>(want->ids.size()));
  }
  EXPECT_GE(widest.load(), 2);  // they did share forward passes
  EXPECT_TRUE(WaitAllFree(*engine));
}

// A prompt that starts with whole blocks an earlier request computed
// prefills only the rest, and generates what it did the first time.
TEST_F(ServingEngineTest, ARepeatedPromptReusesItsCachedBlocks) {
  for (bool caching : {true, false}) {
    ServingEngineOptions options;
    options.prefix_caching = caching;
    auto engine = Engine(options);
    ASSERT_NE(engine, nullptr);
    const std::string prompt =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park with her friends";
    const ServingRequest request = Greedy(engine->tokenizer(), prompt, 24);
    const int64_t n = static_cast<int64_t>(request.prompt_ids.size());
    ASSERT_GT(n, 33);
    std::vector<std::vector<int32_t>> outputs;
    for (int run = 0; run < 2; ++run) {
      Result<StreamHandle> h = Start(engine.get(), request);
      ASSERT_TRUE(h.ok()) << h.status();
      ASSERT_TRUE(h->Wait());
      EXPECT_TRUE(h->out->status.ok()) << h->out->status;
      EXPECT_EQ(h->out->end.prompt_tokens, n);  // usage counts the whole prompt
      outputs.push_back(h->out->ids);
      ASSERT_TRUE(WaitAllFree(*engine));
    }
    SCOPED_TRACE(caching ? "caching" : "not caching");
    EXPECT_EQ(outputs[0], outputs[1]);
    // Whole 16-token blocks before the last prompt token.
    EXPECT_EQ(engine->stats().prefix_cache_hit_tokens,
              caching ? static_cast<uint64_t>((n - 1) / 16 * 16) : 0u);
    // Another prompt shares nothing.
    Result<StreamHandle> other = Start(engine.get(), Greedy(engine->tokenizer(), "One day", 4));
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE(other->Wait());
    EXPECT_EQ(engine->stats().prefix_cache_hit_tokens,
              caching ? static_cast<uint64_t>((n - 1) / 16 * 16) : 0u);
  }
}

TEST_F(ServingEngineTest, SessionPrefillThenDecodesEqualOneStream) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  Result<StreamHandle> stream =
      Start(engine.get(), Greedy(engine->tokenizer(), "Once upon a time", 30));
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE(stream->Wait());

  std::promise<Result<SessionPrefill>> prefilled;
  ASSERT_TRUE(engine
                  ->StartSession(Greedy(engine->tokenizer(), "Once upon a time", 30),
                                 [&](Result<SessionPrefill> r) { prefilled.set_value(r); })
                  .ok());
  Result<SessionPrefill> p = prefilled.get_future().get();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->prompt_tokens, 5);
  std::vector<int32_t> ids = {p->first_token.id};
  std::string text = p->first_token.text;
  FinishReason finish = p->finish;
  while (finish == FinishReason::kNone) {
    std::promise<Result<SessionDecode>> decoded;
    ASSERT_TRUE(engine
                    ->Decode(p->session, 7,
                             [&](Result<SessionDecode> r) { decoded.set_value(std::move(r)); })
                    .ok());
    Result<SessionDecode> d = decoded.get_future().get();
    ASSERT_TRUE(d.ok()) << d.status();
    for (const ServingToken& t : d->tokens) {
      ids.push_back(t.id);
      text += t.text;
    }
    finish = d->finish;
    EXPECT_EQ(d->generated_tokens, static_cast<int64_t>(ids.size()));
  }
  EXPECT_EQ(finish, FinishReason::kMaxTokens);
  EXPECT_EQ(ids, stream->out->ids);
  EXPECT_EQ(text, stream->out->text);
  // Finished sessions are released.
  EXPECT_TRUE(engine->Release(p->session).IsNotFound());
  EXPECT_TRUE(WaitAllFree(*engine));
}

Result<std::string> OpenSession(ServingEngine* engine, int64_t max_new = 20) {
  std::promise<Result<SessionPrefill>> prefilled;
  RETURN_IF_ERROR(engine
                      ->StartSession(Greedy(engine->tokenizer(), "Once upon a time", max_new),
                                     [&](Result<SessionPrefill> r) { prefilled.set_value(r); })
                      .status());
  ASSIGN_OR_RETURN(SessionPrefill p, prefilled.get_future().get());
  return p.session;
}

TEST_F(ServingEngineTest, IdleSessionExpiresAfterTheTtlThenIsNotFound) {
  ServingEngineOptions options;
  options.limits.session_idle_ttl_seconds = 30;
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  Result<std::string> id = OpenSession(engine.get());
  ASSERT_TRUE(id.ok()) << id.status();
  engine->ExpireIdleSessions(Clock::now() + std::chrono::seconds(10));
  EXPECT_GT(engine->stats().kv_blocks_used, 0);  // not yet
  engine->ExpireIdleSessions(Clock::now() + std::chrono::seconds(31));
  const Status s = engine->Decode(*id, 1, [](Result<SessionDecode>) {});
  EXPECT_TRUE(s.IsNotFound()) << s;
  EXPECT_NE(s.message().find("expired"), std::string::npos) << s;
  EXPECT_TRUE(WaitAllFree(*engine));
}

TEST_F(ServingEngineTest, ReleaseFreesTheBlocksAndASecondReleaseIsNotFound) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  Result<std::string> id = OpenSession(engine.get());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(engine->stats().active_sessions, 1);
  // Idle between calls: it holds its KV cache but is not running.
  EXPECT_EQ(engine->stats().running_requests, 0);
  EXPECT_EQ(engine->stats().kv_block_size, ServingEngineOptions().kv_block_size);
  EXPECT_TRUE(engine->Release(*id).ok());
  EXPECT_TRUE(engine->Release(*id).IsNotFound());
  EXPECT_TRUE(engine->Release("0123456789abcdef0123456789abcdef").IsNotFound());
  EXPECT_TRUE(WaitAllFree(*engine));
}

TEST_F(ServingEngineTest, CancelEndsTheStreamAndFreesItsBlocks) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  ServingRequest r = Greedy(engine->tokenizer(), "Once upon a time", 400);
  r.ignore_eos = true;
  std::promise<void> first;
  Result<StreamHandle> h = Start(engine.get(), std::move(r), &first);
  ASSERT_TRUE(h.ok()) << h.status();
  first.get_future().wait();
  EXPECT_EQ(engine->stats().running_requests, 1);  // generating: in the running batch
  engine->Cancel(h->id);
  ASSERT_TRUE(h->Wait());
  EXPECT_TRUE(h->out->status.ok()) << h->out->status;
  EXPECT_EQ(h->out->end.finish, FinishReason::kCancelled);
  EXPECT_LT(h->out->ids.size(), 400u);
  EXPECT_TRUE(WaitAllFree(*engine));
  engine->Cancel(h->id);  // finished: ignored
}

TEST_F(ServingEngineTest, StopTokenIsReturnedAndStopStringIsCut) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  Result<StreamHandle> plain =
      Start(engine.get(), Greedy(engine->tokenizer(), "Once upon a time", 20));
  ASSERT_TRUE(plain.ok() && plain->Wait());
  ServingRequest r = Greedy(engine->tokenizer(), "Once upon a time", 20);
  r.stop_token_ids = {plain->out->ids[3]};
  Result<StreamHandle> by_id = Start(engine.get(), std::move(r));
  ASSERT_TRUE(by_id.ok() && by_id->Wait());
  EXPECT_EQ(by_id->out->end.finish, FinishReason::kStopToken);
  EXPECT_EQ(by_id->out->ids,
            std::vector<int32_t>(plain->out->ids.begin(), plain->out->ids.begin() + 4));

  r = Greedy(engine->tokenizer(), "Once upon a time", 60);
  r.stop_strings = {"Lily."};
  Result<StreamHandle> by_text = Start(engine.get(), std::move(r));
  ASSERT_TRUE(by_text.ok() && by_text->Wait());
  EXPECT_EQ(by_text->out->end.finish, FinishReason::kStopString);
  EXPECT_EQ(by_text->out->text, ", there was a little girl named ");
}

TEST_F(ServingEngineTest, LimitsAreRefusedBeforeAllocationNamingTheLimit) {
  ServingEngineOptions options;
  options.limits.max_prompt_tokens = 8;
  options.limits.max_new_tokens = 50;
  options.limits.max_sessions = 2;
  options.limits.max_queue = 1;
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  const Tokenizer& tok = engine->tokenizer();
  auto start = [&](ServingRequest r) {
    return engine->StartStream(
        std::move(r), [](auto) {}, [](const Status&, const StreamEnd&) {});
  };
  struct Case {
    ServingRequest request;
    StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases;
  cases.push_back({Greedy(tok, "one two three four five six seven eight nine", 5),
                   StatusCode::kResourceExhausted, "max_prompt_tokens = 8"});
  cases.push_back({Greedy(tok, "Once", 51), StatusCode::kResourceExhausted, "max_new_tokens = 50"});
  cases.push_back({Greedy(tok, "Once", -1), StatusCode::kInvalidArgument, "max_new_tokens"});
  ServingRequest empty = Greedy(tok, "Once", 5);
  empty.prompt_ids.clear();
  cases.push_back({empty, StatusCode::kInvalidArgument, "prompt: empty"});
  ServingRequest outside = Greedy(tok, "Once", 5);
  outside.prompt_ids.push_back(512);
  cases.push_back({outside, StatusCode::kInvalidArgument, "outside the vocabulary"});
  ServingRequest bad_sampling = Greedy(tok, "Once", 5);
  bad_sampling.sampling.top_p = 0;
  cases.push_back({bad_sampling, StatusCode::kInvalidArgument, "top_p"});
  for (const Case& c : cases) {
    Result<uint64_t> r = start(c.request);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status();
  }
  // Two sessions alive: the third request waits in the queue (it is not
  // refused), the fourth finds the queue full.
  Result<std::string> first = OpenSession(engine.get());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(OpenSession(engine.get()).ok());
  Result<StreamHandle> third = Start(engine.get(), Greedy(tok, "Once", 5));
  ASSERT_TRUE(third.ok()) << third.status();
  for (int i = 0; i < 1000 && engine->stats().queue_depth != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(engine->stats().queue_depth, 1);
  EXPECT_EQ(engine->stats().active_sessions, 2);
  EXPECT_EQ(engine->stats().running_requests, 0);  // two idle sessions, one waiting
  EXPECT_FALSE(third->Wait(0));
  Result<uint64_t> fourth = start(Greedy(tok, "Once", 5));
  ASSERT_FALSE(fourth.ok());
  EXPECT_TRUE(fourth.status().IsResourceExhausted());
  EXPECT_NE(fourth.status().message().find("max_queue = 1"), std::string::npos) << fourth.status();
  // A session released: the waiting stream is admitted and runs to its end.
  ASSERT_TRUE(engine->Release(*first).ok());
  ASSERT_TRUE(third->Wait());
  EXPECT_TRUE(third->out->status.ok()) << third->out->status;
  engine->Drain();
  const Status drained = engine->StartSession(Greedy(tok, "Once", 5), [](auto) {}).status();
  EXPECT_EQ(drained.code(), StatusCode::kUnavailable) << drained;
}

// The drain's grace expired: running streams end (OK, kCancelled, with
// the usage so far), a prefill still waiting gets Unavailable, an idle
// session stays, and no new Decode starts.
TEST_F(ServingEngineTest, CancelAllEndsRunningWorkButKeepsIdleSessions) {
  ServingEngineOptions options;
  options.limits.max_sessions = 2;
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  const Tokenizer& tok = engine->tokenizer();
  Result<std::string> idle = OpenSession(engine.get());
  ASSERT_TRUE(idle.ok()) << idle.status();
  ServingRequest long_request = Greedy(tok, "Once upon a time", 400);
  long_request.ignore_eos = true;
  std::promise<void> first_token;
  Result<StreamHandle> stream = Start(engine.get(), long_request, &first_token);
  ASSERT_TRUE(stream.ok()) << stream.status();
  first_token.get_future().wait();
  // Both session slots are taken: this prefill waits.
  std::promise<Result<SessionPrefill>> waiting;
  ASSERT_TRUE(engine
                  ->StartSession(Greedy(tok, "Tom", 5),
                                 [&](Result<SessionPrefill> r) { waiting.set_value(r); })
                  .ok());
  engine->CancelAll();
  ASSERT_TRUE(stream->Wait());
  EXPECT_TRUE(stream->out->status.ok()) << stream->out->status;
  EXPECT_EQ(stream->out->end.finish, FinishReason::kCancelled);
  EXPECT_EQ(stream->out->end.generated_tokens, static_cast<int64_t>(stream->out->ids.size()));
  EXPECT_LT(stream->out->ids.size(), 400u);
  Result<SessionPrefill> refused = waiting.get_future().get();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status();
  // Nothing new starts after CancelAll (so a shutdown has nothing to wait
  // for), but the idle session is still there to be released.
  const Status late = engine->Decode(*idle, 1, [](Result<SessionDecode>) {});
  EXPECT_EQ(late.code(), StatusCode::kUnavailable) << late;
  EXPECT_TRUE(engine->Release(*idle).ok());
  EXPECT_TRUE(WaitAllFree(*engine));
}

// A cache that holds one request's worst case at a time: while a session
// holds it, a stream waits in the queue, the next request finds the queue
// full, and a request larger than the whole cache is refused; releasing the
// session lets the stream run.
TEST_F(ServingEngineTest, KvFullRequestsWaitAndOversizedOnesAreRefused) {
  ServingEngineOptions options;
  options.kv_block_size = 16;
  options.limits.max_queue = 1;
  // stories260K: 5 layers, 4 kv heads of 8: 5 * 2 * 16 * 32 * 4 bytes a block.
  options.kv_cache_bytes = 4 * 5 * 2 * 16 * 32 * 4;  // 4 blocks = 64 positions
  auto engine = Engine(options);
  ASSERT_NE(engine, nullptr);
  const Tokenizer& tok = engine->tokenizer();
  Result<std::string> session = OpenSession(engine.get(), 50);  // 54 positions: 4 blocks
  ASSERT_TRUE(session.ok()) << session.status();
  Result<StreamHandle> waiting = Start(engine.get(), Greedy(tok, "One day", 50));
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  Result<uint64_t> third = engine->StartStream(
      Greedy(tok, "Tom", 5), [](auto) {}, [](const Status&, const StreamEnd&) {});
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.status().message().find("max_queue = 1"), std::string::npos) << third.status();
  Result<uint64_t> huge = engine->StartStream(
      Greedy(tok, "Tom", 70), [](auto) {}, [](const Status&, const StreamEnd&) {});
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(huge.status().IsResourceExhausted());
  EXPECT_NE(huge.status().message().find("kv_cache_bytes"), std::string::npos) << huge.status();
  for (int i = 0; i < 1000 && engine->stats().queue_depth != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(engine->stats().queue_depth, 1);
  EXPECT_FALSE(waiting->Wait(0));
  ASSERT_TRUE(engine->Release(*session).ok());
  ASSERT_TRUE(waiting->Wait());
  EXPECT_TRUE(waiting->out->status.ok()) << waiting->out->status;
  EXPECT_FALSE(waiting->out->ids.empty());
  EXPECT_TRUE(WaitAllFree(*engine));
}

TEST_F(ServingEngineTest, DestructionEndsPendingWork) {
  auto engine = Engine();
  ASSERT_NE(engine, nullptr);
  ServingRequest r = Greedy(engine->tokenizer(), "Once upon a time", 400);
  r.ignore_eos = true;
  Result<StreamHandle> h = Start(engine.get(), std::move(r));
  ASSERT_TRUE(h.ok());
  engine.reset();
  ASSERT_TRUE(h->Wait(0));
  EXPECT_TRUE(h->out->status.IsCancelled() || h->out->status.ok()) << h->out->status;
}

}  // namespace
}  // namespace relayout
