// BatchScheduler: the continuous-batching decision of one engine step, as a
// pure function (no locks, no I/O, no model): from the waiting queue, the
// sequences that want a token, the free KV blocks and the token budget, to
// the Batch that one forward pass runs.
//
// Policy:
//   - every decoding sequence gets its one token, first: running work is
//     never starved by new arrivals (each costs one token of the budget);
//   - then waiting prefills are admitted in FIFO order while their prompt
//     tokens fit the budget left and their KV blocks fit the free ones. The
//     first request that does not fit stops admission (no overtaking), so a
//     large request is never starved by smaller ones behind it;
//   - at most free_sequence_slots requests are admitted (the max_sessions
//     limit counts admitted sequences; the rest wait in the queue, so a
//     full session table delays new requests instead of refusing them);
//   - a prompt longer than the whole budget is admitted alone, as the only
//     prefill of a step (else it could never run);
//   - KV blocks are counted for a request's worst case (prompt plus its
//     max_new_tokens, see WaitingRequest::kv_blocks): once admitted, a
//     sequence can always decode to its end, so a running sequence never
//     meets a full cache and nothing is ever preempted. A request whose
//     worst case is larger than the whole cache is refused before it is
//     queued (ServingEngine); one that fits the cache but not the free
//     blocks waits in the queue.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace relayout {

struct WaitingRequest {
  uint64_t id = 0;
  int64_t prompt_tokens = 0;  // tokens its prefill runs, >= 1
  int64_t kv_blocks = 0;      // blocks it may hold at most, reserved at admission
};

struct SchedulerInput {
  std::span<const WaitingRequest> waiting;  // oldest first
  std::span<const uint64_t> decoding;       // sequences that want one token
  int64_t free_kv_blocks = 0;    // blocks neither held nor promised to admitted sequences
  int64_t max_batch_tokens = 0;  // tokens of one forward pass, >= 1
  // Sequences that may still be admitted (max_sessions less those alive).
  int64_t free_sequence_slots = std::numeric_limits<int64_t>::max();
};

struct Batch {
  std::vector<uint64_t> prefills;  // a prefix of waiting, in order
  std::vector<uint64_t> decodes;   // every id of decoding, in order
  int64_t tokens = 0;              // prefill tokens plus one per decode
  int64_t kv_blocks = 0;           // blocks the admitted prefills reserve

  bool empty() const { return prefills.empty() && decodes.empty(); }
};

// The next step's batch. Never fails: with nothing to do the batch is empty.
Batch ScheduleStep(const SchedulerInput& input);

}  // namespace relayout
