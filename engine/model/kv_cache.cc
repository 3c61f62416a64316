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
  state_.resize(static_cast<size_t>(num_blocks));
  // Lowest ids on top of the stack, so a fresh cache hands out 0, 1, 2...
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

SequenceId KvCache::CreateSequence() {
  const SequenceId id = next_id_++;
  sequences_.emplace(id, Sequence{});
  return id;
}

Status KvCache::Reserve(SequenceId id, int64_t tokens) {
  ASSIGN_OR_RETURN(Sequence * seq, Find(id));
  std::vector<int32_t>& blocks = seq->blocks;
  const int64_t have = static_cast<int64_t>(blocks.size());
  const int64_t need = BlocksFor(tokens) - have;
  if (need <= 0) return Status::OK();
  if (need > free_blocks()) {
    return Status::ResourceExhausted(
        "kv cache", StrCat("sequence ", id, " needs ", need, " more blocks of ", shape_.block_size,
                           " tokens for ", tokens, " tokens, ", free_blocks(), " of ", num_blocks_,
                           " are free"));
  }
  for (int64_t i = 0; i < need; ++i) blocks.push_back(TakeBlock());
  return Status::OK();
}

Result<KvCache::Sequence*> KvCache::Find(SequenceId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return Status::NotFound("kv cache", StrCat("no sequence ", id));
  return &it->second;
}

int32_t KvCache::TakeBlock() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_.back();  // the least recently released
    lru_.pop_back();
    Unindex(b);
  }
  BlockState& st = state_[static_cast<size_t>(b)];
  st.refs = 1;
  st.serial = 0;
  return b;
}

void KvCache::Unindex(int32_t block) {
  BlockState& st = state_[static_cast<size_t>(block)];
  if (st.indexed) index_.erase(st.key);
  st.indexed = false;
  st.key.tokens.clear();
}

void KvCache::Unref(int32_t block) {
  BlockState& st = state_[static_cast<size_t>(block)];
  if (--st.refs > 0) return;
  if (st.indexed) {
    lru_.push_front(block);
    st.lru = lru_.begin();
  } else {
    st.serial = 0;
    free_.push_back(block);
  }
}

