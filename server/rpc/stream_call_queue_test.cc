#include "server/rpc/stream_call_queue.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace relayout::server {
namespace {

struct TestMessage {
  std::vector<int> tokens;
  bool final = false;
};

using Queue = StreamCallQueue<TestMessage>;
using Kind = Queue::Step::Kind;

// A simulated transport: applies each Step as gRPC would and checks the
// invariants of stream_call_queue.h on every event.
struct Transport {
  Queue queue;
  bool write_in_flight = false;
  int finishes = 0;
  CallStatus finish_status;
  std::vector<int> delivered;
  bool final_delivered = false;
  bool failed_before_finish = false;  // a cancel or failed write while open
  std::vector<std::string> violations;

  void Apply(const Queue::Step& step, const std::string& event) {
    if (finishes > 0 && step.kind != Kind::kNothing) {
      violations.push_back(event + ": a step after Finish");
    }
    if (step.kind == Kind::kWrite) {
      if (write_in_flight) violations.push_back(event + ": a second write in flight");
      if (final_delivered) violations.push_back(event + ": a write after the final message");
      write_in_flight = true;
      for (int t : step.message->tokens) delivered.push_back(t);
      final_delivered = step.message->final;
    } else if (step.kind == Kind::kFinish) {
      if (write_in_flight) violations.push_back(event + ": Finish with a write in flight");
      ++finishes;
      finish_status = step.status;
    }
  }
};

// One event of an ordering.
enum class Event { kProduce, kCancel, kWriteOk, kWriteFail };

const char* EventName(Event e) {
  switch (e) {
    case Event::kProduce:
      return "produce";
    case Event::kCancel:
      return "cancel";
    case Event::kWriteOk:
      return "write-ok";
    case Event::kWriteFail:
      return "write-fail";
  }
  return "?";
}

// The producer's script: two token groups, then the end (OK with a final
// message, or an error).
constexpr int kProducerEvents = 3;

struct Ordering {
  bool end_ok = true;
  std::vector<Event> events;
};

std::string Describe(const Ordering& o) {
  std::string s = o.end_ok ? "end=ok:" : "end=error:";
  for (Event e : o.events) s += std::string(" ") + EventName(e);
  return s;
}

// Replays `o` on a fresh transport; returns it for inspection.
std::unique_ptr<Transport> Replay(const Ordering& o, int* produced, bool* cancelled) {
  auto t = std::make_unique<Transport>();
  *produced = 0;
  *cancelled = false;
  for (Event e : o.events) {
    const std::string name = Describe(o);
    switch (e) {
      case Event::kProduce:
        if (*produced < 2) {
          const int token = *produced + 1;
          t->Apply(t->queue.Append([token](TestMessage& m) { m.tokens.push_back(token); }), name);
        } else {
          CallStatus status = o.end_ok ? CallStatus{} : CallStatus{13, "backend failed"};
          t->Apply(t->queue.End(status, [](TestMessage& m) { m.final = true; }), name);
        }
        ++*produced;
        break;
      case Event::kCancel:
        *cancelled = true;
        if (t->finishes == 0) t->failed_before_finish = true;
        t->Apply(t->queue.Cancel({1, "cancelled"}), name);
        break;
      case Event::kWriteOk:
      case Event::kWriteFail:
        t->write_in_flight = false;
        if (e == Event::kWriteFail && t->finishes == 0) t->failed_before_finish = true;
        t->Apply(t->queue.WriteDone(e == Event::kWriteOk), name);
        break;
    }
  }
  return t;
}

// Walks every ordering of the producer's events, an optional cancel, and
// the completion (ok or failed) of each write the queue starts.
void Explore(Ordering& o, int* leaves) {
  int produced = 0;
  bool cancelled = false;
  std::unique_ptr<Transport> t = Replay(o, &produced, &cancelled);
  ASSERT_TRUE(t->violations.empty()) << t->violations.front();

  std::vector<Event> next;
  if (produced < kProducerEvents) next.push_back(Event::kProduce);
  if (!cancelled) next.push_back(Event::kCancel);
  if (t->write_in_flight) {
    next.push_back(Event::kWriteOk);
    next.push_back(Event::kWriteFail);
  }
  // A leaf: the transport has nothing to deliver; the producer is done or
  // the call was cancelled (a backend may never end a cancelled stream).
  const bool quiet = !t->write_in_flight;
  const bool settled = produced == kProducerEvents || cancelled || t->finishes > 0;
  if (quiet && settled) {
    ++*leaves;
    const std::string name = Describe(o);
    ASSERT_EQ(t->finishes, 1) << name;
    if (!t->failed_before_finish) {
      EXPECT_EQ(t->finish_status.code, o.end_ok ? 0 : 13) << name;
      if (o.end_ok) {
        EXPECT_EQ(t->delivered, (std::vector<int>{1, 2})) << name;
        EXPECT_TRUE(t->final_delivered) << name;
      }
    } else {
      EXPECT_FALSE(t->finish_status.ok()) << name;
    }
  }
  for (Event e : next) {
    o.events.push_back(e);
    Explore(o, leaves);
    o.events.pop_back();
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(StreamCallQueueTest, EveryOrderingOfEventsFinishesExactlyOnceWithOneWriteInFlight) {
  for (bool end_ok : {true, false}) {
    Ordering o;
    o.end_ok = end_ok;
    int leaves = 0;
    Explore(o, &leaves);
    // The walk is exhaustive, not a sample: hundreds of orderings.
    EXPECT_GT(leaves, 50) << "end_ok=" << end_ok;
  }
}

// The path that once left a call unfinished: a write in flight, the client
// cancels, then the write fails.
TEST(StreamCallQueueTest, CancelDuringAWriteFinishesWhenTheWriteFails) {
  Transport t;
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(1); }), "append");
  ASSERT_TRUE(t.write_in_flight);
  t.Apply(t.queue.Cancel({1, "cancelled"}), "cancel");
  EXPECT_EQ(t.finishes, 0);
  t.write_in_flight = false;
  t.Apply(t.queue.WriteDone(false), "write-fail");
  EXPECT_EQ(t.finishes, 1);
  EXPECT_EQ(t.finish_status.code, 1);
  EXPECT_TRUE(t.violations.empty());
}

