#include "engine/tensor_role.h"

#include <array>

namespace relayout {
namespace {

constexpr std::array<std::string_view, 20> kNames = {
    "token_embd",       "output",        "attn_norm",   "attn_q",        "attn_k",
    "attn_v",           "attn_output",   "ffn_norm",    "ffn_gate",      "ffn_up",
    "ffn_down",         "output_norm",   "attn_q_bias", "attn_k_bias",   "attn_v_bias",
    "attn_output_bias", "ffn_gate_bias", "ffn_up_bias", "ffn_down_bias", "other",
};
static_assert(kNames.size() == static_cast<size_t>(TensorRole::kOther) + 1,
              "one name per TensorRole, in enum order");

}  // namespace

std::string_view TensorRoleName(TensorRole role) {
  const auto i = static_cast<size_t>(role);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::optional<TensorRole> TensorRoleFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<TensorRole>(i);
  }
  return std::nullopt;
}

bool IsMatmulWeight(TensorRole role) {
  switch (role) {
    case TensorRole::kOutput:
    case TensorRole::kAttnQ:
    case TensorRole::kAttnK:
    case TensorRole::kAttnV:
    case TensorRole::kAttnOutput:
    case TensorRole::kFfnGate:
    case TensorRole::kFfnUp:
    case TensorRole::kFfnDown:
      return true;
    default:
      return false;
  }
}

}  // namespace relayout
