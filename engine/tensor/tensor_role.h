// What a tensor is for in a Llama-family model, independent of the naming
// scheme of its container. One internal name per role ("blk.3.attn_q").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relayout {

enum class TensorRole : uint8_t {
  kTokenEmbd,
  kOutput,
  kOutputNorm,
  kAttnNorm,
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnOutput,
  kFfnNorm,
  kFfnGate,
  kFfnUp,
  kFfnDown,
  kAttnQBias,
  kAttnKBias,
  kAttnVBias,
  kAttnOutputBias,
  kFfnGateBias,
  kFfnUpBias,
  kFfnDownBias,
  kRopeFreqs,  // llama3 RoPE frequency factors (GGUF rope_freqs.weight)
  kOther,
};

// "token_embd", "attn_q", ... (the GGUF stem, used as the internal name).
std::string_view TensorRoleName(TensorRole role);

// The inverse of TensorRoleName; nullopt for an unknown name.
std::optional<TensorRole> TensorRoleFromName(std::string_view name);

// True for roles that exist once per layer.
bool IsPerLayer(TensorRole role);

// True for 2-D weight matrices read by GEMV/GEMM (not embeddings, norms, biases).
bool IsMatmulWeight(TensorRole role);

// The internal name: "token_embd" or "blk.<layer>.attn_q".
std::string InternalTensorName(TensorRole role, int layer);

}  // namespace relayout
