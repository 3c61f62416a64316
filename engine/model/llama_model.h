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
// Thread safety: Forward is not reentrant (it reuses activation buffers and
// the thread pool); one caller at a time, e.g. the serving scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/base/status.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/model_spec.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/memory/host_buffer.h"
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

  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;
  ~LlamaModel();

  // Positions are int32 in the kernels.
  static constexpr int64_t kMaxPositions = int64_t{1} << 30;

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
  // when its blocks run out. Internal if a kernel refuses its arguments (a
  // bug); lengths are then unchanged but K/V slots of a rewound sequence may
  // have been overwritten.
  Status Forward(std::span<const BatchEntry> batch, KvCache* cache);

  // After a successful Forward: entry i's logits, rows * vocab_size floats
  // (one row, or tokens.size() rows with all_logits). Valid until the next
  // Forward. REQUIRES: i < the last batch's size.
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

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    kernels::MatmulWeight q, k, v, o, gate, up, down;
    std::vector<float> q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;
  };
  // Activations for up to `tokens` rows, of which `logit_rows` get logits.
  struct Workspace;

  LlamaModel(const ModelConfig& config, NamingScheme naming, LoadedWeights weights,
             kernels::ThreadPool* pool, MemoryLedger* ledger);
  Status BindWeights();
  Status EnsureWorkspace(int64_t tokens, int64_t logit_rows);
  Status CheckBatch(std::span<const BatchEntry> batch, const KvCache& cache) const;
  Status RunLayers(std::span<const BatchEntry> batch, KvCache* cache, int64_t tokens);
  Status Matmul(const kernels::MatmulWeight& w, const float* x, int64_t rows, float* y,
                const std::vector<float>& bias);

  ModelConfig config_;
  NamingScheme naming_;
  kernels::RopePairing pairing_;
  LoadedWeights weights_;
  kernels::ThreadPool* pool_;
  std::unique_ptr<MemoryLedger> own_ledger_;
  MemoryLedger* ledger_;

  const LoadedTensor* token_embd_ = nullptr;
  kernels::WeightType embd_type_ = kernels::WeightType::kF32;
  kernels::MatmulWeight output_;
  std::vector<float> output_norm_;
  std::vector<float> inv_freq_;
  std::vector<Layer> layers_;

  std::unique_ptr<Workspace> ws_;
  std::vector<int64_t> logit_first_row_;  // per entry of the last batch, then the total
};

}  // namespace relayout
