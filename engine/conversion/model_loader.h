// Start-up, steps one to four of the design's data flow: open the checkpoint
// (headers and model spec), pick layouts for the device, parse the budget and
// plan the conversion. Shared by `plan`, `convert`, `generate` and `serve`,
// so each runs exactly the same decisions. Nothing is allocated for weights.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/conversion/conversion_plan.h"
#include "engine/conversion/layout_policy.h"
#include "engine/conversion/layout_tuner.h"
#include "engine/device/device.h"

namespace relayout {

struct LoadOptions {
  std::string model_path;
  // --device: auto, cpu, cuda[:N] or hostref[:N] (device_loader.h). An
  // explicit plugin device is opened, checked and kept: the conversion runs
  // onto it (device_conversion.h) and so does the forward pass. "auto"
  // takes a GPU plugin's device only when the plugin runs every op of the
  // forward pass, and otherwise stays on the CPU, saying why.
  std::string device = "auto";
  // "auto" (preferred layouts for this CPU), "native" (keep the common
  // layout), a layout name (docs/LAYOUTS.md), or "tuned" (measured on the
  // device, layout_tuner.h), then optional ,CLASS[:DTYPE]=LAYOUT entries
  // (layout_policy.h).
  std::string layout = "auto";
  // Conversion scratch above the weights: bytes ("64MiB", "1GiB", "1048576")
  // or a percentage of the weight bytes ("5%").
  std::string budget = "64MiB";
  // Conversions that may run at once; 0: the hardware threads, at most 8.
  int64_t workers = 0;
  // Bytes the device may use for weights + budget; 0: what the OS says is
  // available (cgroup limit included).
  uint64_t memory_limit = 0;
  // Serve while converting: the weights are loaded in their common layout
  // (the plan is native) and moved into the policy's layouts afterwards by
  // a live relayout (engine/conversion/live_relayout.h); target_plan is
  // then the plan that would have been run, for the description.
  bool native_first = false;
};

struct PreparedLoad {
  Checkpoint checkpoint;
  std::optional<LayoutPolicy> policy;
  // With --layout tuned: what was measured and chosen (layout_tuner.h).
  std::optional<LayoutTuningReport> tuning;
  ConversionPlan plan;
  // With native_first: the plan into the policy's layouts (not run).
  std::optional<ConversionPlan> target_plan;
  // Why the device is the one it is ("asked for", "no GPU plugin: ...").
  std::string device_choice;
  // The plugin device the model goes to; null: the CPU.
  std::unique_ptr<Device> device;
};

// Errors are one line naming what is wrong: the checkpoint's, the budget's
// ("budget: ..."), the planner's (tensor and minimal budget), or the device's.
Result<PreparedLoad> PrepareLoad(Env* env, const LoadOptions& options);

}  // namespace relayout
