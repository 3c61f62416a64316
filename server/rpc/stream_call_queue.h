// StreamCallQueue: the end-of-call state machine of one server-streaming
// call, with no gRPC in it (so that it is tested through every ordering of
// its events, and under ThreadSanitizer, without a server).
//
// Two sides feed it events from any threads:
//   producer   Append (merge into the message waiting to be written), End
//              (the last message, or none, and the call's status);
//   transport  WriteDone(ok), Cancel (the client went away, a deadline
//              passed, or the server shuts the call down), FinishNow (an
//              error before the stream started).
// Every event returns the one Step the caller must then take outside the
// lock: start a write of *message, finish the call with a status, or
// nothing. The invariants, whatever order the events come in:
//   - at most one write is in flight, and no write starts after Finish;
//   - Finish is returned exactly once, and only when no write is in flight
//     (so the transport may complete the call and free it);
//   - after End, every message queued before it is written, in order, and
//     then the call finishes with End's status; after Cancel or a failed
//     write, what is queued is dropped and the call finishes as soon as the
//     write in flight (if any) completes.
// Any event may come after the call finished; it returns kNothing.
//
// The state diagram (write_in_flight_ is orthogonal):
//   open --End--> ending --last write done--> finished
//   open|ending --Cancel/WriteDone(false)--> aborting --no write in flight--> finished
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <utility>

namespace relayout::server {

// A call's final status, in gRPC's code numbering (0 = OK), without gRPC.
struct CallStatus {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
};

template <typename Message>
class StreamCallQueue {
 public:
  struct Step {
    enum class Kind { kNothing, kWrite, kFinish };
    Kind kind = Kind::kNothing;
    const Message* message = nullptr;  // kWrite: stays valid until WriteDone
    CallStatus status;                 // kFinish
  };

  // Producer: `fill(Message&)` adds to the message that has not started
  // writing yet (or a new one), so tokens that arrive during a slow write
  // are merged. Ignored (kNothing) once the call is ending or aborting.
  template <typename Fill>
  Step Append(Fill&& fill) {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kOpen) return {};
    fill(Back());
    return PumpLocked();
  }

  // Producer: the stream's end. `fill_final(Message&)` adds the final
  // message's content when `status` is OK (it is skipped otherwise); then
  // the call finishes with `status` once everything queued is written.
  template <typename Fill>
  Step End(CallStatus status, Fill&& fill_final) {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kOpen) return {};
    if (status.ok()) fill_final(Back());
    state_ = State::kEnding;
    status_ = std::move(status);
    return PumpLocked();
  }
  Step End(CallStatus status) {
    return End(std::move(status), [](Message&) {});
  }

  // Transport: the write started by the last kWrite completed.
  Step WriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    write_in_flight_ = false;
    if (!ok) AbortLocked({kCancelledCode, "the client stopped reading"});
    return PumpLocked();
  }

  // Transport: the call is being cancelled; queued messages are dropped.
  Step Cancel(CallStatus status) {
    std::lock_guard<std::mutex> lock(mu_);
    AbortLocked(std::move(status));
    return PumpLocked();
  }

  // Transport: end before any message (admission or validation error).
  // Equivalent to End(status) on a queue that never had a message.
  Step FinishNow(CallStatus status) { return End(std::move(status)); }

  // True once End, Cancel or a failed write happened: nothing more will be
  // queued.
  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return state_ != State::kOpen;
  }
  bool finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return state_ == State::kFinished;
  }

  static constexpr int kCancelledCode = 1;  // gRPC CANCELLED

 private:
  enum class State { kOpen, kEnding, kAborting, kFinished };

  Message& Back() {
    if (pending_.empty()) pending_.emplace_back();
    return pending_.back();
  }

  // The first abort's status wins; an abort after End still drops what is
  // queued (the client is gone) and replaces End's status.
  void AbortLocked(CallStatus status) {
    if (state_ == State::kFinished || state_ == State::kAborting) return;
    pending_.clear();
    state_ = State::kAborting;
    status_ = std::move(status);
  }

  Step PumpLocked() {
    if (state_ == State::kFinished || write_in_flight_) return {};
    if (state_ == State::kAborting || (state_ == State::kEnding && pending_.empty())) {
      state_ = State::kFinished;
      return {Step::Kind::kFinish, nullptr, status_};
    }
    if (pending_.empty()) return {};
    writing_ = std::move(pending_.front());
    pending_.pop_front();
    write_in_flight_ = true;
    return {Step::Kind::kWrite, &writing_, {}};
  }

  mutable std::mutex mu_;
  State state_ = State::kOpen;    // GUARDED_BY(mu_)
  bool write_in_flight_ = false;  // GUARDED_BY(mu_)
  std::deque<Message> pending_;   // GUARDED_BY(mu_)
  Message writing_;               // the write in flight's message
  CallStatus status_;             // GUARDED_BY(mu_): the status Finish gets
};

}  // namespace relayout::server
