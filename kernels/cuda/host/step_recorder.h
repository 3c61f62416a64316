// The bookkeeping of the CUDA plugin's step graphs (kernels/device_abi.h,
// step_begin / step_end), as plain C++ so that it is tested without a GPU.
//
// Between step_begin and step_end the plugin does not launch an op: it
// validates the op's arguments, writes the op's per-call metadata (token ids,
// positions, spans and block tables) into the step's MetadataArena, adds the
// op's shape to the step's StepSignature, and keeps a closure that issues
// the op's kernels later, reading its metadata at a fixed offset from
// wherever the arena's bytes then live on the device. At step_end the
// signature picks a cached CUDA graph (GraphCache) or a new capture.
//
// Why the signature is what it is: a captured graph freezes every kernel's
// grid and arguments, so two steps may share one only if every value that a
// launch depends on is equal: the ops in order, their operand addresses and
// sizes, and the bounds derived from metadata that size grids (attention's
// context bucket, the block table stride). The metadata's values (which
// token, which position, which block) are not in it: they travel through the
// arena, whose layout (every op's offset and size) the signature fixes
// because the offsets follow from the sizes alone.
//
// The signature is kept whole (a vector of words), not only hashed: a hash
// collision would replay another step's graph on this step's operands.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace relayout::cuda {

// The words that make up a step's shape, and their hash.
class StepSignature {
 public:
  void Add(uint64_t word) {
    words_.push_back(word);
    // FNV-1a over the word's 8 bytes, folded per word (cheap, and the key
    // is compared whole anyway).
    hash_ = (hash_ ^ word) * 0x100000001b3ull;
    hash_ ^= hash_ >> 29;
  }
  void AddSigned(int64_t v) { Add(static_cast<uint64_t>(v)); }
  void AddPointer(const void* p) { Add(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p))); }
  void AddFloat(float f);
  void Clear() {
    words_.clear();
    hash_ = kSeed;
  }

  uint64_t hash() const { return hash_; }
  const std::vector<uint64_t>& words() const { return words_; }
  bool operator==(const StepSignature& o) const { return hash_ == o.hash_ && words_ == o.words_; }

 private:
  static constexpr uint64_t kSeed = 0xcbf29ce484222325ull;
  std::vector<uint64_t> words_;
  uint64_t hash_ = kSeed;
};

struct StepSignatureHash {
  size_t operator()(const StepSignature& s) const { return static_cast<size_t>(s.hash()); }
};

// Per-call metadata laid out back to back, each array aligned, in host
// memory; the plugin copies the bytes to the device as one block. Offsets
// depend only on the sequence of (bytes, align) asked, so two steps of one
// signature lay their metadata out identically.
class MetadataArena {
 public:
  static constexpr uint64_t kAlign = 16;

  // Room for `bytes` at an offset aligned to `align` (a power of two, at
  // most 256); returns the offset. The bytes are zeroed.
  uint64_t Reserve(uint64_t bytes, uint64_t align = kAlign);
  // Reserve and copy.
  uint64_t Append(const void* data, uint64_t bytes, uint64_t align = kAlign);
  // Append, unless an array of the same `tag` with the same bytes was
  // appended since the last Clear: then its offset. Every layer of a decode
  // step passes the same positions and spans (block tables are most of a
  // step's metadata: B sequences x the context bucket's blocks), so a step
  // holds one copy of each, not one per layer. The plugin puts the offsets
  // it gets in the op's signature words, so a step whose arrays happen to
  // coincide differently is another shape, never a wrong layout.
  uint64_t AppendShared(uint32_t tag, const void* data, uint64_t bytes, uint64_t align = kAlign);
  unsigned char* at(uint64_t offset) { return bytes_.data() + offset; }
  const unsigned char* data() const { return bytes_.data(); }
  uint64_t size() const { return bytes_.size(); }
  void Clear() {
    bytes_.clear();
    shared_.clear();
  }

 private:
  struct Shared {
    uint32_t tag;
    uint64_t offset;
    uint64_t bytes;
  };
  std::vector<unsigned char> bytes_;
  std::vector<Shared> shared_;  // few per step: a linear scan
};

