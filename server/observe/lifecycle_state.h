// The server's lifecycle: LOADING -> CONVERTING -> SERVING -> DRAINING.
// DRAINING may also follow LOADING or CONVERTING (a signal during start-up).
#pragma once

#include <array>
#include <string_view>

namespace relayout::server {

enum class LifecycleState { kLoading, kConverting, kServing, kDraining };

inline constexpr std::array<LifecycleState, 4> kAllLifecycleStates = {
    LifecycleState::kLoading, LifecycleState::kConverting, LifecycleState::kServing,
    LifecycleState::kDraining};

// "loading", "converting", "serving", "draining": stable, used as the
// metrics label and in logs.
std::string_view LifecycleStateName(LifecycleState state);

// Whether `to` may follow `from`: one step forward, or DRAINING from any
// state but DRAINING.
bool IsValidTransition(LifecycleState from, LifecycleState to);

}  // namespace relayout::server
