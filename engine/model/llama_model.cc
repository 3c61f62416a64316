#include "engine/model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "engine/device/cpu_device.h"
#include "kernels/cpu/attention/paged_attention.h"
#include "kernels/cpu/ops/embedding.h"

namespace relayout {

struct LlamaModel::Workspace {
  int64_t tokens = 0;      // row capacity
  int64_t logit_rows = 0;  // logits row capacity
  DeviceBuffer buffer;
  DeviceRef x;       // [tokens, hidden] the residual stream
  DeviceRef h;       // [tokens, hidden] normalized input of a block
  DeviceRef q;       // [tokens, q_dim]
  DeviceRef k;       // [tokens, kv_dim]
  DeviceRef v;       // [tokens, kv_dim]
  DeviceRef att;     // [tokens, q_dim]
  DeviceRef gate;    // [tokens, ffn]
  DeviceRef up;      // [tokens, ffn]
  DeviceRef out;     // [tokens, hidden] a block's output before the residual add
  DeviceRef final;   // [logit_rows, hidden]
  DeviceRef logits;  // [logit_rows, vocab]
  std::vector<int32_t> tokens_in;
  std::vector<int32_t> positions;
  std::vector<kernels::AttentionSpan> spans;
};

namespace {

kernels::RopeScalingKind ScalingKind(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kLinear:
      return kernels::RopeScalingKind::kLinear;
    case RopeScalingType::kLlama3:
      return kernels::RopeScalingKind::kLlama3;
    case RopeScalingType::kDynamic:  // unscaled up to context_length (model_config.h)
    case RopeScalingType::kNone:
      break;
  }
  return kernels::RopeScalingKind::kNone;
}

// Row `row` of a matrix of `width` floats.
DeviceRef Row(const DeviceRef& m, int64_t row, int64_t width) {
  return m + static_cast<uint64_t>(row * width) * sizeof(float);
}

}  // namespace

Result<kernels::MatmulWeight> MatmulWeightFor(const LoadedTensor& t) {
  ASSIGN_OR_RETURN(DeviceMatmulWeight w,
                   MatmulWeightFor(t.name, t.dtype, t.shape, t.layout,
                                   DeviceRef::Host(t.buffer.data(), t.buffer.size())));
  if (!kernels::MatmulSupported(w.OnHost())) {
    return Status::Unimplemented(t.name, StrCat("no CPU matmul for ", DTypeName(t.dtype), " in ",
                                                t.layout.Name(), " ", ShapeToString(t.shape)));
  }
  return w.OnHost();
}

LlamaModel::LlamaModel(const ModelConfig& config, NamingScheme naming, Device* device)
    : config_(config),
      naming_(naming),
      pairing_(naming == NamingScheme::kHf ? kernels::RopePairing::kHalves
                                           : kernels::RopePairing::kInterleaved),
      device_(device),
      ws_(std::make_unique<Workspace>()) {}

LlamaModel::~LlamaModel() = default;

