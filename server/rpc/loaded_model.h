// LoadedModel: the converted model, as the daemon hands it to the backend
// that serves it. Plain engine types; it sits below both the daemon that
// makes it and the backend that takes it.
#pragma once

#include <memory>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/memory/memory_ledger.h"
#include "engine/model/model_placement.h"
#include "engine/serving/serving_limits.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout::server {

struct LoadedModel {
  // Checkpoint (config, source), layout policy, plan, and the plugin device
  // the weights are on (null: the CPU).
  PreparedLoad load;
  // The host ledger: the weights' buffers on the CPU (it must outlive them;
  // a backend keeps both and draws its KV cache on it too), the staging of
  // a device's conversion.
  std::unique_ptr<MemoryLedger> ledger;
  PlacedWeights weights;
  std::shared_ptr<const Tokenizer> tokenizer;
  ServingLimits limits;
};

}  // namespace relayout::server
