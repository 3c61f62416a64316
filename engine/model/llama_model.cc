#include "engine/model/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "kernels/cpu/attention/paged_attention.h"
#include "kernels/cpu/layout/widen.h"
#include "kernels/cpu/ops/add.h"
#include "kernels/cpu/ops/embedding.h"
#include "kernels/cpu/ops/rmsnorm.h"
#include "kernels/cpu/ops/silu_gate.h"

namespace relayout {

struct LlamaModel::Workspace {
  int64_t tokens = 0;      // row capacity
  int64_t logit_rows = 0;  // logits row capacity
  HostBuffer buffer;
  float* x = nullptr;       // [tokens, hidden] the residual stream
  float* h = nullptr;       // [tokens, hidden] normalized input of a block
  float* q = nullptr;       // [tokens, q_dim]
  float* k = nullptr;       // [tokens, kv_dim]
  float* v = nullptr;       // [tokens, kv_dim]
  float* att = nullptr;     // [tokens, q_dim]
  float* gate = nullptr;    // [tokens, ffn]
  float* up = nullptr;      // [tokens, ffn]
  float* out = nullptr;     // [tokens, hidden] a block's output before the residual add
  float* final = nullptr;   // [logit_rows, hidden]
  float* logits = nullptr;  // [logit_rows, vocab]
  std::vector<int32_t> tokens_in;
  std::vector<int32_t> positions;
  std::vector<kernels::AttentionSpan> spans;
};

namespace {

Result<kernels::WeightType> WeightTypeFor(const LoadedTensor& t) {
  switch (t.dtype) {
    case DType::kF32:
      return kernels::WeightType::kF32;
    case DType::kF16:
      return kernels::WeightType::kF16;
    case DType::kBF16:
      return kernels::WeightType::kBF16;
    case DType::kQ8_0:
      return kernels::WeightType::kQ8_0;
    case DType::kQ4_0:
      return kernels::WeightType::kQ4_0;
    case DType::kQ4_1:
      return kernels::WeightType::kQ4_1;
    default:
      return Status::Unimplemented(
          t.name, StrCat("dtype ", DTypeName(t.dtype), " is not supported by the CPU kernels"));
  }
}

// A 1-D tensor (norm, bias, frequency factors) as floats.
Result<std::vector<float>> ToFloats(const LoadedTensor& t) {
  ASSIGN_OR_RETURN(kernels::WeightType type, WeightTypeFor(t));
  const std::optional<uint64_t> n = ElementCount(t.shape);
  if (!n || *n == 0 || !t.layout.IsCommon()) {
    return Status::DataLoss(t.name, StrCat("expected a vector in its common layout, got ",
                                           ShapeToString(t.shape), " ", t.layout.Name()));
  }
  std::vector<float> out(*n);
  const int32_t zero = 0;
  if (!kernels::EmbeddingRows(t.buffer.data(), type, 1, static_cast<int64_t>(*n), &zero, 1,
                              out.data())) {
    return Status::Unimplemented(
        t.name, StrCat("cannot read ", DTypeName(t.dtype), " vector of ", *n, " elements"));
  }
  return out;
}

kernels::RopeScalingKind ScalingKind(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kLinear:
      return kernels::RopeScalingKind::kLinear;
    case RopeScalingType::kLlama3:
      return kernels::RopeScalingKind::kLlama3;
    case RopeScalingType::kNone:
      break;
  }
  return kernels::RopeScalingKind::kNone;
}

// Runs fn(first_row, rows) over [0, rows) in chunks across the pool: the
// elementwise steps (norms, RoPE, SiLU, residuals) would otherwise run on one
// core while the matmuls use all of them, which caps a prefill's speed-up.
void ForRows(kernels::ThreadPool* pool, int64_t rows,
             const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr || rows < 2) {
    fn(0, rows);
    return;
  }
  pool->RunRanges(rows, 1, [&](int64_t begin, int64_t end) { fn(begin, end - begin); });
}

}  // namespace

