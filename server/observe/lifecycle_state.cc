#include "server/observe/lifecycle_state.h"

namespace relayout::server {

std::string_view LifecycleStateName(LifecycleState state) {
  switch (state) {
    case LifecycleState::kLoading:
      return "loading";
    case LifecycleState::kConverting:
      return "converting";
    case LifecycleState::kServing:
      return "serving";
    case LifecycleState::kDraining:
      return "draining";
  }
  return "unknown";
}

bool IsValidTransition(LifecycleState from, LifecycleState to) {
  if (to == LifecycleState::kDraining) return from != LifecycleState::kDraining;
  return static_cast<int>(to) == static_cast<int>(from) + 1;
}

}  // namespace relayout::server
