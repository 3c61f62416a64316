// ServerState: what the services and the metrics endpoint read about the
// served model while it loads, converts and serves. The start-up thread
// writes it; the gRPC threads read consistent copies, never waiting for the
// conversion (only for a short mutex).
//
// Lifecycle changes go through SetState, which calls the registered
// listeners (health, metrics, logs) after the change, outside the lock, in
// registration order, one change at a time. Listeners are called from the
// thread that changes the state and must not change it themselves.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/chat/chat_template.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/observe/lifecycle_state.h"
#include "server/observe/model_description.h"

namespace relayout::server {

struct ConversionProgressSnapshot {
  uint32_t tensors_done = 0;
  uint32_t tensors_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  // bytes_done / bytes_total, or tensors when bytes_total is 0; 1 when done.
  double ratio() const;
};

class ServerState {
 public:
  using StateListener = std::function<void(LifecycleState from, LifecycleState to)>;

  struct Snapshot {
    LifecycleState state = LifecycleState::kLoading;
    std::string model_path;
    std::optional<ModelDescription> description;  // set once planned
    ConversionProgressSnapshot progress;
    std::shared_ptr<const RelayoutReport> report;  // set once converted
    std::string error;                             // why start-up failed
    // A conversion of the served weights is running (serve-while-
    // converting, or Admin/Relayout): progress is its progress.
    bool converting = false;
  };

  ServerState() = default;
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  LifecycleState state() const;
  // Moves to `to` and calls the listeners. Returns false (and changes
  // nothing) when IsValidTransition(current, to) is false.
  bool SetState(LifecycleState to);
  // REQUIRES: called before the state first changes (at set-up).
  void AddStateListener(StateListener listener);

  void SetModelPath(std::string path);
  // Also resets the progress to 0 of description.tensors_total.
  void SetDescription(ModelDescription description);
  void SetProgress(uint32_t tensors_done, uint64_t bytes_done);
  // A conversion of the served weights starts: converting, progress 0 of
  // these totals (the report of the last one stays until EndConversion).
  void BeginConversion(uint32_t tensors_total, uint64_t bytes_total);
  // It ended: not converting; with a report (OK), that report, progress
  // complete; without (cancelled, failed), progress stays where it got.
  void EndConversion(std::optional<RelayoutReport> report);
  // The served weights' layouts changed (a live relayout ended): the
  // description's layout mode and classes become these. No-op before
  // SetDescription.
  void SetLayouts(std::string layout_mode, std::vector<TensorClassSummary> tensor_classes);
  void SetReport(RelayoutReport report);
  void SetError(std::string error);
  void SetTokenizer(std::shared_ptr<const Tokenizer> tokenizer);
  // Null: the model has no chat template (chat requests are then refused).
  void SetChatTemplate(std::shared_ptr<const ChatTemplate> chat_template);

  Snapshot Get() const;
  ConversionProgressSnapshot progress() const;
  // nullptr until the tokenizer is loaded.
  std::shared_ptr<const Tokenizer> tokenizer() const;
  // nullptr until loaded with the tokenizer, or when the model has none.
  std::shared_ptr<const ChatTemplate> chat_template() const;

 private:
  std::mutex transition_mu_;  // serializes SetState, listeners included
  mutable std::mutex mu_;
  LifecycleState state_ = LifecycleState::kLoading;    // GUARDED_BY(mu_)
  Snapshot snapshot_;                                  // GUARDED_BY(mu_); state kept in state_
  std::shared_ptr<const Tokenizer> tokenizer_;         // GUARDED_BY(mu_)
  std::shared_ptr<const ChatTemplate> chat_template_;  // GUARDED_BY(mu_)
  std::vector<StateListener> listeners_;               // written only before the first change
};

}  // namespace relayout::server