Result<kernels::MatmulWeight> MatmulWeightFor(const LoadedTensor& t) {
  if (t.shape.size() != 2) {
    return Status::Unimplemented(
        t.name, StrCat("a matmul weight must be 2-D, got ", ShapeToString(t.shape)));
  }
  kernels::MatmulWeight w;
  ASSIGN_OR_RETURN(w.type, WeightTypeFor(t));
  w.data = t.buffer.data();
  w.rows = t.shape[0];
  w.cols = t.shape[1];
  switch (t.layout.kind) {
    case LayoutKind::kRowMajor:
    case LayoutKind::kGgufBlocks:
    case LayoutKind::kWidenedF32:  // F32 row-major (LoadedTensor.dtype is F32)
      w.layout = kernels::WeightLayout::kRowMajor;
      break;
    case LayoutKind::kRowGroupInterleave:
      w.layout = kernels::WeightLayout::kRowGroup;
      w.group_rows = static_cast<int32_t>(t.layout.group_rows);
      w.k_block = static_cast<int32_t>(t.layout.k_block);
      break;
    case LayoutKind::kQuantRowGroupInterleave:
      w.layout = kernels::WeightLayout::kQuantRowGroup;
      w.group_rows = static_cast<int32_t>(t.layout.group_rows);
      break;
    case LayoutKind::kBf16KPair:
      w.layout = kernels::WeightLayout::kBf16KPair;
      w.group_rows = static_cast<int32_t>(t.layout.group_rows);
      break;
    case LayoutKind::kTransposed:
      return Status::Unimplemented(
          t.name, "the transposed layout is not supported for inference (use auto or native)");
  }
  if (!kernels::MatmulSupported(w)) {
    return Status::Unimplemented(t.name, StrCat("no CPU matmul for ", DTypeName(t.dtype), " in ",
                                                t.layout.Name(), " ", ShapeToString(t.shape)));
  }
  return w;
}

LlamaModel::LlamaModel(const ModelConfig& config, NamingScheme naming, LoadedWeights weights,
                       kernels::ThreadPool* pool, MemoryLedger* ledger)
    : config_(config),
      naming_(naming),
      pairing_(naming == NamingScheme::kHf ? kernels::RopePairing::kHalves
                                           : kernels::RopePairing::kInterleaved),
      weights_(std::move(weights)),
      pool_(pool),
      own_ledger_(ledger == nullptr ? std::make_unique<MemoryLedger>() : nullptr),
      ledger_(ledger == nullptr ? own_ledger_.get() : ledger),
      ws_(std::make_unique<Workspace>()) {}

LlamaModel::~LlamaModel() = default;

Result<std::unique_ptr<LlamaModel>> LlamaModel::Create(const ModelConfig& config,
                                                       NamingScheme naming, LoadedWeights weights,
                                                       kernels::ThreadPool* pool,
                                                       MemoryLedger* ledger) {
  RETURN_IF_ERROR(config.Validate("model"));
  if (config.rope_dim > kernels::kMaxRopeDim) {
    return Status::Unimplemented(
        "model", StrCat("rope_dim ", config.rope_dim, " is above ", kernels::kMaxRopeDim));
  }
  std::unique_ptr<LlamaModel> model(
      new LlamaModel(config, naming, std::move(weights), pool, ledger));
  RETURN_IF_ERROR(model->BindWeights());
  return model;
}

