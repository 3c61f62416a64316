#include "server/observe/model_description.h"

#include <map>
#include <tuple>

#include "engine/tensor/tensor_role.h"

namespace relayout::server {

ModelDescription DescribeModel(const PreparedLoad& prepared) {
  // Serving while converting: the layouts the weights are moving to.
  struct {
    const Checkpoint& checkpoint;
    const ConversionPlan& plan;
  } load{prepared.checkpoint, prepared.target_plan ? *prepared.target_plan : prepared.plan};
  ModelDescription d;
  d.format = std::string(CheckpointFormatName(load.checkpoint.source->format()));
  d.config = load.checkpoint.config;
  d.device = load.plan.device;
  d.layout_mode = load.plan.layout_mode;
  std::vector<TensorLayoutEntry> entries(load.plan.tensors.size());
  for (size_t i = 0; i < load.plan.tensors.size(); ++i) {
    const TensorConversion& t = load.plan.tensors[i];
    entries[i] = {t.ref.role, t.dtype, t.to, 0};
  }
  for (const PlanStep& step : load.plan.plan.steps) {
    if (step.tensor_index < entries.size()) entries[step.tensor_index].bytes = step.final_bytes;
  }
  for (const TensorLayoutEntry& e : entries) d.bytes_total += e.bytes;
  d.tensor_classes = SummarizeTensorClasses(entries);
  d.tensors_total = static_cast<uint32_t>(load.plan.tensors.size());
  d.layout_tuning = prepared.tuning;
  return d;
}

std::vector<TensorClassSummary> SummarizeTensorClasses(std::span<const TensorLayoutEntry> tensors) {
  std::map<std::tuple<int, std::string, std::string>, TensorClassSummary> classes;
  for (const TensorLayoutEntry& t : tensors) {
    const std::string dtype(DTypeName(t.dtype));
    const std::string layout = t.layout.IsCommon() ? "native" : t.layout.Name();
    TensorClassSummary& c = classes[{static_cast<int>(t.role), dtype, layout}];
    c.role = std::string(TensorRoleName(t.role));
    c.dtype = dtype;
    c.layout = layout;
    c.tensor_count += 1;
    c.bytes += t.bytes;
  }
  std::vector<TensorClassSummary> out;
  for (auto& [key, c] : classes) out.push_back(std::move(c));
  return out;
}

}  // namespace relayout::server
