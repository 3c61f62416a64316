// LlamaModel: a Llama-family decoder over converted weights, and its
// batched forward pass on the CPU.
//
// Per layer, in the paper's order (x: [T, hidden], one row per token of the
// batch):
//   h  = rmsnorm(x) * attn_norm
//   q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)    one Matmul each, T rows
//   RoPE on q and k at each row's position; k, v written to the KV cache
//   a  = causal GQA attention of each sequence's rows over its own KV
//   x += a Wo^T (+bo)
//   h  = rmsnorm(x) * ffn_norm
//   x += (silu(h Wg^T) * (h Wu^T)) Wd^T                     (+ biases)
// then logits = rmsnorm(x) * output_norm  Wout^T  (Wout = token_embd if tied)
// for the rows asked for. Every matmul takes all sequences' rows at once, so
// a prefill is T = prompt length and a decode step of B sequences is T = B.
//
// RoPE pairing follows the container: Hugging Face checkpoints store q/k
// rows in rotate-half order, GGUF in interleaved-pair order, and the rows are
// used as stored, with the rotation that matches (llama.cpp's NEOX and NORM
// rope types). Permuting rows at load instead would need a transform per
// target layout (the rows may already be interleaved in row groups or
// quantized blocks) and extra scratch in the conversion plan; choosing the
// pairing costs nothing at run time.
//
// Weights stay in the layout the relayout engine gave them (LoadedTensor.
// layout); the transposed layout is refused (Unimplemented) as no matmul
// reads it. Embeddings are read by row from their common layout.
//
// The pass runs on a Device (engine/device/device.h) and touches memory only
// through it: the weights, the KV cache's pools, the activations (one
// workspace buffer, category kActivations) and the logits live on the
// device, every step is one of its ops, and only the logits of the rows
// asked for come back to the host. On the CPU the ops are the kernels/cpu
// calls on the same thread pool; on a plugin device (the CUDA backend, the
// host-reference plugin) the same pass goes through kernels/device_abi.h.
// Small vectors (norm weights, biases, RoPE frequencies) are widened to
// float once at creation and placed on the device with the weights.
//
// Thread safety: Forward is not reentrant (it reuses activation buffers and
// the thread pool); one caller at a time, e.g. the serving scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/model_spec.h"
#include "engine/conversion/device_conversion.h"
#include "engine/conversion/live_relayout.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/device/device.h"
#include "engine/device/device_weight.h"
#include "engine/memory/memory_ledger.h"
#include "engine/model/kv_cache.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/ops/rope.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {

// One sequence's part of a forward pass: tokens at positions
// [start_position, start_position + tokens.size()).
struct BatchEntry {
  SequenceId sequence = 0;
  std::span<const int32_t> tokens;
  int64_t start_position = 0;
  // Logits of every token (golden tests, perplexity) instead of the last only.
  bool all_logits = false;
};

// The matmul view of a converted tensor: type from its dtype, layout kind
// and parameters from its Layout. Unimplemented naming the tensor for a
// dtype no matmul reads, the transposed layout, or a non-2-D shape.
Result<kernels::MatmulWeight> MatmulWeightFor(const LoadedTensor& tensor);

class LlamaModel {
 public:
  // Takes ownership of the weights. pool (not owned, may be null: run on the
  // calling thread) must outlive the model; activations are drawn from
  // ledger (not owned, may be null: an internal unlimited one) as
  // kActivations. Errors: InvalidArgument for an invalid config;
  // DataLoss naming a missing tensor or one whose shape disagrees with the
  // config; Unimplemented for a dtype or layout the CPU kernels do not read.
  static Result<std::unique_ptr<LlamaModel>> Create(const ModelConfig& config, NamingScheme naming,
                                                    LoadedWeights weights,
                                                    kernels::ThreadPool* pool,
                                                    MemoryLedger* ledger);
  // The same on `device` (not owned; outlives the model), over weights
  // already there (ExecuteConversionOnDevice). Unimplemented naming the
  // op or the weight when the device cannot run one; the device's
  // ResourceExhausted naming what did not fit.
  static Result<std::unique_ptr<LlamaModel>> Create(const ModelConfig& config, NamingScheme naming,
                                                    DeviceWeights weights, Device* device);

  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;
  ~LlamaModel();

  // Positions are int32 in the kernels.
  static constexpr int64_t kMaxPositions = int64_t{1} << 30;

  // The device the model runs on (and its KV cache must live on).
  Device* device() const { return device_; }

  // Runs the batch, writes each entry's K/V into cache and commits the
  // sequences' new lengths. Each entry's start_position must be at most its
  // sequence's committed length (a smaller one rewinds it); a sequence
  // appears at most once. The config's context_length (the trained context)
  // is not enforced here: as in llama.cpp, a caller may run past it (the
  // GGUF copies of the story models declare 128 and their references run
  // to 256); the KV cache's size is the hard limit.
  // Errors, with the cache unchanged: InvalidArgument (empty batch or entry,
  // token out of the vocabulary, positions out of range, duplicate
  // sequence), NotFound (unknown sequence), the cache's ResourceExhausted
  // when its blocks run out, the device's ResourceExhausted ("forward
  // workspace: ...") when a larger batch's activations do not fit. Internal
  // if a kernel refuses its arguments (a bug) and the device's own errors;
  // lengths are then unchanged but K/V slots of a rewound sequence may have
  // been overwritten.
  Status Forward(std::span<const BatchEntry> batch, KvCache* cache);

