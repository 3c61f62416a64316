#include "server/observe/conversion_progress.h"

#include "server/observe/structured_log.h"

namespace relayout::server {

ConversionProgress::ConversionProgress(ServerState* state, ServerMetrics* metrics,
                                       uint64_t bytes_total)
    : state_(state), metrics_(metrics), bytes_total_(bytes_total) {}

void ConversionProgress::OnTensorConverted(const TensorConversionReport& tensor, size_t done,
                                           size_t total, const MemoryLedgerSnapshot& ledger) {
  bytes_done_ += tensor.bytes;
  state_->SetProgress(static_cast<uint32_t>(done), bytes_done_);
  const double ratio = bytes_total_ > 0
                           ? static_cast<double>(bytes_done_) / static_cast<double>(bytes_total_)
                       : total > 0 ? static_cast<double>(done) / static_cast<double>(total)
                                   : 1.0;
  const uint64_t scratch_peak = ledger.peak_bytes[static_cast<size_t>(MemoryCategory::kScratch)];
  metrics_->OnTensorConverted(tensor, ratio, ledger.total_peak_bytes, scratch_peak);
  const int decile = static_cast<int>(ratio * 10 + 1e-9);
  if (decile <= last_decile_) return;
  last_decile_ = decile;
  LogInfo("conversion progress", {{"percent", static_cast<int>(ratio * 100 + 1e-9)},
                                  {"tensors_done", static_cast<uint64_t>(done)},
                                  {"tensors_total", static_cast<uint64_t>(total)},
                                  {"bytes_done", bytes_done_},
                                  {"bytes_total", bytes_total_},
                                  {"ledger_bytes", ledger.total_current_bytes},
                                  {"ledger_peak_bytes", ledger.total_peak_bytes}});
}

}  // namespace relayout::server
