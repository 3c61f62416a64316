// ModelSpec: the tensors a Llama-family model must have, with shapes written
// in symbolic dimensions, and the check of a checkpoint against it.
//
// Shapes are outermost first ([out, in] for weights) in named dims:
//   token_embd  [vocab_size, hidden_size]     attn_q      [q_dim, hidden_size]
//   output      [vocab_size, hidden_size]     attn_k/v    [kv_dim, hidden_size]
//   *_norm      [hidden_size]                 attn_output [hidden_size, q_dim]
//   ffn_gate/up [ffn_size, hidden_size]       ffn_down    [hidden_size, ffn_size]
// A dim binds to the first tensor that has it; every later tensor with the
// same dim must agree (the embedding and the output head share vocab_size),
// and every bound dim must equal the config's value. Binding runs on the
// header alone, before anything is allocated; the first mismatch is an error
// naming the tensor and both shapes.
//
// Both naming schemes map to one internal name per role:
//   HF    model.layers.3.self_attn.q_proj.weight
//   GGUF  blk.3.attn_q.weight                      -> internal "blk.3.attn_q"
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/weight_source.h"
#include "engine/tensor/tensor_role.h"

namespace relayout {

enum class NamingScheme { kHf, kGguf };
std::string_view NamingSchemeName(NamingScheme scheme);

struct TensorRef {
  TensorRole role = TensorRole::kOther;
  int layer = -1;  // -1 for tensors outside the layers
  bool operator==(const TensorRef&) const = default;
};

// The role of a container tensor name, or nullopt if the name is not part of
// a Llama model in that scheme. Known ignorable tensors (HF's cached
// rotary_emb.inv_freq) map to kOther.
std::optional<TensorRef> ParseTensorName(std::string_view name, NamingScheme scheme);
// The container name of a role ("model.layers.3.self_attn.q_proj.weight").
std::string ContainerTensorName(const TensorRef& ref, NamingScheme scheme);

struct ExpectedTensor {
  TensorRef ref;
  std::vector<std::string> dims;  // symbolic, outermost first
  bool required = true;
};

class ModelSpec {
 public:
  // The tensors a Llama model with this config has (biases, an untied output
  // head and llama3 frequency factors as the config says).
  static ModelSpec ForLlama(const ModelConfig& config);

  const std::vector<ExpectedTensor>& tensors() const { return tensors_; }
  // The config's value of each symbolic dim.
  const std::map<std::string, int64_t>& dim_values() const { return dim_values_; }

 private:
  std::vector<ExpectedTensor> tensors_;
  std::map<std::string, int64_t> dim_values_;
};

struct BoundTensor {
  size_t source_index = 0;  // index into WeightSource::tensors()
  TensorRef ref;
  std::string internal_name;  // "blk.3.attn_q", "token_embd", or the file name for kOther
};

struct BoundModel {
  std::vector<BoundTensor> tensors;  // in the source's order
  std::map<std::string, int64_t> dims;

  // The bound tensor for a role, or nullptr.
  const BoundTensor* Find(TensorRole role, int layer = -1) const;
};

// Checks `tensors` against `spec`. On failure returns DataLoss naming
// `source` and the offending tensor: a missing, extra, mis-shaped or
// wrongly-typed tensor, or a dim bound to two values.
Result<BoundModel> BindModelSpec(const ModelSpec& spec, const std::vector<TensorInfo>& tensors,
                                 NamingScheme scheme, std::string_view source);

}  // namespace relayout