Status LlamaModel::BindWeights() {
  const ModelConfig& c = config_;
  auto find = [&](TensorRole role, int layer) -> Result<const LoadedTensor*> {
    const LoadedTensor* t = weights_.Find(role, layer);
    if (t == nullptr) {
      return Status::DataLoss("model", StrCat("missing tensor ", InternalTensorName(role, layer)));
    }
    return t;
  };
  auto matmul = [&](TensorRole role, int layer, int64_t rows,
                    int64_t cols) -> Result<kernels::MatmulWeight> {
    ASSIGN_OR_RETURN(const LoadedTensor* t, find(role, layer));
    ASSIGN_OR_RETURN(kernels::MatmulWeight w, MatmulWeightFor(*t));
    if (w.rows != rows || w.cols != cols) {
      return Status::DataLoss(t->name, StrCat("shape ", ShapeToString(t->shape), ", expected [",
                                              rows, ", ", cols, "]"));
    }
    return w;
  };
  auto vec = [&](TensorRole role, int layer, int64_t n) -> Result<std::vector<float>> {
    ASSIGN_OR_RETURN(const LoadedTensor* t, find(role, layer));
    ASSIGN_OR_RETURN(std::vector<float> v, ToFloats(*t));
    if (static_cast<int64_t>(v.size()) != n) {
      return Status::DataLoss(t->name, StrCat("has ", v.size(), " elements, expected ", n));
    }
    return v;
  };
  auto optional_vec = [&](bool present, TensorRole role, int layer,
                          int64_t n) -> Result<std::vector<float>> {
    if (!present || weights_.Find(role, layer) == nullptr) return std::vector<float>{};
    return vec(role, layer, n);
  };

  ASSIGN_OR_RETURN(token_embd_, find(TensorRole::kTokenEmbd, -1));
  ASSIGN_OR_RETURN(embd_type_, WeightTypeFor(*token_embd_));
  if (!token_embd_->layout.IsCommon()) {
    return Status::Unimplemented(token_embd_->name,
                                 StrCat("embeddings are read by row from their common layout, got ",
                                        token_embd_->layout.Name()));
  }
  if (token_embd_->shape.size() != 2 || token_embd_->shape[0] != c.vocab_size ||
      token_embd_->shape[1] != c.hidden_size ||
      kernels::EmbeddingRowBytes(embd_type_, c.hidden_size) * c.vocab_size !=
          static_cast<int64_t>(token_embd_->buffer.size())) {
    return Status::DataLoss(
        token_embd_->name,
        StrCat("shape ", ShapeToString(token_embd_->shape), " of ", token_embd_->buffer.size(),
               " bytes, expected [", c.vocab_size, ", ", c.hidden_size, "]"));
  }
  const bool has_output = weights_.Find(TensorRole::kOutput, -1) != nullptr;
  ASSIGN_OR_RETURN(output_, matmul(has_output ? TensorRole::kOutput : TensorRole::kTokenEmbd, -1,
                                   c.vocab_size, c.hidden_size));
  ASSIGN_OR_RETURN(output_norm_, vec(TensorRole::kOutputNorm, -1, c.hidden_size));

  inv_freq_.resize(static_cast<size_t>(c.rope_dim / 2));
  kernels::RopeFrequencyParams rope{.theta = c.rope_theta,
                                    .rope_dim = c.rope_dim,
                                    .scaling = ScalingKind(c.rope_scaling.type),
                                    .factor = c.rope_scaling.factor,
                                    .low_freq_factor = c.rope_scaling.low_freq_factor,
                                    .high_freq_factor = c.rope_scaling.high_freq_factor,
                                    .original_max_positions = static_cast<double>(
                                        c.rope_scaling.original_max_position_embeddings)};
  std::vector<float> freq_factors;
  if (c.rope_scaling.type == RopeScalingType::kLlama3 && c.rope_scaling.from_freq_factors_tensor) {
    ASSIGN_OR_RETURN(freq_factors, vec(TensorRole::kRopeFreqs, -1, c.rope_dim / 2));
  }
  kernels::RopeInverseFrequencies(rope, freq_factors.empty() ? nullptr : freq_factors.data(),
                                  inv_freq_.data());

  layers_.resize(static_cast<size_t>(c.num_layers));
  for (int l = 0; l < static_cast<int>(c.num_layers); ++l) {
    Layer& L = layers_[static_cast<size_t>(l)];
    ASSIGN_OR_RETURN(L.attn_norm, vec(TensorRole::kAttnNorm, l, c.hidden_size));
    ASSIGN_OR_RETURN(L.ffn_norm, vec(TensorRole::kFfnNorm, l, c.hidden_size));
    ASSIGN_OR_RETURN(L.q, matmul(TensorRole::kAttnQ, l, c.q_dim(), c.hidden_size));
    ASSIGN_OR_RETURN(L.k, matmul(TensorRole::kAttnK, l, c.kv_dim(), c.hidden_size));
    ASSIGN_OR_RETURN(L.v, matmul(TensorRole::kAttnV, l, c.kv_dim(), c.hidden_size));
    ASSIGN_OR_RETURN(L.o, matmul(TensorRole::kAttnOutput, l, c.hidden_size, c.q_dim()));
    ASSIGN_OR_RETURN(L.gate, matmul(TensorRole::kFfnGate, l, c.ffn_size, c.hidden_size));
    ASSIGN_OR_RETURN(L.up, matmul(TensorRole::kFfnUp, l, c.ffn_size, c.hidden_size));
    ASSIGN_OR_RETURN(L.down, matmul(TensorRole::kFfnDown, l, c.hidden_size, c.ffn_size));
    const bool ab = c.attention_bias, mb = c.mlp_bias;
    ASSIGN_OR_RETURN(L.q_bias, optional_vec(ab, TensorRole::kAttnQBias, l, c.q_dim()));
    ASSIGN_OR_RETURN(L.k_bias, optional_vec(ab, TensorRole::kAttnKBias, l, c.kv_dim()));
    ASSIGN_OR_RETURN(L.v_bias, optional_vec(ab, TensorRole::kAttnVBias, l, c.kv_dim()));
    ASSIGN_OR_RETURN(L.o_bias, optional_vec(ab, TensorRole::kAttnOutputBias, l, c.hidden_size));
    ASSIGN_OR_RETURN(L.gate_bias, optional_vec(mb, TensorRole::kFfnGateBias, l, c.ffn_size));
    ASSIGN_OR_RETURN(L.up_bias, optional_vec(mb, TensorRole::kFfnUpBias, l, c.ffn_size));
    ASSIGN_OR_RETURN(L.down_bias, optional_vec(mb, TensorRole::kFfnDownBias, l, c.hidden_size));
  }
  return Status::OK();
}

