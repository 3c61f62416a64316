// TensorRole: what a tensor does in a Llama-family model, as far as layout
// choice cares (how its kernel reads it). Names follow GGUF's tensor names
// ("blk.3.attn_q.weight" has role kAttnQ, "blk.3.attn_q.bias" kAttnQBias).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace relayout {

enum class TensorRole : uint8_t {
  kTokenEmbd,  // read by row gather, not by GEMV
  kOutput,     // lm_head
  kAttnNorm,
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnOutput,
  kFfnNorm,
  kFfnGate,
  kFfnUp,
  kFfnDown,
  kOutputNorm,
  kAttnQBias,
  kAttnKBias,
  kAttnVBias,
  kAttnOutputBias,
  kFfnGateBias,
  kFfnUpBias,
  kFfnDownBias,
  kOther,
};

// "token_embd", "output", "attn_norm", "attn_q", ..., "attn_q_bias", ...,
// "other". Stable: used in summaries and logs.
std::string_view TensorRoleName(TensorRole role);
// The inverse of TensorRoleName; nullopt for an unknown name.
std::optional<TensorRole> TensorRoleFromName(std::string_view name);
// True for the matrices a GEMV/GEMM reads (attention and FFN projections and
// the output head): the tensors that preferred layouts apply to.
bool IsMatmulWeight(TensorRole role);

}  // namespace relayout