namespace {

Status CheckConfig(const ModelConfig& config) {
  RETURN_IF_ERROR(config.Validate("model"));
  if (config.rope_dim > kernels::kMaxRopeDim) {
    return Status::Unimplemented(
        "model", StrCat("rope_dim ", config.rope_dim, " is above ", kernels::kMaxRopeDim));
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::Create(const ModelConfig& config,
                                                       NamingScheme naming, LoadedWeights weights,
                                                       kernels::ThreadPool* pool,
                                                       MemoryLedger* ledger) {
  RETURN_IF_ERROR(CheckConfig(config));
  std::unique_ptr<LlamaModel> model(new LlamaModel(config, naming, nullptr));
  if (ledger == nullptr) {
    model->own_ledger_ = std::make_unique<MemoryLedger>();
    ledger = model->own_ledger_.get();
  }
  model->own_device_ = std::make_unique<CpuDevice>(ledger, pool);
  model->device_ = model->own_device_.get();
  model->host_weights_ = std::move(weights);
  for (const LoadedTensor& t : model->host_weights_.tensors) {
    model->tensors_.push_back({&t.name, t.ref, t.dtype, &t.shape, t.layout,
                               DeviceRef::Host(t.buffer.data(), t.buffer.size())});
  }
  RETURN_IF_ERROR(model->BindWeights());
  return model;
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::Create(const ModelConfig& config,
                                                       NamingScheme naming, DeviceWeights weights,
                                                       Device* device) {
  RETURN_IF_ERROR(CheckConfig(config));
  std::unique_ptr<LlamaModel> model(new LlamaModel(config, naming, device));
  model->device_weights_ = std::move(weights);
  for (const DeviceTensor& t : model->device_weights_.tensors) {
    if (t.buffer.ref().device != device) {
      return Status::InvalidArgument(t.name, StrCat("is not on ", device->spec()));
    }
    model->tensors_.push_back({&t.name, t.ref, t.dtype, &t.shape, t.layout, t.buffer.ref()});
  }
  RETURN_IF_ERROR(model->BindWeights());
  return model;
}

const LlamaModel::Tensor* LlamaModel::Find(TensorRole role, int layer) const {
  for (const Tensor& t : tensors_) {
    if (t.ref.role == role && t.ref.layer == layer) return &t;
  }
  return nullptr;
}

Result<int64_t> LlamaModel::AppendFloats(const Tensor& t, int64_t n) {
  ASSIGN_OR_RETURN(kernels::WeightType type, WeightTypeFor(*t.name, t.dtype));
  const std::optional<uint64_t> count = ElementCount(*t.shape);
  if (!count || *count == 0 || !t.layout.IsCommon()) {
    return Status::DataLoss(*t.name, StrCat("expected a vector in its common layout, got ",
                                            ShapeToString(*t.shape), " ", t.layout.Name()));
  }
  if (static_cast<int64_t>(*count) != n) {
    return Status::DataLoss(*t.name, StrCat("has ", *count, " elements, expected ", n));
  }
  // Read back from wherever the tensor is (a small copy, once).
  std::vector<std::byte> raw(static_cast<size_t>(kernels::EmbeddingRowBytes(type, n)));
  RETURN_IF_ERROR(device_->Download(t.data, raw).WithPrefix(*t.name));
  const int64_t offset = static_cast<int64_t>(aux_.size());
  aux_.resize(aux_.size() + static_cast<size_t>((n + 15) / 16 * 16), 0.0f);
  const int32_t zero = 0;
  if (!kernels::EmbeddingRows(raw.data(), type, 1, n, &zero, 1, aux_.data() + offset)) {
    return Status::Unimplemented(
        *t.name, StrCat("cannot read ", DTypeName(t.dtype), " vector of ", n, " elements"));
  }
  return offset;
}

Status LlamaModel::PlaceAux() {
  const uint64_t bytes = aux_.size() * sizeof(float);
  if (device_->accepts_host_memory()) {
    aux_ref_ = DeviceRef::Host(aux_.data(), bytes);
    return Status::OK();
  }
  ASSIGN_OR_RETURN(aux_buffer_,
                   device_->Allocate(bytes, MemoryCategory::kWeights, "model vectors"));
  RETURN_IF_ERROR(device_->Upload(
      aux_buffer_, 0, std::span(reinterpret_cast<const std::byte*>(aux_.data()), bytes)));
  aux_ref_ = aux_buffer_.ref();
  return Status::OK();
}

Status LlamaModel::BindWeights() {
  const ModelConfig& c = config_;
  auto find = [&](TensorRole role, int layer) -> Result<const Tensor*> {
    const Tensor* t = Find(role, layer);
    if (t == nullptr) {
      return Status::DataLoss("model", StrCat("missing tensor ", InternalTensorName(role, layer)));
    }
    return t;
  };
  auto matmul = [&](TensorRole role, int layer, int64_t rows,
                    int64_t cols) -> Result<DeviceMatmulWeight> {
    ASSIGN_OR_RETURN(const Tensor* t, find(role, layer));
    ASSIGN_OR_RETURN(DeviceMatmulWeight w,
                     MatmulWeightFor(*t->name, t->dtype, *t->shape, t->layout, t->data));
    if (w.rows != rows || w.cols != cols) {
      return Status::DataLoss(*t->name, StrCat("shape ", ShapeToString(*t->shape), ", expected [",
                                               rows, ", ", cols, "]"));
    }
    if (!device_->MatmulSupported(w)) {
      return Status::Unimplemented(
          *t->name, StrCat("no matmul on ", device_->spec(), " for ", DTypeName(t->dtype), " in ",
                           t->layout.Name(), " ", ShapeToString(*t->shape)));
    }
    return w;
  };
  matmul_of_.assign(tensors_.size(), nullptr);
  // Binds the matmul *out to its tensor, so a relayout can rebind it.
  auto bind = [&](TensorRole role, int layer, int64_t rows, int64_t cols,
                  DeviceMatmulWeight* out) -> Status {
    ASSIGN_OR_RETURN(*out, matmul(role, layer, rows, cols));
    matmul_of_[static_cast<size_t>(Find(role, layer) - tensors_.data())] = out;
    return Status::OK();
  };
  auto vec = [&](TensorRole role, int layer, int64_t n) -> Result<int64_t> {
    ASSIGN_OR_RETURN(const Tensor* t, find(role, layer));
    return AppendFloats(*t, n);
  };
  auto optional_vec = [&](bool present, TensorRole role, int layer, int64_t n) -> Result<int64_t> {
    if (!present || Find(role, layer) == nullptr) return int64_t{-1};
    return vec(role, layer, n);
  };

  ASSIGN_OR_RETURN(token_embd_, find(TensorRole::kTokenEmbd, -1));
  ASSIGN_OR_RETURN(embd_type_, WeightTypeFor(*token_embd_->name, token_embd_->dtype));
  if (!token_embd_->layout.IsCommon()) {
    return Status::Unimplemented(*token_embd_->name,
                                 StrCat("embeddings are read by row from their common layout, got ",
                                        token_embd_->layout.Name()));
  }
  const std::vector<int64_t>& embd_shape = *token_embd_->shape;
  if (embd_shape.size() != 2 || embd_shape[0] != c.vocab_size || embd_shape[1] != c.hidden_size ||
      static_cast<uint64_t>(kernels::EmbeddingRowBytes(embd_type_, c.hidden_size) * c.vocab_size) !=
          token_embd_->data.size) {
    return Status::DataLoss(*token_embd_->name, StrCat("shape ", ShapeToString(embd_shape), " of ",
                                                       token_embd_->data.size, " bytes, expected [",
                                                       c.vocab_size, ", ", c.hidden_size, "]"));
  }
  const bool has_output = Find(TensorRole::kOutput, -1) != nullptr;
  RETURN_IF_ERROR(bind(has_output ? TensorRole::kOutput : TensorRole::kTokenEmbd, -1, c.vocab_size,
                       c.hidden_size, &output_));
  ASSIGN_OR_RETURN(output_norm_, vec(TensorRole::kOutputNorm, -1, c.hidden_size));

  kernels::RopeFrequencyParams rope{.theta = c.rope_theta,
                                    .rope_dim = c.rope_dim,
                                    .scaling = ScalingKind(c.rope_scaling.type),
                                    .factor = c.rope_scaling.factor,
                                    .low_freq_factor = c.rope_scaling.low_freq_factor,
                                    .high_freq_factor = c.rope_scaling.high_freq_factor,
                                    .original_max_positions = static_cast<double>(
                                        c.rope_scaling.original_max_position_embeddings)};
  int64_t freq_factors = -1;
  if (c.rope_scaling.type == RopeScalingType::kLlama3 && c.rope_scaling.from_freq_factors_tensor) {
    ASSIGN_OR_RETURN(freq_factors, vec(TensorRole::kRopeFreqs, -1, c.rope_dim / 2));
  }
  std::vector<float> inv_freq(static_cast<size_t>(c.rope_dim / 2));
  kernels::RopeInverseFrequencies(rope, freq_factors < 0 ? nullptr : aux_.data() + freq_factors,
                                  inv_freq.data());
  inv_freq_ = static_cast<int64_t>(aux_.size());
  aux_.insert(aux_.end(), inv_freq.begin(), inv_freq.end());
  aux_.resize((aux_.size() + 15) / 16 * 16, 0.0f);

  layers_.resize(static_cast<size_t>(c.num_layers));
  for (int l = 0; l < static_cast<int>(c.num_layers); ++l) {
    Layer& L = layers_[static_cast<size_t>(l)];
    ASSIGN_OR_RETURN(L.attn_norm, vec(TensorRole::kAttnNorm, l, c.hidden_size));
    ASSIGN_OR_RETURN(L.ffn_norm, vec(TensorRole::kFfnNorm, l, c.hidden_size));
    RETURN_IF_ERROR(bind(TensorRole::kAttnQ, l, c.q_dim(), c.hidden_size, &L.q));
    RETURN_IF_ERROR(bind(TensorRole::kAttnK, l, c.kv_dim(), c.hidden_size, &L.k));
    RETURN_IF_ERROR(bind(TensorRole::kAttnV, l, c.kv_dim(), c.hidden_size, &L.v));
    RETURN_IF_ERROR(bind(TensorRole::kAttnOutput, l, c.hidden_size, c.q_dim(), &L.o));
    RETURN_IF_ERROR(bind(TensorRole::kFfnGate, l, c.ffn_size, c.hidden_size, &L.gate));
    RETURN_IF_ERROR(bind(TensorRole::kFfnUp, l, c.ffn_size, c.hidden_size, &L.up));
    RETURN_IF_ERROR(bind(TensorRole::kFfnDown, l, c.hidden_size, c.ffn_size, &L.down));
    const bool ab = c.attention_bias, mb = c.mlp_bias;
    ASSIGN_OR_RETURN(L.q_bias, optional_vec(ab, TensorRole::kAttnQBias, l, c.q_dim()));
    ASSIGN_OR_RETURN(L.k_bias, optional_vec(ab, TensorRole::kAttnKBias, l, c.kv_dim()));
    ASSIGN_OR_RETURN(L.v_bias, optional_vec(ab, TensorRole::kAttnVBias, l, c.kv_dim()));
    ASSIGN_OR_RETURN(L.o_bias, optional_vec(ab, TensorRole::kAttnOutputBias, l, c.hidden_size));
    ASSIGN_OR_RETURN(L.gate_bias, optional_vec(mb, TensorRole::kFfnGateBias, l, c.ffn_size));
    ASSIGN_OR_RETURN(L.up_bias, optional_vec(mb, TensorRole::kFfnUpBias, l, c.ffn_size));
    ASSIGN_OR_RETURN(L.down_bias, optional_vec(mb, TensorRole::kFfnDownBias, l, c.hidden_size));
  }
  return PlaceAux();
}

std::vector<ResidentTensor> LlamaModel::ResidentTensors() const {
  std::vector<ResidentTensor> out;
  out.reserve(tensors_.size());
  for (const Tensor& t : tensors_)
    out.push_back({*t.name, t.ref, t.dtype, *t.shape, t.layout, t.data});
  return out;
}

Status LlamaModel::CheckWeightLayout(size_t i, const Layout& layout) const {
  if (i >= tensors_.size()) {
    return Status::InvalidArgument("model", StrCat("tensor ", i, " of ", tensors_.size()));
  }
  const Tensor& t = tensors_[i];
  if (&t == token_embd_ && !layout.IsCommon()) {
    return Status::Unimplemented(
        *t.name,
        StrCat("embeddings are read by row from their common layout, not ", layout.Name()));
  }
  if (matmul_of_[i] == nullptr) {
    if (layout == CommonLayoutFor(t.dtype)) return Status::OK();
    return Status::Unimplemented(*t.name,
                                 StrCat("only matmul weights change layout; this one stays ",
                                        CommonLayoutFor(t.dtype).Name(), ", not ", layout.Name()));
  }
  ASSIGN_OR_RETURN(const DeviceMatmulWeight w,
                   MatmulWeightFor(*t.name, t.dtype, *t.shape, layout, t.data));
  if (!device_->MatmulSupported(w)) {
    return Status::Unimplemented(*t.name, StrCat("no matmul on ", device_->spec(), " for ",
                                                 DTypeName(t.dtype), " in ", layout.Name()));
  }
  return Status::OK();
}

Status LlamaModel::SetWeightLayout(size_t i, const Layout& layout) {
  RETURN_IF_ERROR(CheckWeightLayout(i, layout));
  Tensor& t = tensors_[i];
  if (DeviceMatmulWeight* m = matmul_of_[i]; m != nullptr) {
    ASSIGN_OR_RETURN(*m, MatmulWeightFor(*t.name, t.dtype, *t.shape, layout, t.data));
  }
  t.layout = layout;
  if (i < host_weights_.tensors.size()) host_weights_.tensors[i].layout = layout;
  if (i < device_weights_.tensors.size()) device_weights_.tensors[i].layout = layout;
  return Status::OK();
}

KvCacheShape LlamaModel::kv_cache_shape(int64_t block_size) const {
  bool all_f32 = true;
  for (const Tensor& t : tensors_) {
    if (IsMatmulWeight(t.ref.role) && t.dtype != DType::kF32) all_f32 = false;
  }
  return KvCacheShape{config_.num_layers, config_.num_kv_heads, config_.head_dim, block_size,
                      all_f32 ? KvDType::kF32 : KvDType::kF16};
}

uint64_t LlamaModel::weight_bytes() const {
  uint64_t total = 0;
  for (const Tensor& t : tensors_) total += t.data.size;
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
  // Each region starts on a 256-byte boundary (vector loads on any device).
  const auto floats = [](int64_t n) { return (n + 63) / 64 * 64; };
  const int64_t sizes[] = {t * c.hidden_size, t * c.hidden_size, t * c.hidden_size, t * c.q_dim(),
                           t * c.q_dim(),     t * c.kv_dim(),    t * c.kv_dim(),    t * c.ffn_size,
                           t * c.ffn_size,    r * c.hidden_size, r * c.vocab_size};
  int64_t total = 0;
  for (int64_t n : sizes) total += floats(n);
  // The old buffer goes first (its memory may be what the new one needs);
  // until the new one exists the workspace holds nothing.
  w.buffer = DeviceBuffer();
  w.tokens = 0;
  w.logit_rows = 0;
  ASSIGN_OR_RETURN(w.buffer, device_->Allocate(static_cast<uint64_t>(total) * sizeof(float),
                                               MemoryCategory::kActivations, "forward workspace"));
  int64_t at = 0;
  size_t i = 0;
  auto take = [&] {
    const DeviceRef ref = w.buffer.ref(static_cast<uint64_t>(at) * sizeof(float));
    at += floats(sizes[i++]);
    return ref;
  };
  w.x = take();
  w.h = take();
  w.out = take();
  w.q = take();
  w.att = take();
  w.k = take();
  w.v = take();
  w.gate = take();
  w.up = take();
  w.final = take();
  w.logits = take();
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

Status LlamaModel::Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t rows, DeviceRef y,
                          int64_t bias) {
  RETURN_IF_ERROR(device_->Matmul(w, x, rows, y));
  if (bias >= 0) RETURN_IF_ERROR(device_->AddRowBias(Aux(bias), rows, w.rows, y));
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
  // No entry may write into a block it shares (prefix caching, kv_cache.h);
  // the blocks it rewrites leave the prefix index.
  for (const BatchEntry& e : batch)
    RETURN_IF_ERROR(cache->BeginWrite(e.sequence, e.start_position));
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
  // A decode step (one new token per sequence, only its logits wanted)
  // has the same ops and operands every time: the device may capture it
  // once as a graph and replay it (kernels/device_abi.h, step graphs).
  const bool decode_step = std::all_of(batch.begin(), batch.end(), [](const BatchEntry& e) {
    return e.tokens.size() == 1 && !e.all_logits;
  });
  Status s = RunLayers(batch, cache, tokens, decode_step);
  if (!s.ok()) {
    for (const BatchEntry& e : batch) (void)cache->SetLength(e.sequence, cache->length(e.sequence));
    return s;
  }
  for (const BatchEntry& e : batch) {
    RETURN_IF_ERROR(cache->Commit(e.sequence, e.start_position, e.tokens));
  }
  return Status::OK();
}

Status LlamaModel::RunLayers(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens,
                             bool decode_step) {
  if (decode_step) {
    RETURN_IF_ERROR(device_->StepBegin());
    Status s = RunOps(batch, cache, tokens);
    // The step ends even after a failed op, so the device leaves it.
    Status end = device_->StepEnd();
    RETURN_IF_ERROR(s);
    RETURN_IF_ERROR(end);
  } else {
    RETURN_IF_ERROR(RunOps(batch, cache, tokens));
  }
  if (device_->accepts_host_memory()) {
    logits_ = ws_->logits.floats();
    return Status::OK();
  }
  const int64_t rows = logit_first_row_.back();
  host_logits_.resize(static_cast<size_t>(rows * config_.vocab_size));
  logits_ = host_logits_.data();
  return device_->Download(ws_->logits, std::as_writable_bytes(std::span(host_logits_)));
}

Status LlamaModel::RunOps(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens) {
  const ModelConfig& c = config_;
  Workspace& w = *ws_;
  const int64_t hidden = c.hidden_size, ffn = c.ffn_size;
  const float eps = static_cast<float>(c.rms_eps);
  Device& d = *device_;

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
  RETURN_IF_ERROR(
      d.Embedding(token_embd_->data, embd_type_, c.vocab_size, hidden, w.tokens_in, w.x));
  const kernels::PagedAttentionParams attn{
      c.num_heads,
      c.num_kv_heads,
      c.head_dim,
      cache->block_size(),
      1.0f / std::sqrt(static_cast<float>(c.head_dim)),
      cache->shape().dtype == KvDType::kF16 ? kernels::KvElem::kF16 : kernels::KvElem::kF32};
  const int64_t pool_blocks = cache->total_blocks();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const DeviceRef k_pool = cache->keys(static_cast<int64_t>(l));
    const DeviceRef v_pool = cache->values(static_cast<int64_t>(l));
    RETURN_IF_ERROR(d.RmsNorm(w.x, Aux(L.attn_norm), tokens, hidden, eps, w.h));
    RETURN_IF_ERROR(Matmul(L.q, w.h, tokens, w.q, L.q_bias));
    RETURN_IF_ERROR(Matmul(L.k, w.h, tokens, w.k, L.k_bias));
    RETURN_IF_ERROR(Matmul(L.v, w.h, tokens, w.v, L.v_bias));
    RETURN_IF_ERROR(d.Rope(w.q, tokens, c.num_heads, c.head_dim, c.rope_dim, w.positions,
                           Aux(inv_freq_), pairing_));
    RETURN_IF_ERROR(d.Rope(w.k, tokens, c.num_kv_heads, c.head_dim, c.rope_dim, w.positions,
                           Aux(inv_freq_), pairing_));
    RETURN_IF_ERROR(d.KvWrite(attn, pool_blocks, w.k, w.v, w.spans, k_pool, v_pool));
    RETURN_IF_ERROR(d.Attention(attn, pool_blocks, w.q, w.spans, k_pool, v_pool, w.att));
    RETURN_IF_ERROR(Matmul(L.o, w.att, tokens, w.out, L.o_bias));
    RETURN_IF_ERROR(d.Add(w.out, tokens * hidden, w.x));
    RETURN_IF_ERROR(d.RmsNorm(w.x, Aux(L.ffn_norm), tokens, hidden, eps, w.h));
    RETURN_IF_ERROR(Matmul(L.gate, w.h, tokens, w.gate, L.gate_bias));
    RETURN_IF_ERROR(Matmul(L.up, w.h, tokens, w.up, L.up_bias));
    RETURN_IF_ERROR(d.SiluGate(w.gate, w.up, tokens * ffn, w.gate));
    RETURN_IF_ERROR(Matmul(L.down, w.gate, tokens, w.out, L.down_bias));
    RETURN_IF_ERROR(d.Add(w.out, tokens * hidden, w.x));
  }

  // The final norm and the head only for the rows whose logits are wanted.
  logit_first_row_.clear();
  int64_t r = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const kernels::AttentionSpan& span = w.spans[i];
    logit_first_row_.push_back(r);
    const int64_t first = batch[i].all_logits ? span.first_row : span.first_row + span.rows - 1;
    const int64_t n = batch[i].all_logits ? span.rows : 1;
    RETURN_IF_ERROR(d.RmsNorm(Row(w.x, first, hidden), Aux(output_norm_), n, hidden, eps,
                              Row(w.final, r, hidden)));
    r += n;
  }
  logit_first_row_.push_back(r);
  return Matmul(output_, w.final, r, w.logits, -1);
}

std::span<const float> LlamaModel::Logits(size_t entry) const {
  const int64_t first = logit_first_row_[entry];
  const int64_t rows = logit_first_row_[entry + 1] - first;
  return {logits_ + first * config_.vocab_size, static_cast<size_t>(rows * config_.vocab_size)};
}

}  // namespace relayout
