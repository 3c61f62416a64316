#include "engine/checkpoint/model_spec.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace relayout {
namespace {

struct NameRule {
  TensorRole role;
  std::string_view hf;    // full name, or the suffix after "model.layers.N."
  std::string_view gguf;  // full name, or the suffix after "blk.N."
};

constexpr std::array<NameRule, 4> kGlobalNames = {{
    {TensorRole::kTokenEmbd, "model.embed_tokens.weight", "token_embd.weight"},
    {TensorRole::kOutputNorm, "model.norm.weight", "output_norm.weight"},
    {TensorRole::kOutput, "lm_head.weight", "output.weight"},
    {TensorRole::kRopeFreqs, "", "rope_freqs.weight"},
}};

constexpr std::array<NameRule, 16> kLayerNames = {{
    {TensorRole::kAttnNorm, "input_layernorm.weight", "attn_norm.weight"},
    {TensorRole::kAttnQ, "self_attn.q_proj.weight", "attn_q.weight"},
    {TensorRole::kAttnK, "self_attn.k_proj.weight", "attn_k.weight"},
    {TensorRole::kAttnV, "self_attn.v_proj.weight", "attn_v.weight"},
    {TensorRole::kAttnOutput, "self_attn.o_proj.weight", "attn_output.weight"},
    {TensorRole::kFfnNorm, "post_attention_layernorm.weight", "ffn_norm.weight"},
    {TensorRole::kFfnGate, "mlp.gate_proj.weight", "ffn_gate.weight"},
    {TensorRole::kFfnUp, "mlp.up_proj.weight", "ffn_up.weight"},
    {TensorRole::kFfnDown, "mlp.down_proj.weight", "ffn_down.weight"},
    {TensorRole::kAttnQBias, "self_attn.q_proj.bias", "attn_q.bias"},
    {TensorRole::kAttnKBias, "self_attn.k_proj.bias", "attn_k.bias"},
    {TensorRole::kAttnVBias, "self_attn.v_proj.bias", "attn_v.bias"},
    {TensorRole::kAttnOutputBias, "self_attn.o_proj.bias", "attn_output.bias"},
    {TensorRole::kFfnGateBias, "mlp.gate_proj.bias", "ffn_gate.bias"},
    {TensorRole::kFfnUpBias, "mlp.up_proj.bias", "ffn_up.bias"},
    {TensorRole::kFfnDownBias, "mlp.down_proj.bias", "ffn_down.bias"},
}};

std::string_view RuleName(const NameRule& rule, NamingScheme scheme) {
  return scheme == NamingScheme::kHf ? rule.hf : rule.gguf;
}

std::string_view LayerPrefix(NamingScheme scheme) {
  return scheme == NamingScheme::kHf ? "model.layers." : "blk.";
}

}  // namespace

std::string_view NamingSchemeName(NamingScheme scheme) {
  return scheme == NamingScheme::kHf ? "hf" : "gguf";
}

std::optional<TensorRef> ParseTensorName(std::string_view name, NamingScheme scheme) {
  for (const NameRule& rule : kGlobalNames) {
    const std::string_view n = RuleName(rule, scheme);
    if (!n.empty() && n == name) return TensorRef{rule.role, -1};
  }
  const std::string_view prefix = LayerPrefix(scheme);
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = name.substr(prefix.size());
  int layer = -1;
  const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), layer);
  if (ec != std::errc() || ptr == rest.data() || layer < 0 ||
      (rest[0] == '0' && ptr - rest.data() > 1)) {
    return std::nullopt;
  }
  rest.remove_prefix(static_cast<size_t>(ptr - rest.data()));
  if (rest.empty() || rest[0] != '.') return std::nullopt;
  rest.remove_prefix(1);
  for (const NameRule& rule : kLayerNames) {
    if (RuleName(rule, scheme) == rest) return TensorRef{rule.role, layer};
  }
  if (scheme == NamingScheme::kHf && rest == "self_attn.rotary_emb.inv_freq") {
    return TensorRef{TensorRole::kOther, layer};  // a cache older exporters saved; recomputed
  }
  return std::nullopt;
}

