#include "server/cli/load_flags.h"

#include "engine/conversion/budget.h"

namespace relayout::cli {

void LoadFlags::Register(FlagSet* flags) {
  flags->AddString("model", &options.model_path,
                   "checkpoint: a safetensors file, a checkpoint directory or a GGUF file");
  flags->AddString("device", &options.device,
                   "auto (a GPU plugin if one loads, else the CPU), cpu, cuda[:N] or hostref[:N]");
  flags->AddString("layout", &options.layout,
                   "auto (preferred for this CPU), native, tuned (time each candidate layout's "
                   "matmul on the model's shapes at start-up, under 2 s, and keep the fastest "
                   "per tensor class and dtype), or a layout name; then optional "
                   ",CLASS[:DTYPE]=LAYOUT overrides, CLASS one of attn_qkv, attn_output, "
                   "ffn_gate_up, ffn_down, output and LAYOUT native or a layout name "
                   "(docs/LAYOUTS.md)");
  flags->AddString(
      "budget", &options.budget,
      "conversion scratch above the weights: 64MiB, 1GiB, 1048576, or 5% of the weights");
  flags->AddInt("workers", &options.workers,
                "conversions at once (0: hardware threads, at most 8)");
  flags->AddString("memory-limit", &memory_limit,
                   "bytes the device may use for weights + budget (default: available memory)");
}

Status LoadFlags::Finish() {
  if (require_model && options.model_path.empty())
    return Status::InvalidArgument("--model", "is required");
  if (!memory_limit.empty()) {
    Result<uint64_t> limit = ParseBudget(memory_limit, 0);
    if (!limit.ok()) return Status::InvalidArgument("--memory-limit", limit.status().message());
    if (*limit == 0) return Status::InvalidArgument("--memory-limit", "must be above 0");
    options.memory_limit = *limit;
  }
  return Status::OK();
}

}  // namespace relayout::cli