KvCacheShape LlamaModel::kv_cache_shape(int64_t block_size) const {
  bool all_f32 = true;
  for (const LoadedTensor& t : weights_.tensors) {
    if (IsMatmulWeight(t.ref.role) && t.dtype != DType::kF32) all_f32 = false;
  }
  return KvCacheShape{config_.num_layers, config_.num_kv_heads, config_.head_dim, block_size,
                      all_f32 ? KvDType::kF32 : KvDType::kF16};
}

uint64_t LlamaModel::weight_bytes() const {
  uint64_t total = 0;
  for (const LoadedTensor& t : weights_.tensors) total += t.buffer.size();
  return total;
}

Status LlamaModel::EnsureWorkspace(int64_t tokens, int64_t logit_rows) {
  Workspace& w = *ws_;
  if (tokens <= w.tokens && logit_rows <= w.logit_rows) return Status::OK();
  // Grow to at least double, so a server's rising batch sizes reallocate
  // only a few times.
  const int64_t t = std::max(tokens, w.tokens * 2);
  const int64_t r = std::max(logit_rows, std::min(w.logit_rows * 2, t));
  const ModelConfig& c = config_;
  const int64_t floats = t * (3 * c.hidden_size + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.ffn_size) +
                         r * (c.hidden_size + c.vocab_size);
  w.buffer.Reset();
  ASSIGN_OR_RETURN(w.buffer, HostBuffer::Allocate(ledger_, MemoryCategory::kActivations,
                                                  static_cast<uint64_t>(floats) * sizeof(float)));
  float* p = reinterpret_cast<float*>(w.buffer.data());
  auto take = [&p](int64_t n) {
    float* q = p;
    p += n;
    return q;
  };
  w.x = take(t * c.hidden_size);
  w.h = take(t * c.hidden_size);
  w.out = take(t * c.hidden_size);
  w.q = take(t * c.q_dim());
  w.att = take(t * c.q_dim());
  w.k = take(t * c.kv_dim());
  w.v = take(t * c.kv_dim());
  w.gate = take(t * c.ffn_size);
  w.up = take(t * c.ffn_size);
  w.final = take(r * c.hidden_size);
  w.logits = take(r * c.vocab_size);
  w.tokens = t;
  w.logit_rows = r;
  w.tokens_in.reserve(static_cast<size_t>(t));
  w.positions.reserve(static_cast<size_t>(t));
  return Status::OK();
}

Status LlamaModel::CheckBatch(std::span<const BatchEntry> batch, const KvCache& cache) const {
  if (batch.empty()) return Status::InvalidArgument("forward", "empty batch");
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchEntry& e = batch[i];
    const std::string who = StrCat("forward: sequence ", e.sequence);
    if (!cache.Contains(e.sequence)) return Status::NotFound(who, "not in the kv cache");
    for (size_t j = 0; j < i; ++j) {
      if (batch[j].sequence == e.sequence) return Status::InvalidArgument(who, "appears twice");
    }
    if (e.tokens.empty()) return Status::InvalidArgument(who, "no tokens");
    if (e.start_position < 0 || e.start_position > cache.length(e.sequence)) {
      return Status::InvalidArgument(who,
                                     StrCat("start position ", e.start_position, " is beyond its ",
                                            cache.length(e.sequence), " cached tokens"));
    }
    if (e.start_position + static_cast<int64_t>(e.tokens.size()) > kMaxPositions) {
      return Status::InvalidArgument(who, StrCat("positions past ", kMaxPositions));
    }
    for (int32_t t : e.tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        return Status::InvalidArgument(
            who, StrCat("token ", t, " is outside the vocabulary of ", config_.vocab_size));
      }
    }
  }
  return Status::OK();
}

