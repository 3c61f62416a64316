#include "engine/model/model_placement.h"

#include <utility>

namespace relayout {

Result<PlacedWeights> ConvertForLoad(const PreparedLoad& load, MemoryLedger* host_ledger,
                                     ConversionObserver* observer, const std::atomic<bool>* cancel,
                                     RelayoutReport* report) {
  PlacedWeights out;
  if (load.device != nullptr) {
    ASSIGN_OR_RETURN(out.on_device, ExecuteConversionOnDevice(*load.checkpoint.source, load.plan,
                                                              load.device.get(), host_ledger,
                                                              observer, cancel, report));
  } else {
    ASSIGN_OR_RETURN(out.host, ExecuteConversion(*load.checkpoint.source, load.plan, host_ledger,
                                                 observer, cancel, report));
  }
  return out;
}

Result<std::unique_ptr<LlamaModel>> CreateModel(const PreparedLoad& load, PlacedWeights weights,
                                                kernels::ThreadPool* pool,
                                                MemoryLedger* host_ledger) {
  const Checkpoint& c = load.checkpoint;
  if (load.device != nullptr) {
    return LlamaModel::Create(c.config, c.naming, std::move(weights.on_device), load.device.get());
  }
  return LlamaModel::Create(c.config, c.naming, std::move(weights.host), pool, host_ledger);
}

}  // namespace relayout
