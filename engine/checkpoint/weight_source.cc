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

}  // namespace relayout