size_t KvCache::PrefixKeyHash::operator()(const PrefixKey& k) const {
  // FNV-1a over the parent's serial and the tokens; only a bucket choice
  // (keys compare in full).
  uint64_t h = 1469598103934665603ull ^ k.parent;
  for (int32_t t : k.tokens) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

std::vector<int32_t> KvCache::FindPrefix(std::span<const int32_t> tokens) const {
  std::vector<int32_t> found;
  if (!prefix_caching_ || tokens.empty()) return found;
  const int64_t bs = shape_.block_size;
  // Whole blocks before the last token.
  const int64_t blocks = (static_cast<int64_t>(tokens.size()) - 1) / bs;
  PrefixKey key;
  for (int64_t b = 0; b < blocks; ++b) {
    key.tokens.assign(tokens.begin() + b * bs, tokens.begin() + (b + 1) * bs);
    auto it = index_.find(key);
    if (it == index_.end()) break;
    found.push_back(it->second);
    key.parent = state_[static_cast<size_t>(it->second)].serial;
  }
  return found;
}

int64_t KvCache::MatchPrefix(std::span<const int32_t> tokens) const {
  return static_cast<int64_t>(FindPrefix(tokens).size()) * shape_.block_size;
}

Result<int64_t> KvCache::AttachPrefix(SequenceId id, std::span<const int32_t> tokens) {
  ASSIGN_OR_RETURN(Sequence * seq, Find(id));
  Sequence& s = *seq;
  if (s.length != 0 || !s.blocks.empty()) {
    return Status::FailedPrecondition(
        "kv cache", StrCat("sequence ", id, " is not empty: no prefix to attach"));
  }
  const std::vector<int32_t> found = FindPrefix(tokens);
  for (int32_t b : found) {
    BlockState& st = state_[static_cast<size_t>(b)];
    if (st.refs++ == 0) lru_.erase(st.lru);
    s.blocks.push_back(b);
  }
  const int64_t n = static_cast<int64_t>(found.size()) * shape_.block_size;
  s.tokens.assign(tokens.begin(), tokens.begin() + n);
  s.identified = static_cast<int64_t>(found.size());
  s.length = n;
  return n;
}

Status KvCache::BeginWrite(SequenceId id, int64_t start) {
  ASSIGN_OR_RETURN(Sequence * seq, Find(id));
  Sequence& s = *seq;
  const int64_t first = start / shape_.block_size;
  for (int64_t b = first; b < static_cast<int64_t>(s.blocks.size()); ++b) {
    if (state_[static_cast<size_t>(s.blocks[static_cast<size_t>(b)])].refs > 1) {
      return Status::FailedPrecondition("kv cache",
                                        StrCat("sequence ", id, " would write position ", start,
                                               " into a block it shares with another sequence"));
    }
  }
  for (int64_t b = first; b < static_cast<int64_t>(s.blocks.size()); ++b) {
    const int32_t block = s.blocks[static_cast<size_t>(b)];
    Unindex(block);
    state_[static_cast<size_t>(block)].serial = 0;
  }
  s.identified = std::min(s.identified, first);
  if (static_cast<int64_t>(s.tokens.size()) > start) s.tokens.resize(static_cast<size_t>(start));
  return Status::OK();
}

Status KvCache::Commit(SequenceId id, int64_t start, std::span<const int32_t> tokens) {
  const int64_t end = start + static_cast<int64_t>(tokens.size());
  RETURN_IF_ERROR(SetLength(id, end));
  if (!prefix_caching_) return Status::OK();
  Sequence& s = sequences_.at(id);
  // Token history only where it is contiguous from position 0.
  if (static_cast<int64_t>(s.tokens.size()) >= start) {
    s.tokens.resize(static_cast<size_t>(start));
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    IdentifyBlocks(s);
  }
  return Status::OK();
}

void KvCache::IdentifyBlocks(Sequence& s) {
  const int64_t bs = shape_.block_size;
  const int64_t known = std::min<int64_t>(s.length, static_cast<int64_t>(s.tokens.size()));
  while ((s.identified + 1) * bs <= known) {
    const int64_t b = s.identified;
    const int32_t block = s.blocks[static_cast<size_t>(b)];
    BlockState& st = state_[static_cast<size_t>(block)];
    PrefixKey key;
    key.parent =
        b == 0 ? 0 : state_[static_cast<size_t>(s.blocks[static_cast<size_t>(b - 1)])].serial;
    key.tokens.assign(s.tokens.begin() + b * bs, s.tokens.begin() + (b + 1) * bs);
    auto it = index_.find(key);
    if (it != index_.end()) {
      // Another block holds this prefix already (two equal prompts in one
      // batch): share its identity, so the blocks after it chain on.
      st.serial = state_[static_cast<size_t>(it->second)].serial;
    } else {
      st.serial = next_serial_++;
      st.key = key;
      st.indexed = true;
      index_.emplace(std::move(key), block);
    }
    ++s.identified;
  }
}

Status KvCache::SetLength(SequenceId id, int64_t length) {
  ASSIGN_OR_RETURN(Sequence * seq, Find(id));
  Sequence& s = *seq;
  const int64_t keep = BlocksFor(length);
  if (length < 0 || keep > static_cast<int64_t>(s.blocks.size())) {
    return Status::InvalidArgument(
        "kv cache", StrCat("length ", length, " of sequence ", id, " is outside its ",
                           s.blocks.size(), " reserved blocks"));
  }
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    Unref(s.blocks.back());
    s.blocks.pop_back();
  }
  s.identified = std::min(s.identified, static_cast<int64_t>(s.blocks.size()));
  s.length = length;
  return Status::OK();
}

void KvCache::Release(SequenceId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  // Last block first, so a prefix's later blocks are evicted before its
  // earlier ones (which other prompts are likelier to share).
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) Unref(*b);
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
