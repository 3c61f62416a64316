#include "engine/checkpoint/weight_source.h"

namespace relayout {

std::string_view CheckpointFormatName(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kSafetensors:
      return "safetensors";
    case CheckpointFormat::kGguf:
      return "gguf";
  }
  return "unknown";
}

const TensorInfo* WeightSource::Find(std::string_view name) const {
  for (const TensorInfo& t : tensors()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

uint64_t WeightSource::TotalBytes() const {
  uint64_t total = 0;
  for (const TensorInfo& t : tensors()) total += t.byte_size;
  return total;
}

Status WeightSource::ReadTensorRange(size_t index, uint64_t offset,
                                     std::span<std::byte> dst) const {
  const std::vector<TensorInfo>& all = tensors();
  if (index >= all.size()) {
    return Status::InvalidArgument(
        "ReadTensorRange", StrCat("tensor index ", index, " out of range (", all.size(), ")"));
  }
  const TensorInfo& t = all[index];
  const std::string subject = StrCat("tensor \"", t.name, "\"");
  if (offset > t.byte_size || dst.size() > t.byte_size - offset) {
    return Status::InvalidArgument(subject, StrCat("bytes [", offset, ", ", offset + dst.size(),
                                                   ") outside its ", t.byte_size));
  }
  return ReadFileRange(t.file_index, t.file_offset + offset, dst, subject);
}

}  // namespace relayout