std::string ContainerTensorName(const TensorRef& ref, NamingScheme scheme) {
  for (const NameRule& rule : kGlobalNames) {
    if (rule.role == ref.role) return std::string(RuleName(rule, scheme));
  }
  for (const NameRule& rule : kLayerNames) {
    if (rule.role == ref.role)
      return StrCat(LayerPrefix(scheme), ref.layer, ".", RuleName(rule, scheme));
  }
  return std::string(TensorRoleName(ref.role));
}

ModelSpec ModelSpec::ForLlama(const ModelConfig& c) {
  ModelSpec spec;
  spec.dim_values_ = {{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"q_dim", c.q_dim()},         {"kv_dim", c.kv_dim()},
                      {"ffn_size", c.ffn_size},     {"rope_pairs", c.rope_dim / 2}};
  auto add = [&](TensorRole role, int layer, std::vector<std::string> dims, bool required = true) {
    spec.tensors_.push_back(ExpectedTensor{TensorRef{role, layer}, std::move(dims), required});
  };
  add(TensorRole::kTokenEmbd, -1, {"vocab_size", "hidden_size"});
  for (int l = 0; l < c.num_layers; ++l) {
    add(TensorRole::kAttnNorm, l, {"hidden_size"});
    add(TensorRole::kAttnQ, l, {"q_dim", "hidden_size"});
    add(TensorRole::kAttnK, l, {"kv_dim", "hidden_size"});
    add(TensorRole::kAttnV, l, {"kv_dim", "hidden_size"});
    add(TensorRole::kAttnOutput, l, {"hidden_size", "q_dim"});
    if (c.attention_bias) {
      add(TensorRole::kAttnQBias, l, {"q_dim"});
      add(TensorRole::kAttnKBias, l, {"kv_dim"});
      add(TensorRole::kAttnVBias, l, {"kv_dim"});
      add(TensorRole::kAttnOutputBias, l, {"hidden_size"}, false);
    }
    add(TensorRole::kFfnNorm, l, {"hidden_size"});
    add(TensorRole::kFfnGate, l, {"ffn_size", "hidden_size"});
    add(TensorRole::kFfnUp, l, {"ffn_size", "hidden_size"});
    add(TensorRole::kFfnDown, l, {"hidden_size", "ffn_size"});
    if (c.mlp_bias) {
      add(TensorRole::kFfnGateBias, l, {"ffn_size"});
      add(TensorRole::kFfnUpBias, l, {"ffn_size"});
      add(TensorRole::kFfnDownBias, l, {"hidden_size"});
    }
  }
  add(TensorRole::kOutputNorm, -1, {"hidden_size"});
  // Tied checkpoints may still carry a copy of the head; it must then match.
  add(TensorRole::kOutput, -1, {"vocab_size", "hidden_size"}, !c.tie_word_embeddings);
  if (c.rope_scaling.from_freq_factors_tensor) add(TensorRole::kRopeFreqs, -1, {"rope_pairs"});
  return spec;
}

const BoundTensor* BoundModel::Find(TensorRole role, int layer) const {
  for (const BoundTensor& t : tensors) {
    if (t.ref.role == role && t.ref.layer == layer) return &t;
  }
  return nullptr;
}

namespace {

std::string SymbolicShape(const std::vector<std::string>& dims,
                          const std::map<std::string, int64_t>& values) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += dims[i];
    if (auto it = values.find(dims[i]); it != values.end()) s += StrCat("=", it->second);
  }
  return s + "]";
}

bool DTypeAllowed(TensorRole role, DType dtype) {
  const DTypeTraits& t = Traits(dtype);
  if (IsMatmulWeight(role) || role == TensorRole::kTokenEmbd) return t.is_float || t.is_quantized;
  return t.is_float;  // norms, biases, frequency factors
}

}  // namespace

