#include "engine/checkpoint/model_config.h"

#include <cmath>

#include "engine/checkpoint/gguf_metadata.h"
#include "engine/checkpoint/weight_source.h"
#include "engine/text/json.h"

namespace relayout {

std::string_view RopeScalingName(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone:
      return "none";
    case RopeScalingType::kLinear:
      return "linear";
    case RopeScalingType::kLlama3:
      return "llama3";
    case RopeScalingType::kDynamic:
      return "dynamic";
  }
  return "none";
}

Status ModelConfig::Validate(std::string_view source) const {
  const auto bad = [&](std::string_view field, const auto& value, std::string_view rule) {
    return Status::InvalidArgument(source, StrCat(field, " is ", value, ", ", rule));
  };
  if (hidden_size <= 0) return bad("hidden_size", hidden_size, "must be positive");
  if (num_layers <= 0) return bad("num_layers", num_layers, "must be positive");
  if (num_heads <= 0) return bad("num_heads", num_heads, "must be positive");
  if (num_kv_heads <= 0) return bad("num_kv_heads", num_kv_heads, "must be positive");
  if (num_heads % num_kv_heads != 0) {
    return bad("num_kv_heads", num_kv_heads, StrCat("must divide num_heads (", num_heads, ")"));
  }
  if (head_dim <= 0 || head_dim % 2 != 0)
    return bad("head_dim", head_dim, "must be positive and even");
  if (rope_dim <= 0 || rope_dim % 2 != 0 || rope_dim > head_dim) {
    return bad("rope_dim", rope_dim, StrCat("must be even and in (0, head_dim = ", head_dim, "]"));
  }
  if (ffn_size <= 0) return bad("ffn_size", ffn_size, "must be positive");
  if (vocab_size <= 0) return bad("vocab_size", vocab_size, "must be positive");
  if (!(rms_eps > 0) || !std::isfinite(rms_eps)) return bad("rms_eps", rms_eps, "must be positive");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) {
    return bad("rope_theta", rope_theta, "must be positive");
  }
  if (!(rope_scaling.factor > 0) || !std::isfinite(rope_scaling.factor)) {
    return bad("rope_scaling.factor", rope_scaling.factor, "must be positive");
  }
  if (context_length <= 0) return bad("context_length", context_length, "must be positive");
  if (bos_token_id < -1 || bos_token_id >= vocab_size) {
    return bad("bos_token_id", bos_token_id,
               StrCat("must be -1 or below vocab_size (", vocab_size, ")"));
  }
  for (int64_t eos : eos_token_ids) {
    if (eos < 0 || eos >= vocab_size) {
      return bad("eos_token_id", eos, StrCat("must be below vocab_size (", vocab_size, ")"));
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Hugging Face config.json

namespace {

class HfReader {
 public:
  HfReader(const JsonValue& json, std::string_view source) : json_(json), source_(source) {}

  // A required positive integer.
  Status Int(std::string_view key, int64_t* out, bool required) {
    const JsonValue* v = json_.Find(key);
    if (v == nullptr || v->is_null()) {
      if (required) return Status::InvalidArgument(source_, StrCat("key \"", key, "\" is missing"));
      return Status::OK();
    }
    if (!v->as_int64()) {
      return Status::InvalidArgument(source_, StrCat("key \"", key, "\" must be an integer"));
    }
    *out = *v->as_int64();
    return Status::OK();
  }

  Status Float(std::string_view key, double* out) {
    const JsonValue* v = json_.Find(key);
    if (v == nullptr || v->is_null()) return Status::OK();
    if (!v->is_number())
      return Status::InvalidArgument(source_, StrCat("key \"", key, "\" must be a number"));
    *out = v->as_double();
    return Status::OK();
  }

  Status Bool(std::string_view key, bool* out) {
    const JsonValue* v = json_.Find(key);
    if (v == nullptr || v->is_null()) return Status::OK();
    if (!v->is_bool())
      return Status::InvalidArgument(source_, StrCat("key \"", key, "\" must be true or false"));
    *out = v->as_bool();
    return Status::OK();
  }

  Status RopeScalingField(RopeScaling* out) {
    const JsonValue* v = json_.Find("rope_scaling");
    if (v == nullptr || v->is_null()) return Status::OK();
    if (!v->is_object())
      return Status::InvalidArgument(source_, "key \"rope_scaling\" must be an object or null");
    const JsonValue* type = v->Find("rope_type");
    if (type == nullptr) type = v->Find("type");
    if (type == nullptr || !type->is_string()) {
      return Status::InvalidArgument(source_, "rope_scaling needs a string \"rope_type\"");
    }
    HfReader inner(*v, source_);
    const std::string& name = type->as_string();
    if (name == "default") return Status::OK();
    if (name == "linear") {
      out->type = RopeScalingType::kLinear;
    } else if (name == "dynamic") {
      out->type = RopeScalingType::kDynamic;
    } else if (name == "llama3") {
      out->type = RopeScalingType::kLlama3;
      RETURN_IF_ERROR(inner.Float("low_freq_factor", &out->low_freq_factor));
      RETURN_IF_ERROR(inner.Float("high_freq_factor", &out->high_freq_factor));
      RETURN_IF_ERROR(inner.Int("original_max_position_embeddings",
                                &out->original_max_position_embeddings, false));
    } else {
      return Status::Unimplemented(source_,
                                   StrCat("rope_scaling type \"", name,
                                          "\" is not supported (none, linear, dynamic, llama3)"));
    }
    RETURN_IF_ERROR(inner.Float("factor", &out->factor));
    return Status::OK();
  }

  Status EosIds(std::vector<int64_t>* out) {
    const JsonValue* v = json_.Find("eos_token_id");
    if (v == nullptr || v->is_null()) return Status::OK();
    out->clear();
    if (v->as_int64()) {
      out->push_back(*v->as_int64());
      return Status::OK();
    }
    if (v->is_array()) {
      for (const JsonValue& e : v->as_array()) {
        if (!e.as_int64()) break;
        out->push_back(*e.as_int64());
      }
      if (out->size() == v->as_array().size()) return Status::OK();
    }
    return Status::InvalidArgument(source_,
                                   "key \"eos_token_id\" must be an integer or a list of integers");
  }

 private:
  const JsonValue& json_;
  std::string_view source_;
};

}  // namespace

Result<ModelConfig> ModelConfigFromHfJson(const JsonValue& json, std::string_view source) {
  if (!json.is_object()) return Status::InvalidArgument(source, "config must be a JSON object");
  std::string model_type = "llama";
  if (const JsonValue* type = json.Find("model_type"); type != nullptr) {
    model_type = type->is_string() ? type->as_string() : "?";
    if (model_type != "llama" && model_type != "mistral" && model_type != "qwen2") {
      return Status::Unimplemented(
          source, StrCat("model_type ", type->is_string() ? "\"" + model_type + "\"" : "?",
                         " is not supported (llama, mistral, qwen2)"));
    }
  }
  if (const JsonValue* act = json.Find("hidden_act"); act != nullptr) {
    if (!act->is_string() || act->as_string() != "silu") {
      return Status::Unimplemented(source, "hidden_act must be \"silu\" for a Llama model");
    }
  }
  ModelConfig c;
  c.rms_eps = 1e-6;  // LlamaConfig's default
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  HfReader r(json, source);
  RETURN_IF_ERROR(r.Int("hidden_size", &c.hidden_size, true));
  RETURN_IF_ERROR(r.Int("num_hidden_layers", &c.num_layers, true));
  RETURN_IF_ERROR(r.Int("num_attention_heads", &c.num_heads, true));
  RETURN_IF_ERROR(r.Int("intermediate_size", &c.ffn_size, true));
  RETURN_IF_ERROR(r.Int("vocab_size", &c.vocab_size, true));
  c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR(r.Int("num_key_value_heads", &c.num_kv_heads, false));
  if (c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  RETURN_IF_ERROR(r.Int("head_dim", &c.head_dim, false));
  c.rope_dim = c.head_dim;
  RETURN_IF_ERROR(r.Float("rms_norm_eps", &c.rms_eps));
  RETURN_IF_ERROR(r.Float("rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(r.RopeScalingField(&c.rope_scaling));
  RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  // Qwen2's attention has q/k/v biases by construction; its config has no key.
  c.attention_bias = model_type == "qwen2";
  RETURN_IF_ERROR(r.Bool("attention_bias", &c.attention_bias));
  RETURN_IF_ERROR(r.Bool("mlp_bias", &c.mlp_bias));
  RETURN_IF_ERROR(r.Int("max_position_embeddings", &c.context_length, false));
  bool sliding = model_type == "mistral";
  if (model_type == "qwen2") RETURN_IF_ERROR(r.Bool("use_sliding_window", &sliding));
  if (sliding) {
    int64_t window = 0;
    RETURN_IF_ERROR(r.Int("sliding_window", &window, false));
    if (window > 0 && window < c.context_length) c.context_length = window;
  }
  RETURN_IF_ERROR(r.Int("bos_token_id", &c.bos_token_id, false));
  RETURN_IF_ERROR(r.EosIds(&c.eos_token_ids));
  RETURN_IF_ERROR(c.Validate(source));
  return c;
}

// ---------------------------------------------------------------------------
// GGUF metadata

namespace {

bool HasTensor(const std::vector<TensorInfo>& tensors, std::string_view name) {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return true;
  }
  return false;
}

// A required or optional integer key; the type must be an integer.
Status GgufInt(const GgufMetadata& md, std::string_view source, const std::string& key,
               int64_t* out, bool required) {
  const GgufValue* v = md.Find(key);
  if (v == nullptr) {
    if (required)
      return Status::InvalidArgument(source, StrCat("metadata key \"", key, "\" is missing"));
    return Status::OK();
  }
  if (v->type() == GgufType::kArray) {
    return Status::Unimplemented(
        source, StrCat("metadata key \"", key,
                       "\" is a per-layer array; only uniform layers are supported"));
  }
  const std::optional<int64_t> i = v->AsInt();
  if (!i || v->type() == GgufType::kFloat32 || v->type() == GgufType::kFloat64 ||
      v->type() == GgufType::kBool) {
    return Status::InvalidArgument(
        source,
        StrCat("metadata key \"", key, "\" is ", GgufTypeName(v->type()), ", expected an integer"));
  }
  *out = *i;
  return Status::OK();
}

Status GgufFloat(const GgufMetadata& md, std::string_view source, const std::string& key,
                 double* out) {
  const GgufValue* v = md.Find(key);
  if (v == nullptr) return Status::OK();
  const std::optional<double> f = v->AsFloat();
  if (!f) {
    return Status::InvalidArgument(source, StrCat("metadata key \"", key, "\" is ",
                                                  GgufTypeName(v->type()), ", expected a number"));
  }
  *out = *f;
  return Status::OK();
}

}  // namespace

Result<ModelConfig> ModelConfigFromGguf(const GgufMetadata& md,
                                        const std::vector<TensorInfo>& tensors,
                                        std::string_view source) {
  const GgufValue* arch = md.Find("general.architecture");
  if (arch == nullptr || arch->AsString() == nullptr) {
    return Status::InvalidArgument(
        source, "metadata key \"general.architecture\" is missing or not a string");
  }
  if (*arch->AsString() != "llama") {
    return Status::Unimplemented(
        source, StrCat("architecture \"", *arch->AsString(), "\" is not supported (llama)"));
  }
  const std::string p = "llama.";
  ModelConfig c;
  RETURN_IF_ERROR(GgufInt(md, source, p + "embedding_length", &c.hidden_size, true));
  RETURN_IF_ERROR(GgufInt(md, source, p + "block_count", &c.num_layers, true));
  RETURN_IF_ERROR(GgufInt(md, source, p + "attention.head_count", &c.num_heads, true));
  RETURN_IF_ERROR(GgufInt(md, source, p + "feed_forward_length", &c.ffn_size, true));
  c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR(GgufInt(md, source, p + "attention.head_count_kv", &c.num_kv_heads, false));
  if (c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;
  RETURN_IF_ERROR(GgufInt(md, source, p + "attention.key_length", &c.head_dim, false));
  c.rope_dim = c.head_dim;
  RETURN_IF_ERROR(GgufInt(md, source, p + "rope.dimension_count", &c.rope_dim, false));
  RETURN_IF_ERROR(GgufFloat(md, source, p + "attention.layer_norm_rms_epsilon", &c.rms_eps));
  RETURN_IF_ERROR(GgufFloat(md, source, p + "rope.freq_base", &c.rope_theta));
  RETURN_IF_ERROR(GgufInt(md, source, p + "context_length", &c.context_length, false));

  // The vocabulary: stated, or the tokenizer's size, or the embedding's rows.
  RETURN_IF_ERROR(GgufInt(md, source, p + "vocab_size", &c.vocab_size, false));
  if (c.vocab_size == 0) {
    if (const GgufValue* tokens = md.Find("tokenizer.ggml.tokens"); tokens && tokens->AsArray()) {
      c.vocab_size = static_cast<int64_t>(tokens->AsArray()->size());
    }
  }
  if (c.vocab_size == 0) {
    for (const TensorInfo& t : tensors) {
      if (t.name == "token_embd.weight" && t.shape.size() == 2) c.vocab_size = t.shape[0];
    }
  }

  if (const GgufValue* type = md.Find(p + "rope.scaling.type"); type != nullptr) {
    const std::string* name = type->AsString();
    if (name == nullptr) {
      return Status::InvalidArgument(source,
                                     "metadata key \"llama.rope.scaling.type\" must be a string");
    }
    if (*name == "linear") {
      c.rope_scaling.type = RopeScalingType::kLinear;
    } else if (*name != "none") {
      return Status::Unimplemented(source, StrCat("rope scaling type \"", *name,
                                                  "\" is not supported (none, linear, llama3)"));
    }
    RETURN_IF_ERROR(GgufFloat(md, source, p + "rope.scaling.factor", &c.rope_scaling.factor));
  }
  if (HasTensor(tensors, "rope_freqs.weight")) {
    c.rope_scaling.type = RopeScalingType::kLlama3;
    c.rope_scaling.from_freq_factors_tensor = true;
  }

  // What GGUF leaves implicit is read off the tensor list.
  c.tie_word_embeddings = !HasTensor(tensors, "output.weight");
  c.attention_bias = HasTensor(tensors, "blk.0.attn_q.bias");
  c.mlp_bias = HasTensor(tensors, "blk.0.ffn_gate.bias");

  c.bos_token_id = -1;
  RETURN_IF_ERROR(GgufInt(md, source, "tokenizer.ggml.bos_token_id", &c.bos_token_id, false));
  int64_t eos = -1;
  RETURN_IF_ERROR(GgufInt(md, source, "tokenizer.ggml.eos_token_id", &eos, false));
  if (eos >= 0) c.eos_token_ids = {eos};
  RETURN_IF_ERROR(c.Validate(source));
  return c;
}

}  // namespace relayout
