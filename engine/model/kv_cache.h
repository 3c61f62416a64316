// KvCache: the paged key/value cache of a decoder's sequences.
//
// The pool is num_blocks blocks of block_size token slots, one buffer on the
// model's Device (category kKvCache in its ledger), allocated once and
// never grown. A block holds its slots'
// keys and values for every layer, so one block table per sequence serves all
// layers. Per layer the pool is two regions, keys then values, each
// [num_blocks, block_size, num_kv_heads * head_dim] floats: the shape
// kernels/cpu/attention/paged_attention.h reads.
//
// A sequence is an id, a committed length (positions whose K/V are written)
// and a block table (pool block of each block_size positions). Reserve grows
// the table before a forward pass writes new positions; running out of blocks
// is ResourceExhausted and changes nothing. Release gives every block back.
//
// Thread safety: not thread-safe. One owner (the model's caller, e.g. the
// serving scheduler) calls it between forward passes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"
#include "engine/device/device.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {

enum class KvDType : uint8_t {
  kF32,  // reference-grade: F32 checkpoints keep their logits within 1e-4 of float references
  kF16,  // half the bytes; what llama.cpp and vLLM store by default
};
std::string_view KvDTypeName(KvDType dtype);

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 16;  // tokens per block
  KvDType dtype = KvDType::kF32;

  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  uint64_t elem_bytes() const { return dtype == KvDType::kF16 ? 2 : 4; }
  // Bytes of one block: K and V of block_size tokens in every layer.
  uint64_t BlockBytes() const;
  // Bytes of the blocks that hold `tokens` tokens of one sequence.
  uint64_t BytesForTokens(int64_t tokens) const;
};

using SequenceId = int64_t;

class KvCache {
 public:
  // A pool of budget_bytes / shape.BlockBytes() blocks. InvalidArgument when
  // a dimension is not positive, block_size exceeds the attention kernel's
  // limit, or the budget holds no block; the device's ResourceExhausted
  // ("kv cache: ...") when the pool does not fit. The device must outlive
  // the cache.
  static Result<std::unique_ptr<KvCache>> Create(const KvCacheShape& shape, uint64_t budget_bytes,
                                                 Device* device);
  // The same in host memory counted in `ledger` (a CPU device of its own;
  // the ledger must outlive the cache).
  static Result<std::unique_ptr<KvCache>> Create(const KvCacheShape& shape, uint64_t budget_bytes,
                                                 MemoryLedger* ledger);
  ~KvCache();

  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // A new empty sequence; its id is never reused by this cache.
  SequenceId CreateSequence();
  bool Contains(SequenceId id) const { return sequences_.count(id) != 0; }

  // Makes room for positions [0, tokens) of the sequence. NotFound for an
  // unknown id; ResourceExhausted "kv cache: ..." (nothing changed) when the
  // free blocks do not suffice.
  Status Reserve(SequenceId id, int64_t tokens);
  // Records that positions [0, length) hold K/V, and frees blocks past
  // those that Reserve had taken beyond it (rewinding a sequence frees its
  // tail). NotFound for an unknown id; InvalidArgument when length is
  // negative or beyond the reserved blocks.
  Status SetLength(SequenceId id, int64_t length);
  // Frees the sequence's blocks; unknown ids are ignored.
  void Release(SequenceId id);

  // Committed length; 0 for an unknown id.
  int64_t length(SequenceId id) const;
  // The sequence's block table; empty for an unknown id. Valid until the
  // next Reserve, SetLength or Release of that sequence.
  std::span<const int32_t> block_table(SequenceId id) const;

  // Layer l's key and value pools, of shape().dtype elements, on the
  // cache's device. REQUIRES: 0 <= layer < num_layers.
  DeviceRef keys(int64_t layer) const {
    return pool_.ref(static_cast<uint64_t>(2 * layer * layer_bytes_));
  }
  DeviceRef values(int64_t layer) const {
    return pool_.ref(static_cast<uint64_t>((2 * layer + 1) * layer_bytes_));
  }

  const KvCacheShape& shape() const { return shape_; }
  int64_t block_size() const { return shape_.block_size; }
  int64_t total_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_sequences() const { return static_cast<int64_t>(sequences_.size()); }
  uint64_t pool_bytes() const { return pool_.size(); }

 private:
  struct Sequence {
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  KvCache(const KvCacheShape& shape, int64_t num_blocks, DeviceBuffer pool,
          std::unique_ptr<Device> own_device);
  int64_t BlocksFor(int64_t tokens) const {
    return (tokens + shape_.block_size - 1) / shape_.block_size;
  }

  KvCacheShape shape_;
  int64_t num_blocks_ = 0;
  int64_t layer_bytes_ = 0;             // bytes of one layer's K (or V) region
  std::unique_ptr<Device> own_device_;  // declared before pool_: freed after it
  DeviceBuffer pool_;
  std::vector<int32_t> free_;  // a stack of free block ids
  std::unordered_map<SequenceId, Sequence> sequences_;
  SequenceId next_id_ = 1;
};

}  // namespace relayout