Status LlamaModel::Matmul(const kernels::MatmulWeight& w, const float* x, int64_t rows, float* y,
                          const std::vector<float>& bias) {
  if (!kernels::Matmul(w, x, rows, y, pool_)) {
    return Status::Internal("forward", StrCat("matmul refused a ", w.rows, "x", w.cols, " weight"));
  }
  if (!bias.empty()) kernels::AddRowBias(bias.data(), rows, w.rows, y);
  return Status::OK();
}

Status LlamaModel::Forward(std::span<const BatchEntry> batch, KvCache* cache) {
  RETURN_IF_ERROR(CheckBatch(batch, *cache));
  int64_t tokens = 0;
  int64_t logit_rows = 0;
  for (const BatchEntry& e : batch) {
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    tokens += n;
    logit_rows += e.all_logits ? n : 1;
  }
  RETURN_IF_ERROR(EnsureWorkspace(tokens, logit_rows));
  // Reserve every sequence's blocks before computing anything; on a refusal
  // give back what this call took, so the cache is as it was.
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchEntry& e = batch[i];
    Status s = cache->Reserve(e.sequence, e.start_position + static_cast<int64_t>(e.tokens.size()));
    if (!s.ok()) {
      for (size_t j = 0; j <= i; ++j) {
        (void)cache->SetLength(batch[j].sequence, cache->length(batch[j].sequence));
      }
      return s;
    }
  }
  Status s = RunLayers(batch, cache, tokens);
  if (!s.ok()) {
    for (const BatchEntry& e : batch) (void)cache->SetLength(e.sequence, cache->length(e.sequence));
    return s;
  }
  for (const BatchEntry& e : batch) {
    RETURN_IF_ERROR(
        cache->SetLength(e.sequence, e.start_position + static_cast<int64_t>(e.tokens.size())));
  }
  return Status::OK();
}

