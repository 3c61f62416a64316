#include "engine/conversion/model_loader.h"

#include <algorithm>
#include <thread>

#include "engine/conversion/budget.h"
#include "engine/device/cpu_device.h"
#include "engine/device/device_loader.h"
#include "engine/memory/process_memory.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout {

Result<PreparedLoad> PrepareLoad(Env* env, const LoadOptions& options) {
  if (options.workers < 0) {
    return Status::InvalidArgument("workers", StrCat(options.workers, " must be >= 0"));
  }
  PreparedLoad load;
  DeviceRequest request;
  request.spec = options.device;
  ASSIGN_OR_RETURN(OpenedDevice opened, OpenDevice(request));
  if (opened.device->spec() != "cpu") {
    const std::string found =
        StrCat(opened.device->spec(), " (", opened.device->info().name, ", ", opened.why, ")");
    if (options.device == "auto" && !opened.device->runs_forward_pass()) {
      load.device_choice =
          StrCat(found, " found, but its plugin lacks forward-pass ops; the CPU runs the model");
    } else {
      load.device_choice = StrCat(options.device == "auto" ? "auto: " : "asked for: ", found);
      load.device = std::move(opened.device);
    }
  } else {
    load.device_choice = opened.why;
  }
  ASSIGN_OR_RETURN(load.checkpoint, OpenCheckpoint(env, options.model_path));
  DeviceCaps caps;
  caps.cpu = kernels::DetectCpuFeatures();
  if (load.device != nullptr) {
    caps.gpu_compute_major = load.device->info().compute_major;
    caps.gpu_compute_minor = load.device->info().compute_minor;
  }
  const size_t comma = options.layout.find(',');
  if (options.layout.substr(0, comma) == "tuned") {
    // Timed on the device the weights go to: the plugin's, else the CPU
    // with a pool like the serving engine's (one thread per hardware one).
    TuningOptions tuning;
    if (comma != std::string::npos) tuning.overrides = options.layout.substr(comma + 1);
    LayoutTuningReport report;
    if (load.device != nullptr) {
      ASSIGN_OR_RETURN(load.policy,
                       TuneLayouts(load.checkpoint, caps, load.device.get(), tuning, &report));
    } else {
      MemoryLedger ledger;
      kernels::ThreadPool pool;
      CpuDevice cpu(&ledger, &pool);
      ASSIGN_OR_RETURN(load.policy, TuneLayouts(load.checkpoint, caps, &cpu, tuning, &report));
      report.threads = pool.size();
    }
    load.tuning = std::move(report);
  } else {
    ASSIGN_OR_RETURN(load.policy, LayoutPolicy::Create(caps, options.layout));
  }

  ConversionOptions conversion;
  conversion.device = load.device != nullptr ? load.device->spec() : "cpu";
  const uint64_t weights = WeightBytes(load.checkpoint);
  Result<uint64_t> budget = ParseBudget(options.budget, weights);
  if (!budget.ok()) return budget.status();
  conversion.budget_bytes = *budget;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  conversion.workers =
      static_cast<uint32_t>(options.workers > 0 ? options.workers : std::min(hw, 8u));
  if (load.device != nullptr) {
    // Staged through host: the device holds the weights and no scratch.
    conversion.device_capacity = load.device->info().total_bytes;
    const Device* device = load.device.get();
    conversion.alloc_size = [device](uint64_t n) { return device->AllocSize(n); };
  } else if (options.memory_limit > 0) {
    conversion.device_capacity = options.memory_limit;
  } else if (Result<uint64_t> available = ReadAvailableMemoryBytes(); available.ok()) {
    conversion.device_capacity = *available;
  }
  ASSIGN_OR_RETURN(load.plan, PlanConversion(load.checkpoint, *load.policy, conversion));
  if (options.native_first) {
    ASSIGN_OR_RETURN(const LayoutPolicy native, LayoutPolicy::Create(caps, "native"));
    load.target_plan = std::move(load.plan);
    ASSIGN_OR_RETURN(load.plan, PlanConversion(load.checkpoint, native, conversion));
  }
  return load;
}

}  // namespace relayout