  // After a successful Forward: entry i's logits, rows * vocab_size floats
  // in host memory (one row, or tokens.size() rows with all_logits). Valid
  // until the next Forward. REQUIRES: i < the last batch's size.
  std::span<const float> Logits(size_t entry) const;

  const ModelConfig& config() const { return config_; }
  // The cache shape this model's Forward needs (block_size as given). The
  // element type follows the weights: F32 when every matmul weight is F32
  // (an F32 checkpoint is the accuracy path, matching float references to
  // 1e-4), F16 otherwise, as llama.cpp and vLLM store it by default (half
  // the bytes; the numbers of a quantized model then match llama.cpp's).
  KvCacheShape kv_cache_shape(int64_t block_size = 16) const;
  NamingScheme naming() const { return naming_; }
  kernels::RopePairing rope_pairing() const { return pairing_; }
  uint64_t weight_bytes() const;

  // Live relayout (engine/conversion/live_relayout.h). The weights as they
  // are now: each tensor's layout and bytes, in the model's tensor order.
  std::vector<ResidentTensor> ResidentTensors() const;
  // OK when the forward pass can read tensor i in `layout` on this device:
  // a matmul weight in a layout the device's matmul takes, any other
  // tensor (embeddings, which are gathered by row, norms, biases) only in
  // its common layout. Unimplemented naming the tensor otherwise;
  // InvalidArgument for i out of range.
  Status CheckWeightLayout(size_t i, const Layout& layout) const;
  // Records that tensor i's bytes are now in `layout` (the caller has
  // converted them in place) and rebinds its matmul, so the next Forward
  // reads the new layout. Errors as CheckWeightLayout, nothing changed.
  // REQUIRES: no Forward running (the caller is Forward's one caller).
  Status SetWeightLayout(size_t i, const Layout& layout);

 private:
  // A converted tensor wherever it lives: host memory (LoadedWeights) or
  // the device (DeviceWeights).
  struct Tensor {
    const std::string* name;
    TensorRef ref;
    DType dtype;
    const std::vector<int64_t>* shape;
    Layout layout;
    DeviceRef data;
  };
  struct Layer {
    // Offsets into the float vectors (aux_); -1: absent (a bias).
    int64_t attn_norm = -1, ffn_norm = -1;
    int64_t q_bias = -1, k_bias = -1, v_bias = -1, o_bias = -1;
    int64_t gate_bias = -1, up_bias = -1, down_bias = -1;
    DeviceMatmulWeight q, k, v, o, gate, up, down;
  };
  // Activations for up to `tokens` rows, of which `logit_rows` get logits.
  struct Workspace;

  LlamaModel(const ModelConfig& config, NamingScheme naming, Device* device);
  Status BindWeights();
  const Tensor* Find(TensorRole role, int layer) const;
  // The tensor's values widened to float, appended to aux_; their offset.
  Result<int64_t> AppendFloats(const Tensor& t, int64_t n);
  Status PlaceAux();
  DeviceRef Aux(int64_t offset) const { return aux_ref_ + static_cast<uint64_t>(offset) * 4; }
  Status EnsureWorkspace(int64_t tokens, int64_t logit_rows);
  Status CheckBatch(std::span<const BatchEntry> batch, const KvCache& cache) const;
  // The layers, the head and the logits' download; a decode step's ops
  // bracketed by the device's StepBegin/StepEnd.
  Status RunLayers(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens,
                   bool decode_step);
  // Every op of the forward pass, from the embedding to the head.
  Status RunOps(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens);
  Status Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t rows, DeviceRef y, int64_t bias);

  ModelConfig config_;
  NamingScheme naming_;
  kernels::RopePairing pairing_;
  // Exactly one of these holds the weights.
  LoadedWeights host_weights_;
  DeviceWeights device_weights_;
  std::vector<Tensor> tensors_;
  std::unique_ptr<MemoryLedger> own_ledger_;
  std::unique_ptr<Device> own_device_;  // the CPU device of a host model
  Device* device_;

  const Tensor* token_embd_ = nullptr;
  kernels::WeightType embd_type_ = kernels::WeightType::kF32;
  DeviceMatmulWeight output_;
  // Per tensor, the matmul that reads it (in layers_ or output_), or null.
  std::vector<DeviceMatmulWeight*> matmul_of_;
  int64_t output_norm_ = -1;
  int64_t inv_freq_ = -1;
  std::vector<Layer> layers_;
  // The float vectors, each padded to 16 floats; on the device in
  // aux_buffer_ unless the device reads host memory.
  std::vector<float> aux_;
  DeviceBuffer aux_buffer_;
  DeviceRef aux_ref_;

  std::unique_ptr<Workspace> ws_;
  std::vector<int64_t> logit_first_row_;  // per entry of the last batch, then the total
  std::vector<float> host_logits_;        // downloaded, unless the device is host memory
  const float* logits_ = nullptr;
};

}  // namespace relayout