Status LlamaModel::RunLayers(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens) {
  const ModelConfig& c = config_;
  Workspace& w = *ws_;
  const int64_t hidden = c.hidden_size, kv_dim = c.kv_dim(), ffn = c.ffn_size;
  const float eps = static_cast<float>(c.rms_eps);

  w.tokens_in.clear();
  w.positions.clear();
  w.spans.clear();
  for (const BatchEntry& e : batch) {
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    w.spans.push_back({static_cast<int64_t>(w.tokens_in.size()), n, e.start_position,
                       cache->block_table(e.sequence).data()});
    w.tokens_in.insert(w.tokens_in.end(), e.tokens.begin(), e.tokens.end());
    for (int64_t i = 0; i < n; ++i) {
      w.positions.push_back(static_cast<int32_t>(e.start_position + i));
    }
  }
  if (!kernels::EmbeddingRows(token_embd_->buffer.data(), embd_type_, c.vocab_size, hidden,
                              w.tokens_in.data(), tokens, w.x)) {
    return Status::Internal("forward", "embedding lookup refused its arguments");
  }
  const kernels::PagedAttentionParams attn{
      c.num_heads,
      c.num_kv_heads,
      c.head_dim,
      cache->block_size(),
      1.0f / std::sqrt(static_cast<float>(c.head_dim)),
      cache->shape().dtype == KvDType::kF16 ? kernels::KvElem::kF16 : kernels::KvElem::kF32};
  const int64_t bs = cache->block_size();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    ForRows(pool_, tokens, [&](int64_t r, int64_t n) {
      kernels::RmsNorm(w.x + r * hidden, L.attn_norm.data(), n, hidden, eps, w.h + r * hidden);
    });
    RETURN_IF_ERROR(Matmul(L.q, w.h, tokens, w.q, L.q_bias));
    RETURN_IF_ERROR(Matmul(L.k, w.h, tokens, w.k, L.k_bias));
    RETURN_IF_ERROR(Matmul(L.v, w.h, tokens, w.v, L.v_bias));
    ForRows(pool_, tokens, [&](int64_t r, int64_t n) {
      kernels::ApplyRope(w.q + r * c.q_dim(), n, c.num_heads, c.head_dim, c.rope_dim,
                         w.positions.data() + r, inv_freq_.data(), pairing_);
      kernels::ApplyRope(w.k + r * kv_dim, n, c.num_kv_heads, c.head_dim, c.rope_dim,
                         w.positions.data() + r, inv_freq_.data(), pairing_);
    });
    void* k_pool = cache->keys(static_cast<int64_t>(l));
    void* v_pool = cache->values(static_cast<int64_t>(l));
    const bool f16 = cache->shape().dtype == KvDType::kF16;
    for (const kernels::AttentionSpan& span : w.spans) {
      for (int64_t i = 0; i < span.rows; ++i) {
        const int64_t pos = span.start_position + i;
        const int64_t slot =
            (static_cast<int64_t>(span.block_table[pos / bs]) * bs + pos % bs) * kv_dim;
        const int64_t row = span.first_row + i;
        if (f16) {
          kernels::NarrowF32ToF16(w.k + row * kv_dim, static_cast<uint16_t*>(k_pool) + slot,
                                  static_cast<size_t>(kv_dim));
          kernels::NarrowF32ToF16(w.v + row * kv_dim, static_cast<uint16_t*>(v_pool) + slot,
                                  static_cast<size_t>(kv_dim));
        } else {
          std::memcpy(static_cast<float*>(k_pool) + slot, w.k + row * kv_dim,
                      static_cast<size_t>(kv_dim) * sizeof(float));
          std::memcpy(static_cast<float*>(v_pool) + slot, w.v + row * kv_dim,
                      static_cast<size_t>(kv_dim) * sizeof(float));
        }
      }
    }
    if (!kernels::PagedAttention(attn, w.q, w.spans.data(), static_cast<int64_t>(w.spans.size()),
                                 k_pool, v_pool, w.att, pool_)) {
      return Status::Internal("forward", "attention refused its arguments");
    }
    RETURN_IF_ERROR(Matmul(L.o, w.att, tokens, w.out, L.o_bias));
    ForRows(pool_, tokens, [&](int64_t r, int64_t n) {
      kernels::Add(w.out + r * hidden, n * hidden, w.x + r * hidden);
      kernels::RmsNorm(w.x + r * hidden, L.ffn_norm.data(), n, hidden, eps, w.h + r * hidden);
    });
    RETURN_IF_ERROR(Matmul(L.gate, w.h, tokens, w.gate, L.gate_bias));
    RETURN_IF_ERROR(Matmul(L.up, w.h, tokens, w.up, L.up_bias));
    ForRows(pool_, tokens, [&](int64_t r, int64_t n) {
      kernels::SiluGate(w.gate + r * ffn, w.up + r * ffn, n * ffn, w.gate + r * ffn);
    });
    RETURN_IF_ERROR(Matmul(L.down, w.gate, tokens, w.out, L.down_bias));
    ForRows(pool_, tokens, [&](int64_t r, int64_t n) {
      kernels::Add(w.out + r * hidden, n * hidden, w.x + r * hidden);
    });
  }

  // The final norm and the head only for the rows whose logits are wanted.
  logit_first_row_.clear();
  int64_t r = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const kernels::AttentionSpan& span = w.spans[i];
    logit_first_row_.push_back(r);
    const int64_t first = batch[i].all_logits ? span.first_row : span.first_row + span.rows - 1;
    const int64_t n = batch[i].all_logits ? span.rows : 1;
    kernels::RmsNorm(w.x + first * hidden, output_norm_.data(), n, hidden, eps,
                     w.final + r * hidden);
    r += n;
  }
  logit_first_row_.push_back(r);
  return Matmul(output_, w.final, r, w.logits, {});
}

std::span<const float> LlamaModel::Logits(size_t entry) const {
  const int64_t first = logit_first_row_[entry];
  const int64_t rows = logit_first_row_[entry + 1] - first;
  return {ws_->logits + first * config_.vocab_size, static_cast<size_t>(rows * config_.vocab_size)};
}

}  // namespace relayout
