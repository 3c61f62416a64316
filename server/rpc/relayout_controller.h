// RelayoutController: the one way the daemon converts served weights
// while serving, for the start-up conversion of --serve-while-converting
// and for relayout.v1.Admin/Relayout alike. It turns a layout spec and a
// budget into a ServingEngine relayout (through the GenerationBackend),
// and reports it exactly as the start-up conversion is reported: the
// ServerState's progress and "converting" flag (GetModelInfo, /readyz),
// ConversionProgress's metrics and log lines, and at the end the report
// (ServerMetrics::SetReport, ServerState::SetReport) and a "conversion
// done" log line.
//
// Thread safety: every method may be called from any thread; callbacks run
// on the serving engine's scheduler thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "engine/base/status.h"
#include "engine/conversion/layout_policy.h"
#include "engine/conversion/relayout_executor.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/generation_backend.h"

namespace relayout::server {

// Where a relayout is, after each tensor.
struct RelayoutProgressUpdate {
  uint32_t tensors_done = 0;
  uint32_t tensors_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::string tensor;  // the tensor just converted
  std::string layout;  // its layout now ("native" for the common layout)
};

struct RelayoutCallbacks {
  std::function<void(const RelayoutProgressUpdate&)> on_progress;  // may be empty
  // Once: OK with the report, Cancelled, or the error that stopped it.
  std::function<void(const Status&, const RelayoutReport&)> on_done;  // may be empty
};

class RelayoutController {
 public:
  // state and metrics (not owned) outlive the controller.
  RelayoutController(ServerState* state, ServerMetrics* metrics);

  // The backend relayouts go to, once the model is loaded (until then
  // Start is Unavailable); caps: the device the weights are on (the load's
  // LayoutPolicy caps); weight_bytes: the base of a budget percentage.
  void AttachBackend(GenerationBackend* backend, DeviceCaps caps, uint64_t weight_bytes);

  // Starts converting the served weights into `layout` ("auto", "native",
  // a layout name, with ",CLASS=LAYOUT" overrides as --layout takes) with
  // `budget` scratch ("64MiB", "5%"; empty: 64MiB). Returns the number of
  // tensors that will move. Refused, nothing moved: InvalidArgument for
  // the layout, the budget or a target the weights cannot take;
  // Unavailable before the model is loaded or while draining;
  // FailedPrecondition while another relayout runs; ResourceExhausted when
  // a tensor needs more budget (naming it).
  Result<size_t> Start(const std::string& layout, const std::string& budget,
                       RelayoutCallbacks callbacks);
  // Cancels the relayout in progress (its on_done gets Cancelled).
  void Cancel();

 private:
  ServerState* state_;
  ServerMetrics* metrics_;
  std::mutex mu_;
  GenerationBackend* backend_ = nullptr;  // GUARDED_BY(mu_)
  DeviceCaps caps_;                       // GUARDED_BY(mu_)
  uint64_t weight_bytes_ = 0;             // GUARDED_BY(mu_)
};

}  // namespace relayout::server
