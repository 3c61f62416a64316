#include "engine/serving/batch_scheduler.h"

namespace relayout {

Batch ScheduleStep(const SchedulerInput& input) {
  Batch batch;
  batch.decodes.assign(input.decoding.begin(), input.decoding.end());
  batch.tokens = static_cast<int64_t>(batch.decodes.size());
  int64_t free_blocks = input.free_kv_blocks;
  for (const WaitingRequest& w : input.waiting) {
    if (static_cast<int64_t>(batch.prefills.size()) >= input.free_sequence_slots) break;
    if (w.kv_blocks > free_blocks) break;
    const bool fits_budget = batch.tokens + w.prompt_tokens <= input.max_batch_tokens;
    const bool alone = batch.prefills.empty() && w.prompt_tokens > input.max_batch_tokens;
    if (!fits_budget && !alone) break;
    batch.prefills.push_back(w.id);
    batch.tokens += w.prompt_tokens;
    batch.kv_blocks += w.kv_blocks;
    free_blocks -= w.kv_blocks;
    if (alone) break;
  }
  return batch;
}

}  // namespace relayout