// The plugin's internal device workspaces, by purpose. Each op says how many
// bytes of each it needs; the plugin grows them before issuing (never during
// a capture).
enum class Workspace : int {
  kQuantActivations = 0,  // QuantMatmul's quantized x
  kAttention,             // attention's split-K partials
  kDequant,               // a chunk of a weight dequantized to BF16
  kActivationBf16,        // x as BF16 (or its hi/lo pair) for cuBLASLt
  kArgmax,                // argmax's int32 results
  kCount,
};
inline constexpr int kWorkspaceCount = static_cast<int>(Workspace::kCount);
using WorkspaceNeeds = std::array<uint64_t, kWorkspaceCount>;

// The element-wise maximum, into *into.
void MergeNeeds(const WorkspaceNeeds& need, WorkspaceNeeds* into);

// One deferred op: issues its kernels on the device's stream given the
// device address of the step's metadata block; returns an rl_status.
using IssueFn = std::function<int32_t(const unsigned char* device_metadata)>;

struct RecordedStep {
  StepSignature signature;
  std::vector<IssueFn> ops;
  WorkspaceNeeds needs{};
  // An op of the step failed its checks (and was not recorded): the step
  // runs what it has but is not captured (its shape is not a real step's).
  bool incomplete = false;
};

// The step being recorded. One thread (the device's user) at a time.
class StepRecorder {
 public:
  bool active() const { return active_; }
  // Starts a step; false when one is active.
  bool Begin();
  // The arena an op writes its metadata into while active.
  MetadataArena& metadata() { return metadata_; }
  // Adds an op: its shape words (appended to the signature after the op's
  // kind), its workspace needs and its issue closure.
  void Record(uint32_t kind, const StepSignature& shape, const WorkspaceNeeds& needs,
              IssueFn issue);
  // An op failed inside the step.
  void MarkIncomplete() { step_.incomplete = true; }
  // Ends the step: its ops, signature and needs (the metadata stays in
  // metadata() until the next Begin). The signature ends with the
  // metadata's size. false when no step is active.
  bool End(RecordedStep* out);
  // Leaves a step without running it (close_device inside a step).
  void Abandon();

 private:
  bool active_ = false;
  RecordedStep step_;
  MetadataArena metadata_;
};

// Instantiated graphs by signature, the least recently used evicted past
// `capacity` (each one holds device memory for its nodes). `destroy` runs on
// every value that leaves the cache (eviction, Clear, destruction).
template <class T>
class GraphCache {
 public:
  GraphCache(size_t capacity, std::function<void(T&)> destroy)
      : capacity_(capacity < 1 ? 1 : capacity), destroy_(std::move(destroy)) {}
  ~GraphCache() { Clear(); }
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // The value for `key`, now the most recently used; null when absent.
  T* Find(const StepSignature& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }
  // Inserts (or replaces) the value for `key`, evicting the least recently
  // used past the capacity. Returns the value's place in the cache.
  T* Insert(const StepSignature& key, T value) {
    if (const auto it = index_.find(key); it != index_.end()) {
      destroy_(it->second->second);
      it->second->second = std::move(value);
      order_.splice(order_.begin(), order_, it->second);
      return &it->second->second;
    }
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
    while (order_.size() > capacity_) {
      auto last = std::prev(order_.end());
      destroy_(last->second);
      index_.erase(last->first);
      order_.erase(last);
      ++evictions_;
    }
    return &order_.front().second;
  }
  void Clear() {
    for (auto& [key, value] : order_) destroy_(value);
    order_.clear();
    index_.clear();
  }
  size_t size() const { return order_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  using Entry = std::pair<StepSignature, T>;
  size_t capacity_;
  std::function<void(T&)> destroy_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<StepSignature, typename std::list<Entry>::iterator, StepSignatureHash> index_;
  uint64_t evictions_ = 0;
};

// The bucket a step's longest context is rounded up to before it sizes an
// attention grid: a power of two of at least 256 positions, so a decode
// stream changes graphs only when its context doubles (hostref's bucket).
int64_t ContextBucket(int64_t longest_context);

// Whether the environment asks for graphs: RELAYOUT_CUDA_GRAPHS unset or
// anything but "0" / "off" / "false".
bool GraphsEnabledByEnv(const char* value);

}  // namespace relayout::cuda
