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
// Prefix caching (EnablePrefixCaching; what vLLM calls automatic prefix
// caching and llama-server's slots do for one client): a full block whose
// tokens are known (Commit) is indexed under (the identity of everything
// before it, its own tokens), so the identity of a block is its whole token
// prefix, exactly: no hash stands for the tokens, so no collision can hand a
// sequence another prefix's K/V. A new sequence whose prompt starts with
// indexed blocks shares them (AttachPrefix) instead of computing them again.
// Blocks are reference counted; a shared block is never written
// (BeginWrite refuses), and one about to be rewritten by its only owner
// leaves the index first. When its last sequence releases an indexed
// block, it stays cached, counted as free, and is evicted least recently
// released first when a Reserve needs room.
//
// Thread safety: not thread-safe. One owner (the model's caller, e.g. the
// serving scheduler) calls it between forward passes.
#pragma once

#include <cstdint>
#include <list>
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

  // ---- Prefix caching (see the top of this file); off by default.
  void EnablePrefixCaching(bool on) { prefix_caching_ = on; }
  bool prefix_caching() const { return prefix_caching_; }
  // Leading tokens of `tokens` whose K/V are cached: whole blocks, never
  // the last token (its logits must be computed). 0 with caching off.
  int64_t MatchPrefix(std::span<const int32_t> tokens) const;
  // Attaches MatchPrefix's blocks to an empty sequence, whose length becomes
  // that many tokens; returns it. NotFound for an unknown id;
  // FailedPrecondition when the sequence is not empty.
  Result<int64_t> AttachPrefix(SequenceId id, std::span<const int32_t> tokens);
  // Before a forward pass writes positions from `start` on: FailedPrecondition
  // (nothing changed) when the block holding `start` is shared with another
  // sequence; else the sequence's indexed blocks from that one on leave the
  // index, since their contents are about to change. NotFound for an
  // unknown id.
  Status BeginWrite(SequenceId id, int64_t start);
  // After the pass: positions [start, start + tokens.size()) hold the K/V of
  // `tokens`. Sets the length (as SetLength), and with caching on indexes
  // the blocks this fills. Errors as SetLength.
  Status Commit(SequenceId id, int64_t start, std::span<const int32_t> tokens);
  // Blocks held by no sequence but kept for their prefix (counted in
  // free_blocks()).
  int64_t cached_blocks() const { return static_cast<int64_t>(lru_.size()); }

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
  // Blocks a Reserve may take: never used, or cached and evictable.
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  int64_t num_sequences() const { return static_cast<int64_t>(sequences_.size()); }
  uint64_t pool_bytes() const { return pool_.size(); }

 private:
  struct Sequence {
    int64_t length = 0;
    std::vector<int32_t> blocks;
    // Prefix caching: the tokens of positions [0, tokens.size()) where
    // known, and how many leading blocks carry an identity (indexed, or
    // equal to an indexed one).
    std::vector<int32_t> tokens;
    int64_t identified = 0;
  };
  // An index key: the identity of the prefix before a block, and its tokens.
  struct PrefixKey {
    uint64_t parent = 0;
    std::vector<int32_t> tokens;
    bool operator==(const PrefixKey& o) const { return parent == o.parent && tokens == o.tokens; }
  };
  struct PrefixKeyHash {
    size_t operator()(const PrefixKey& k) const;
  };
  struct BlockState {
    int32_t refs = 0;
    // The identity of the token prefix this block ends (0: none). Serials
    // are never reused, so equal serials mean equal prefixes.
    uint64_t serial = 0;
    bool indexed = false;  // index_ maps `key` to this block
    PrefixKey key;
    std::list<int32_t>::iterator lru;  // valid while refs == 0 and indexed
  };
  KvCache(const KvCacheShape& shape, int64_t num_blocks, DeviceBuffer pool,
          std::unique_ptr<Device> own_device);
  int64_t BlocksFor(int64_t tokens) const {
    return (tokens + shape_.block_size - 1) / shape_.block_size;
  }
  // The sequence, or NotFound naming the id.
  Result<Sequence*> Find(SequenceId id);
  // A block for a sequence: a never-used one, else the least recently
  // released cached one (dropped from the index). REQUIRES: free_blocks() > 0.
  int32_t TakeBlock();
  // One reference fewer; at none the block is cached if indexed, else freed.
  void Unref(int32_t block);
  void Unindex(int32_t block);
  // Indexes the sequence's full blocks whose tokens are known.
  void IdentifyBlocks(Sequence& s);
  // Walks the index along `tokens`: the blocks of the cached prefix.
  std::vector<int32_t> FindPrefix(std::span<const int32_t> tokens) const;

  KvCacheShape shape_;
  int64_t num_blocks_ = 0;
  int64_t layer_bytes_ = 0;             // bytes of one layer's K (or V) region
  std::unique_ptr<Device> own_device_;  // declared before pool_: freed after it
  DeviceBuffer pool_;
  std::vector<int32_t> free_;  // a stack of free block ids
  std::vector<BlockState> state_;
  std::list<int32_t> lru_;  // cached blocks, most recently released first
  std::unordered_map<PrefixKey, int32_t, PrefixKeyHash> index_;
  uint64_t next_serial_ = 1;
  bool prefix_caching_ = false;
  std::unordered_map<SequenceId, Sequence> sequences_;
  SequenceId next_id_ = 1;
};

}  // namespace relayout
