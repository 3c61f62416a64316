// ConversionProgress: the ConversionObserver the daemon gives the relayout
// executor. After each tensor it updates the ServerState's progress (for
// GetModelInfo) and the conversion metrics (live peaks, per-strategy
// counters and histograms), and logs a progress line per 10% of the bytes.
//
// Thread safety: the executor calls OnTensorConverted one call at a time
// (from its conversion threads); the state and metrics it writes are
// thread-safe.
#pragma once

#include <cstdint>

#include "engine/conversion/relayout_executor.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"

namespace relayout::server {

class ConversionProgress final : public ConversionObserver {
 public:
  // state and metrics are not owned and must outlive the conversion;
  // bytes_total is the weight bytes of the plan (the progress ratio's
  // denominator).
  ConversionProgress(ServerState* state, ServerMetrics* metrics, uint64_t bytes_total);

  void OnTensorConverted(const TensorConversionReport& tensor, size_t done, size_t total,
                         const MemoryLedgerSnapshot& ledger) override;

 private:
  ServerState* state_;
  ServerMetrics* metrics_;
  uint64_t bytes_total_;
  uint64_t bytes_done_ = 0;
  int last_decile_ = 0;
};

}  // namespace relayout::server
