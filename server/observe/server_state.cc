#include "server/observe/server_state.h"

#include <utility>

namespace relayout::server {

double ConversionProgressSnapshot::ratio() const {
  if (bytes_total > 0) return static_cast<double>(bytes_done) / static_cast<double>(bytes_total);
  if (tensors_total > 0) {
    return static_cast<double>(tensors_done) / static_cast<double>(tensors_total);
  }
  return 0.0;
}

LifecycleState ServerState::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

bool ServerState::SetState(LifecycleState to) {
  // Held across the listeners too, so that two racing changes (SERVING from
  // the start-up thread, DRAINING from a signal) reach them in the order
  // they were made: health must not end SERVING while draining.
  std::lock_guard<std::mutex> transition(transition_mu_);
  LifecycleState from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    from = state_;
    if (!IsValidTransition(from, to)) return false;
    state_ = to;
  }
  for (const StateListener& listener : listeners_) listener(from, to);
  return true;
}

void ServerState::AddStateListener(StateListener listener) {
  listeners_.push_back(std::move(listener));
}

void ServerState::SetModelPath(std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.model_path = std::move(path);
}

void ServerState::SetDescription(ModelDescription description) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.progress = {0, description.tensors_total, 0, description.bytes_total};
  snapshot_.description = std::move(description);
}

void ServerState::SetProgress(uint32_t tensors_done, uint64_t bytes_done) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.progress.tensors_done = tensors_done;
  snapshot_.progress.bytes_done = bytes_done;
}

void ServerState::SetReport(RelayoutReport report) {
  auto shared = std::make_shared<const RelayoutReport>(std::move(report));
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.report = std::move(shared);
  snapshot_.progress.tensors_done = snapshot_.progress.tensors_total;
  snapshot_.progress.bytes_done = snapshot_.progress.bytes_total;
}

void ServerState::BeginConversion(uint32_t tensors_total, uint64_t bytes_total) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.converting = true;
  snapshot_.progress = {0, tensors_total, 0, bytes_total};
}

void ServerState::EndConversion(std::optional<RelayoutReport> report) {
  if (report.has_value()) {
    SetReport(std::move(*report));  // progress complete
  }
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.converting = false;
}

void ServerState::SetLayouts(std::string layout_mode,
                             std::vector<TensorClassSummary> tensor_classes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!snapshot_.description.has_value()) return;
  snapshot_.description->layout_mode = std::move(layout_mode);
  snapshot_.description->tensor_classes = std::move(tensor_classes);
}

void ServerState::SetError(std::string error) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_.error = std::move(error);
}

void ServerState::SetTokenizer(std::shared_ptr<const Tokenizer> tokenizer) {
  std::lock_guard<std::mutex> lock(mu_);
  tokenizer_ = std::move(tokenizer);
}

ServerState::Snapshot ServerState::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot copy = snapshot_;
  copy.state = state_;
  return copy;
}

ConversionProgressSnapshot ServerState::progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_.progress;
}

std::shared_ptr<const Tokenizer> ServerState::tokenizer() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokenizer_;
}

void ServerState::SetChatTemplate(std::shared_ptr<const ChatTemplate> chat_template) {
  std::lock_guard<std::mutex> lock(mu_);
  chat_template_ = std::move(chat_template);
}

std::shared_ptr<const ChatTemplate> ServerState::chat_template() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chat_template_;
}

}  // namespace relayout::server
