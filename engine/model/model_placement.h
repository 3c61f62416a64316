// The start-up's last two steps, wherever PrepareLoad placed the model:
// ConvertForLoad runs the conversion (into host memory for the CPU,
// ExecuteConversion; onto the plugin device, ExecuteConversionOnDevice),
// and CreateModel builds the LlamaModel over the result on the same
// device. Every entry point (generate, serve, the tests, the benchmarks)
// goes through these two, so a --device reaches all of them the same way.
#pragma once

#include <atomic>
#include <memory>

#include "engine/base/status.h"
#include "engine/conversion/device_conversion.h"
#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/model/llama_model.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {

// Converted weights: in host memory (host) when the load has no device,
// else on load.device (on_device).
struct PlacedWeights {
  LoadedWeights host;
  DeviceWeights on_device;
};

// host_ledger counts the weights (CPU) or the staging and host scratch
// (a device; the device's own ledger counts what it holds). Errors: the
// conversion's.
Result<PlacedWeights> ConvertForLoad(const PreparedLoad& load, MemoryLedger* host_ledger,
                                     ConversionObserver* observer, const std::atomic<bool>* cancel,
                                     RelayoutReport* report);

// The model over the weights, on load.device (which must outlive it) or
// on the CPU with `pool` and `host_ledger` (see LlamaModel::Create).
Result<std::unique_ptr<LlamaModel>> CreateModel(const PreparedLoad& load, PlacedWeights weights,
                                                kernels::ThreadPool* pool,
                                                MemoryLedger* host_ledger);

}  // namespace relayout
