// ModelDescription: what GetModelInfo tells about the served model once the
// checkpoint is open and its conversion planned: format, config, device and
// the layout chosen per class of tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint/model_config.h"
#include "engine/conversion/model_loader.h"

namespace relayout::server {

// Tensors sharing a role, a dtype and a target layout.
struct TensorClassSummary {
  std::string role;
  std::string dtype;
  std::string layout;  // "native" when kept as stored
  uint32_t tensor_count = 0;
  uint64_t bytes = 0;  // in the target layout
};

struct ModelDescription {
  std::string format;  // CheckpointFormatName
  ModelConfig config;
  std::string device;
  std::string layout_mode;
  std::vector<TensorClassSummary> tensor_classes;  // in role, dtype, layout order
  uint32_t tensors_total = 0;
  uint64_t bytes_total = 0;  // weights in their target layouts
  // With --layout tuned: what was measured and chosen.
  std::optional<LayoutTuningReport> layout_tuning;
};

ModelDescription DescribeModel(const PreparedLoad& load);

// One tensor as the class summary counts it.
struct TensorLayoutEntry {
  TensorRole role = TensorRole::kOther;
  DType dtype = DType::kF32;
  Layout layout;
  uint64_t bytes = 0;
};
// The (role, dtype, layout) classes of these tensors, in that order.
std::vector<TensorClassSummary> SummarizeTensorClasses(std::span<const TensorLayoutEntry> tensors);

}  // namespace relayout::server
