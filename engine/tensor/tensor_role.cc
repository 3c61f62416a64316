#include "engine/tensor/tensor_role.h"

#include "engine/base/status.h"

namespace relayout {

std::string_view TensorRoleName(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbd:
      return "token_embd";
    case TensorRole::kOutput:
      return "output";
    case TensorRole::kOutputNorm:
      return "output_norm";
    case TensorRole::kAttnNorm:
      return "attn_norm";
    case TensorRole::kAttnQ:
      return "attn_q";
    case TensorRole::kAttnK:
      return "attn_k";
    case TensorRole::kAttnV:
      return "attn_v";
    case TensorRole::kAttnOutput:
      return "attn_output";
    case TensorRole::kFfnNorm:
      return "ffn_norm";
    case TensorRole::kFfnGate:
      return "ffn_gate";
    case TensorRole::kFfnUp:
      return "ffn_up";
    case TensorRole::kFfnDown:
      return "ffn_down";
    case TensorRole::kAttnQBias:
      return "attn_q_bias";
    case TensorRole::kAttnKBias:
      return "attn_k_bias";
    case TensorRole::kAttnVBias:
      return "attn_v_bias";
    case TensorRole::kAttnOutputBias:
      return "attn_output_bias";
    case TensorRole::kFfnGateBias:
      return "ffn_gate_bias";
    case TensorRole::kFfnUpBias:
      return "ffn_up_bias";
    case TensorRole::kFfnDownBias:
      return "ffn_down_bias";
    case TensorRole::kRopeFreqs:
      return "rope_freqs";
    case TensorRole::kOther:
      return "other";
  }
  return "other";
}

std::optional<TensorRole> TensorRoleFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(TensorRole::kOther); ++i) {
    const auto role = static_cast<TensorRole>(i);
    if (TensorRoleName(role) == name) return role;
  }
  return std::nullopt;
}

bool IsPerLayer(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbd:
    case TensorRole::kOutput:
    case TensorRole::kOutputNorm:
    case TensorRole::kRopeFreqs:
    case TensorRole::kOther:
      return false;
    default:
      return true;
  }
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

std::string InternalTensorName(TensorRole role, int layer) {
  if (!IsPerLayer(role)) return std::string(TensorRoleName(role));
  return StrCat("blk.", layer, ".", TensorRoleName(role));
}

}  // namespace relayout
