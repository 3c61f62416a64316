// The relayout executor: runs a ConversionPlan, tensor by tensor.
//
// For each tensor, in plan order: allocate its final buffer through the
// memory ledger, read its bytes from the WeightSource straight into it,
// convert in place with the planned strategy (scratch drawn from the ledger
// and released at once), and tell the observer. Tensors of one wave run on
// parallel threads, so reads and conversions overlap; the planner has made
// sure the scratch of one wave fits the budget, so the ledger's peak stays at
// or below weights + budget. The checkpoint is only read, never written.
//
// Thread safety: ExecuteConversion may be called from any thread; the
// observer is called from the conversion threads, one call at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/weight_source.h"
#include "engine/conversion/conversion_plan.h"
#include "engine/memory/host_buffer.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {

// One converted tensor, resident in its target layout.
struct LoadedTensor {
  std::string name;  // internal name ("blk.3.attn_q")
  TensorRef ref;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Layout layout;
  HostBuffer buffer;
};

struct LoadedWeights {
  std::vector<LoadedTensor> tensors;  // in file order
  // The tensor for a role, or nullptr.
  const LoadedTensor* Find(TensorRole role, int layer = -1) const;
};

struct TensorConversionReport {
  std::string name;  // the container's name
  std::string internal_name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string layout;  // target layout name
  Strategy strategy = Strategy::kNone;
  uint64_t bytes = 0;  // final bytes
  uint64_t scratch_bytes = 0;
  double seconds = 0;  // read + convert
  double read_seconds = 0;
  // Converted in place on the device (its scratch on the device), rather
  // than in host memory before the upload.
  bool on_device = false;
};

// What `relayoutd convert` reports and the server exports as metrics.
struct RelayoutReport {
  std::string device = "cpu";
  uint32_t workers = 1;
  uint64_t weights_bytes = 0;
  uint64_t budget_bytes = 0;
  uint64_t predicted_peak_bytes = 0;
  uint64_t measured_peak_bytes = 0;  // the ledger's peak during conversion
  uint64_t scratch_peak_bytes = 0;   // the ledger's peak of scratch alone
  uint64_t staging_peak_bytes = 0;   // host staging on the way to a device (0 on the CPU)
  // Host scratch of tensors converted in staging before their upload to a
  // device (0 on the CPU, whose scratch is scratch_peak_bytes).
  uint64_t host_scratch_peak_bytes = 0;
  uint64_t os_peak_rss_bytes = 0;   // VmHWM after conversion (0 if unreadable)
  uint64_t baseline_rss_bytes = 0;  // VmRSS before loading (0 if unreadable)
  double seconds = 0;
  double bytes_per_second = 0;
  std::vector<TensorConversionReport> tensors;  // in plan order

  // measured_peak_bytes <= weights_bytes + budget_bytes.
  bool bound_held() const { return measured_peak_bytes <= weights_bytes + budget_bytes; }
};

class ConversionObserver {
 public:
  virtual ~ConversionObserver() = default;
  // After each tensor: its report, how many are done of how many, and the
  // ledger's state (for progress lines and live metrics).
  virtual void OnTensorConverted(const TensorConversionReport& tensor, size_t done, size_t total,
                                 const MemoryLedgerSnapshot& ledger) = 0;
};

// Loads and converts every tensor of `plan`. `cancel` (may be null) is
// polled between tensors: when set, the conversion stops, every buffer is
// freed and Cancelled is returned. Other errors: the ledger's
// ResourceExhausted, the source's read errors (naming file and tensor),
// Internal if the measured peak broke the planned bound.
// `report` (may be null) is filled on success.
// One tensor of a plan, read into a host buffer of `category` (kWeights
// when it stays there, kStaging on its way to a device) and converted in
// place with the step's strategy, its scratch drawn as kScratch and
// released before returning. Fills *out and *report.
Status ConvertTensorOnHost(const WeightSource& source, const TensorConversion& t,
                           const PlanStep& step, MemoryLedger* ledger, MemoryCategory category,
                           LoadedTensor* out, TensorConversionReport* report);
// What a converted tensor is (name, role, dtype, shape, layout) and its
// report's fields other than the times; out->buffer is left alone.
void DescribeConvertedTensor(const TensorConversion& t, const PlanStep& step,
                             TensorConversionReport* report, LoadedTensor* out);

// What every conversion's report measures around it, on the host: the
// process's resident memory (VmRSS when it starts, VmHWM reset then, so the
// peak is this conversion's) and the wall clock. For the host-reference
// plugin the device's memory is host memory too, and counts here.
class ConversionWindow {
 public:
  ConversionWindow();  // the start
  double seconds() const;
  // Sets baseline_rss_bytes, os_peak_rss_bytes (0 if unknown), seconds and
  // bytes_per_second (over weight_bytes).
  void Finish(uint64_t weight_bytes, RelayoutReport* report) const;

 private:
  std::chrono::steady_clock::time_point start_;
  uint64_t baseline_rss_ = 0;
  bool hwm_reset_ = false;
};

Result<LoadedWeights> ExecuteConversion(const WeightSource& source, const ConversionPlan& plan,
                                        MemoryLedger* ledger, ConversionObserver* observer,
                                        const std::atomic<bool>* cancel, RelayoutReport* report);

}  // namespace relayout