TEST(StreamCallQueueTest, TokensArrivingDuringAWriteAreMergedIntoOneMessage) {
  Transport t;
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(1); }), "append");
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(2); }), "append");
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(3); }), "append");
  EXPECT_EQ(t.delivered, (std::vector<int>{1}));
  t.write_in_flight = false;
  const Queue::Step step = t.queue.WriteDone(true);
  ASSERT_EQ(step.kind, Kind::kWrite);
  EXPECT_EQ(step.message->tokens, (std::vector<int>{2, 3}));
}

TEST(StreamCallQueueTest, FinishNowBeforeAnyMessageFinishesOnce) {
  Transport t;
  t.Apply(t.queue.FinishNow({3, "bad request"}), "finish-now");
  t.Apply(t.queue.Cancel({1, "cancelled"}), "cancel");
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(1); }), "append");
  EXPECT_EQ(t.finishes, 1);
  EXPECT_EQ(t.finish_status.code, 3);
  EXPECT_TRUE(t.violations.empty());
}

TEST(StreamCallQueueTest, AppendsAfterTheEndAreIgnored) {
  Transport t;
  t.Apply(t.queue.End({}, [](TestMessage& m) { m.final = true; }), "end");
  ASSERT_TRUE(t.queue.closed());
  t.Apply(t.queue.Append([](TestMessage& m) { m.tokens.push_back(9); }), "append");
  t.write_in_flight = false;
  t.Apply(t.queue.WriteDone(true), "write-ok");
  EXPECT_TRUE(t.delivered.empty());
  EXPECT_TRUE(t.final_delivered);
  EXPECT_EQ(t.finishes, 1);
}

// Producer, canceller and writer on three threads, many times: under
// ThreadSanitizer this is the race check; everywhere it checks that each
// call finishes once.
TEST(StreamCallQueueTest, ConcurrentProducerCancellerAndWriterFinishOnce) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    Queue queue;
    std::atomic<int> finishes{0};
    std::atomic<int> writes_in_flight{0};
    std::atomic<bool> bad{false};
    std::mutex steps_mu;
    std::vector<const TestMessage*> to_complete;
    const auto apply = [&](const Queue::Step& step) {
      if (step.kind == Kind::kWrite) {
        if (writes_in_flight.fetch_add(1) != 0) bad = true;
        std::lock_guard<std::mutex> lock(steps_mu);
        to_complete.push_back(step.message);
      } else if (step.kind == Kind::kFinish) {
        if (writes_in_flight.load() != 0) bad = true;
        finishes.fetch_add(1);
      }
    };
    const int cancel_after = static_cast<int>(rng() % 40);
    std::thread producer([&] {
      for (int i = 0; i < 30; ++i)
        apply(queue.Append([i](TestMessage& m) { m.tokens.push_back(i); }));
      apply(queue.End({}, [](TestMessage& m) { m.final = true; }));
    });
    std::thread canceller([&] {
      for (int i = 0; i < cancel_after; ++i) std::this_thread::yield();
      if (cancel_after % 3 == 0) apply(queue.Cancel({1, "cancelled"}));
    });
    std::thread writer([&] {
      while (finishes.load() == 0) {
        bool have = false;
        {
          std::lock_guard<std::mutex> lock(steps_mu);
          if (!to_complete.empty()) {
            to_complete.pop_back();
            have = true;
          }
        }
        if (have) {
          writes_in_flight.fetch_sub(1);
          apply(queue.WriteDone(rng() % 50 != 0));
        } else {
          std::this_thread::yield();
        }
      }
    });
    producer.join();
    canceller.join();
    writer.join();
    EXPECT_EQ(finishes.load(), 1) << "round " << round;
    EXPECT_FALSE(bad.load()) << "round " << round;
  }
}

}  // namespace
}  // namespace relayout::server
