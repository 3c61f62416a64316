// ModelConfig: the hyper-parameters of a Llama-family decoder, read from a
// Hugging Face config.json or from GGUF `llama.*` metadata, and validated.
//
// Both readers fill the same struct; a field neither container states gets
// the Llama default written beside it. Validation checks the relations the
// forward pass relies on (heads divide, GQA groups are whole, RoPE dims even)
// and returns InvalidArgument naming the source and the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"

namespace relayout {

class JsonValue;
class GgufMetadata;
struct TensorInfo;

// kDynamic is Hugging Face's dynamic NTK scaling: it changes the RoPE base
// only once a sequence grows past max_position_embeddings. Sequences are
// capped at context_length (= max_position_embeddings), so it rotates exactly
// as kNone for every position served; it is kept apart to be reported.
enum class RopeScalingType { kNone, kLinear, kLlama3, kDynamic };
std::string_view RopeScalingName(RopeScalingType type);

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;  // linear: positions divided by factor; llama3: long-wavelength divisor
  // llama3 only (HF rope_scaling fields of the same names).
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // GGUF stores llama3 scaling as a rope_freqs.weight tensor of per-pair
  // divisors instead of the parameters above.
  bool from_freq_factors_tensor = false;
};

struct ModelConfig {
  std::string architecture = "llama";
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without GQA
  int64_t head_dim = 0;      // default hidden_size / num_heads
  int64_t ffn_size = 0;      // intermediate_size
  int64_t vocab_size = 0;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t rope_dim = 0;  // dims rotated per head; default head_dim
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // q/k/v projection biases; o_proj's bias is taken when present (Llama's
  // attention_bias has all four, Qwen2 only q/k/v).
  bool attention_bias = false;
  bool mlp_bias = false;
  int64_t context_length = 2048;
  int64_t bos_token_id = -1;  // -1: none
  std::vector<int64_t> eos_token_ids;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }

  // OK, or InvalidArgument "<source>: <field> ..." for the first violated rule.
  Status Validate(std::string_view source) const;
};

// From a parsed config.json. `source` names the file in error messages.
// model_type "llama", "mistral" and "qwen2" (Qwen2 always has q/k/v biases;
// it states no attention_bias). A sliding attention window (Mistral's
// sliding_window, Qwen2's with use_sliding_window) caps context_length at the
// window, within which sliding and full attention agree. Unsupported model
// types or RoPE scalings are Unimplemented naming the key.
Result<ModelConfig> ModelConfigFromHfJson(const JsonValue& json, std::string_view source);

// From GGUF metadata (general.architecture must be "llama"). Tied embeddings,
// biases, llama3 frequency factors and a missing vocab size are inferred from
// the tensor list, as the format leaves them implicit.
Result<ModelConfig> ModelConfigFromGguf(const GgufMetadata& metadata,
                                        const std::vector<TensorInfo>& tensors,
                                        std::string_view source);

}  // namespace relayout
