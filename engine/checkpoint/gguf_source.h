// GgufSource: the tensors and metadata of one GGUF file (versions 2 and 3).
//
// Open parses the whole header (metadata, tensor infos) through a buffered
// cursor and validates it against the file before returning: every count and
// length against the bytes left, tensor types, shapes, alignment, and that
// every tensor's bytes lie inside the file without overlapping another's. The
// byte layout and the full list of rules are in docs/formats/gguf.md.
//
// Every rejection is one line "PATH: what: why", naming the metadata key or
// tensor, e.g.
//   model.gguf: tensor "blk.0.attn_q.weight": offset 100 is not a multiple of the alignment 32
// Codes: DataLoss for a corrupt or truncated file; Unimplemented for a valid
// file this reader does not handle (GGUF v1, big-endian files, ggml types
// without a DType such as IQ2_XXS); ResourceExhausted when the metadata holds
// more values than kMaxMetadataValues; I/O errors as the Env reports them.
//
// Thread safety: immutable after Open; ReadTensor may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/base/status.h"
#include "engine/checkpoint/gguf_metadata.h"
#include "engine/checkpoint/weight_source.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/ggml_type.h"

namespace relayout {

class GgufSource final : public WeightSource {
 public:
  // Default of general.alignment.
  static constexpr uint64_t kDefaultAlignment = 32;
  // GGML_MAX_DIMS.
  static constexpr uint32_t kMaxDims = 4;
  // Arrays may hold arrays; deeper nesting than this is rejected.
  static constexpr int kMaxArrayNesting = 8;
  // Bounds the memory of the parsed metadata (each value costs ~100 bytes):
  // real vocabularies hold well under a million values.
  static constexpr uint64_t kMaxMetadataValues = 1ull << 24;

  // Opens and validates path. On success the source holds the file open;
  // on failure see the header comment for the codes. Never reads tensor bytes.
  static Result<std::unique_ptr<GgufSource>> Open(Env* env, const std::string& path);

  // 2 or 3.
  uint32_t version() const { return version_; }
  const GgufMetadata& metadata() const { return metadata_; }
  // general.alignment, or kDefaultAlignment when absent.
  uint64_t alignment() const { return alignment_; }
  // Absolute file offset of the data section (tensor offsets are relative
  // to it). For a file with no tensors it may equal or pass the file size.
  uint64_t data_offset() const { return data_offset_; }

  CheckpointFormat format() const override { return CheckpointFormat::kGguf; }
  const std::vector<std::string>& paths() const override { return paths_; }
  // In data-section order (by offset); file_index is always 0 and
  // file_offset is absolute.
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  // OutOfRange for a bad index; InvalidArgument when dst.size() != byte_size;
  // an I/O error prefixed with the tensor's name.
  Status ReadTensor(size_t index, std::span<std::byte> dst) const override;

 protected:
  Status ReadFileRange(uint32_t file_index, uint64_t offset, std::span<std::byte> dst,
                       std::string_view subject) const override;

 public:
 private:
  friend class GgufParser;
  GgufSource() = default;

  std::unique_ptr<RandomAccessFile> file_;
  std::vector<std::string> paths_;
  uint32_t version_ = 0;
  GgufMetadata metadata_;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
};

}  // namespace relayout