Result<BoundModel> BindModelSpec(const ModelSpec& spec, const std::vector<TensorInfo>& tensors,
                                 NamingScheme scheme, std::string_view source) {
  // Which source tensor fills which role; unknown and duplicate names first.
  std::map<std::pair<int, int>, size_t> by_ref;  // (role, layer) -> source index
  BoundModel bound;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::optional<TensorRef> ref = ParseTensorName(tensors[i].name, scheme);
    if (!ref) {
      return Status::DataLoss(
          source, StrCat("unexpected tensor \"", tensors[i].name,
                         "\": not part of a Llama model in ", NamingSchemeName(scheme), " naming"));
    }
    if (ref->role == TensorRole::kOther) {
      bound.tensors.push_back(BoundTensor{i, *ref, tensors[i].name});
      continue;
    }
    by_ref[{static_cast<int>(ref->role), ref->layer}] = i;
  }

  std::map<std::string, std::pair<int64_t, size_t>> binding;  // dim -> (value, bound by)
  std::vector<bool> expected(tensors.size(), false);
  for (const ExpectedTensor& e : spec.tensors()) {
    const auto it = by_ref.find({static_cast<int>(e.ref.role), e.ref.layer});
    const std::string name = ContainerTensorName(e.ref, scheme);
    if (it == by_ref.end()) {
      if (!e.required) continue;
      return Status::DataLoss(
          source,
          StrCat("missing tensor \"", name, "\" (", InternalTensorName(e.ref.role, e.ref.layer),
                 ", expected ", SymbolicShape(e.dims, spec.dim_values()), ")"));
    }
    const TensorInfo& t = tensors[it->second];
    expected[it->second] = true;
    if (!DTypeAllowed(e.ref.role, t.dtype)) {
      return Status::DataLoss(source, StrCat("tensor \"", name, "\" has dtype ", DTypeName(t.dtype),
                                             ", not usable as ", TensorRoleName(e.ref.role)));
    }
    if (t.shape.size() != e.dims.size()) {
      return Status::DataLoss(
          source, StrCat("tensor \"", name, "\" has shape ", ShapeToString(t.shape), ", expected ",
                         SymbolicShape(e.dims, spec.dim_values())));
    }
    for (size_t d = 0; d < e.dims.size(); ++d) {
      const std::string& dim = e.dims[d];
      auto [b, inserted] = binding.try_emplace(dim, t.shape[d], it->second);
      if (!inserted && b->second.first != t.shape[d]) {
        const TensorInfo& first = tensors[b->second.second];
        return Status::DataLoss(
            source,
            StrCat("tensor \"", name, "\" has shape ", ShapeToString(t.shape), ", expected ",
                   SymbolicShape(e.dims, spec.dim_values()), ": ", dim, " is ", b->second.first,
                   " in \"", first.name, "\" ", ShapeToString(first.shape)));
      }
      const int64_t want = spec.dim_values().at(dim);
      if (t.shape[d] != want) {
        return Status::DataLoss(
            source, StrCat("tensor \"", name, "\" has shape ", ShapeToString(t.shape),
                           ", but the config gives ", SymbolicShape(e.dims, spec.dim_values())));
      }
    }
    bound.tensors.push_back(
        BoundTensor{it->second, e.ref, InternalTensorName(e.ref.role, e.ref.layer)});
  }
  for (const auto& [key, index] : by_ref) {
    if (!expected[index]) {
      return Status::DataLoss(source, StrCat("unexpected tensor \"", tensors[index].name,
                                             "\": the config does not call for it"));
    }
  }
  std::sort(
      bound.tensors.begin(), bound.tensors.end(),
      [](const BoundTensor& a, const BoundTensor& b) { return a.source_index < b.source_index; });
  for (const auto& [dim, value] : binding) bound.dims[dim] = value.first;
  return bound;
}

}  // namespace relayout
