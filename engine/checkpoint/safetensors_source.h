// SafetensorsSource: a WeightSource over one safetensors file or the shards
// of a sharded checkpoint (model.safetensors.index.json).
//
// Opening reads and validates the whole header of every file (every tensor's
// name, dtype, shape and byte range against the file size; see
// docs/formats/safetensors.md for the rules) before any tensor byte is read.
// Each rejection is one line naming the file, the tensor or key, and what is
// wrong, e.g.
//   model.safetensors: tensor "model.norm.weight": data_offsets [10, 20] hold
//   10 bytes, but F32 [4] needs 16
//
// Thread safety: immutable after Open; ReadTensor may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/checkpoint/weight_source.h"

namespace relayout {

class SafetensorsSource final : public WeightSource {
 public:
  // Headers (and index files) larger than this are rejected before anything
  // is allocated for them.
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  // Opens one .safetensors file through env (not owned; must outlive the
  // source). On success every tensor has been validated. Errors: NotFound
  // (or the Env's error) when the file cannot be opened; DataLoss for a
  // corrupt or inconsistent file; Unimplemented for a safetensors dtype this
  // engine has no type for (e.g. F8_E4M3).
  static Result<std::unique_ptr<SafetensorsSource>> Open(Env* env, const std::string& path);

  // Opens a sharded checkpoint from its index ({"metadata": {...},
  // "weight_map": {tensor: shard file}}); shard names are relative to the
  // index's directory. Checks that each tensor of weight_map is in the shard
  // it names, that every shard tensor is listed, and that no tensor is in two
  // shards. Errors as Open, naming the index or the shard.
  static Result<std::unique_ptr<SafetensorsSource>> OpenSharded(Env* env,
                                                                const std::string& index_json_path);

  CheckpointFormat format() const override { return CheckpointFormat::kSafetensors; }
  // The file, or the shards sorted by name (TensorInfo::file_index indexes this).
  const std::vector<std::string>& paths() const override { return paths_; }
  // Shard by shard, by data offset.
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  // InvalidArgument for a bad index or a dst of the wrong size; otherwise the
  // file's read error, naming the file and the tensor.
  Status ReadTensor(size_t index, std::span<std::byte> dst) const override;

 protected:
  Status ReadFileRange(uint32_t file_index, uint64_t offset, std::span<std::byte> dst,
                       std::string_view subject) const override;

 public:
  // The "__metadata__" string map (for a sharded checkpoint: the union of the
  // shards' maps; shards that disagree on a key are rejected at open).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsSource() = default;

  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<RandomAccessFile>> files_;  // parallel to paths_
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace relayout
