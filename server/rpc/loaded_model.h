// LoadedModel: the converted model, as the daemon hands it to the backend
// that serves it. Plain engine types; it sits below both the daemon that
// makes it and the backend that takes it.
#pragma once

#include <memory>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/memory/memory_ledger.h"
#include "engine/serving/serving_limits.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout::server {

struct LoadedModel {
  PreparedLoad load;  // checkpoint (config, source), layout policy and plan
  // The ledger the weights' buffers are drawn on; it must outlive them (a
  // backend keeps both, and may draw its KV cache on it too).
  std::unique_ptr<MemoryLedger> ledger;
  LoadedWeights weights;
  std::shared_ptr<const Tokenizer> tokenizer;
  ServingLimits limits;
};

}  // namespace relayout::server
