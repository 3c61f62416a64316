// WeightSource: the tensors of a checkpoint, listed from its header alone,
// read one at a time into buffers the caller owns.
//
// Opening a source parses and validates the whole header (every tensor's
// dtype, shape and byte range against the file) before any tensor byte is
// read; a source that opened successfully never reads outside its files.
// Shapes are outermost dimension first, as in safetensors and numpy: a weight
// is [out, in]. (GGUF stores dims innermost first; its reader reverses them.)
//
// Thread safety: after construction a WeightSource is immutable; ReadTensor may
// be called concurrently from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/tensor/dtype.h"

namespace relayout {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first
  uint64_t byte_size = 0;      // == ByteSizeOf(dtype, shape)
  // Where the bytes are: which of the source's files and the absolute offset.
  uint32_t file_index = 0;
  uint64_t file_offset = 0;
};

enum class CheckpointFormat { kSafetensors, kGguf };
std::string_view CheckpointFormatName(CheckpointFormat format);

class WeightSource {
 public:
  WeightSource() = default;
  WeightSource(const WeightSource&) = delete;
  WeightSource& operator=(const WeightSource&) = delete;
  virtual ~WeightSource() = default;

  virtual CheckpointFormat format() const = 0;
  // The files this source reads (one, or the shards of a sharded checkpoint).
  virtual const std::vector<std::string>& paths() const = 0;
  // All tensors, in file order (shard by shard, by offset).
  virtual const std::vector<TensorInfo>& tensors() const = 0;

  // Reads tensor `index`'s bytes into dst, which must be exactly byte_size
  // long (InvalidArgument otherwise). Reads straight into dst with large
  // pread calls. On an I/O error returns it, naming the file and tensor.
  virtual Status ReadTensor(size_t index, std::span<std::byte> dst) const = 0;
  // Reads dst.size() bytes of tensor `index` from `offset` within it, for a
  // tensor streamed through a bounded buffer. InvalidArgument when the range
  // is outside the tensor; I/O errors as ReadTensor.
  Status ReadTensorRange(size_t index, uint64_t offset, std::span<std::byte> dst) const;

 protected:
  // Reads from an absolute offset of file `file_index`; errors name `subject`.
  virtual Status ReadFileRange(uint32_t file_index, uint64_t offset, std::span<std::byte> dst,
                               std::string_view subject) const = 0;

 public:
  // The tensor with this name, or nullptr.
  const TensorInfo* Find(std::string_view name) const;
  // Sum of all tensors' byte sizes.
  uint64_t TotalBytes() const;
};

}  // namespace relayout
