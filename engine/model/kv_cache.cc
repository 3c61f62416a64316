#include "engine/model/kv_cache.h"

#include <limits>

#include "engine/device/cpu_device.h"
#include "kernels/cpu/attention/paged_attention.h"

namespace relayout {

std::string_view KvDTypeName(KvDType dtype) { return dtype == KvDType::kF16 ? "f16" : "f32"; }

uint64_t KvCacheShape::BlockBytes() const {
  return static_cast<uint64_t>(num_layers) * 2 * static_cast<uint64_t>(block_size) *
         static_cast<uint64_t>(kv_dim()) * elem_bytes();
}

uint64_t KvCacheShape::BytesForTokens(int64_t tokens) const {
  if (tokens <= 0 || block_size <= 0) return 0;
  return static_cast<uint64_t>((tokens + block_size - 1) / block_size) * BlockBytes();
}

Result<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheShape& shape, uint64_t budget_bytes,
                                                 MemoryLedger* ledger) {
  auto device = std::make_unique<CpuDevice>(ledger, nullptr);
  Device* d = device.get();
  ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, Create(shape, budget_bytes, d));
  cache->own_device_ = std::move(device);
  return cache;
}

Result<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheShape& shape, uint64_t budget_bytes,
                                                 Device* device) {
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 ||
      shape.block_size <= 0) {
    return Status::InvalidArgument("kv cache",
                                   "layers, kv heads, head dim and block size must be positive");
  }
  if (shape.block_size > kernels::kMaxAttentionBlockSize) {
    return Status::InvalidArgument("kv cache", StrCat("block size ", shape.block_size,
                                                      " is above the attention kernel's limit of ",
                                                      kernels::kMaxAttentionBlockSize));
  }
  const uint64_t block_bytes = shape.BlockBytes();
  // Block ids are int32 in the tables.
  const uint64_t num_blocks =
      std::min<uint64_t>(budget_bytes / block_bytes, std::numeric_limits<int32_t>::max());
  if (num_blocks == 0) {
    return Status::InvalidArgument(
        "kv cache", StrCat("budget of ", budget_bytes, " bytes holds no block of ", block_bytes,
                           " bytes (", shape.block_size, " tokens)"));
  }
  ASSIGN_OR_RETURN(DeviceBuffer pool, device->Allocate(num_blocks * block_bytes,
                                                       MemoryCategory::kKvCache, "kv cache"));
  return std::unique_ptr<KvCache>(
      new KvCache(shape, static_cast<int64_t>(num_blocks), std::move(pool), nullptr));
}

KvCache::~KvCache() = default;

KvCache::KvCache(const KvCacheShape& shape, int64_t num_blocks, DeviceBuffer pool,
                 std::unique_ptr<Device> own_device)
    : shape_(shape),
      num_blocks_(num_blocks),
      layer_bytes_(num_blocks * shape.block_size * shape.kv_dim() *
                   static_cast<int64_t>(shape.elem_bytes())),
      own_device_(std::move(own_device)),
      pool_(std::move(pool)) {
  free_.reserve(static_cast<size_t>(num_blocks));
  // Lowest ids on top of the stack, so a fresh cache hands out 0, 1, 2...
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

SequenceId KvCache::CreateSequence() {
  const SequenceId id = next_id_++;
  sequences_.emplace(id, Sequence{});
  return id;
}

Status KvCache::Reserve(SequenceId id, int64_t tokens) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return Status::NotFound("kv cache", StrCat("no sequence ", id));
  std::vector<int32_t>& blocks = it->second.blocks;
  const int64_t have = static_cast<int64_t>(blocks.size());
  const int64_t need = BlocksFor(tokens) - have;
  if (need <= 0) return Status::OK();
  if (need > free_blocks()) {
    return Status::ResourceExhausted(
        "kv cache", StrCat("sequence ", id, " needs ", need, " more blocks of ", shape_.block_size,
                           " tokens for ", tokens, " tokens, ", free_blocks(), " of ", num_blocks_,
                           " are free"));
  }
  for (int64_t i = 0; i < need; ++i) {
    blocks.push_back(free_.back());
    free_.pop_back();
  }
  return Status::OK();
}

Status KvCache::SetLength(SequenceId id, int64_t length) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return Status::NotFound("kv cache", StrCat("no sequence ", id));
  Sequence& s = it->second;
  const int64_t keep = BlocksFor(length);
  if (length < 0 || keep > static_cast<int64_t>(s.blocks.size())) {
    return Status::InvalidArgument(
        "kv cache", StrCat("length ", length, " of sequence ", id, " is outside its ",
                           s.blocks.size(), " reserved blocks"));
  }
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    free_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = length;
  return Status::OK();
}

void KvCache::Release(SequenceId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) free_.push_back(*b);
  sequences_.erase(it);
}

int64_t KvCache::length(SequenceId id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end() ? 0 : it->second.length;
}

std::span<const int32_t> KvCache::block_table(SequenceId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return {};
  return it->second.blocks;
}

}  // namespace relayout
