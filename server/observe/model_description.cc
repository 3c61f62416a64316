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
  std::vector<uint64_t> bytes(load.plan.tensors.size(), 0);
  for (const PlanStep& step : load.plan.plan.steps) {
    if (step.tensor_index < bytes.size()) bytes[step.tensor_index] = step.final_bytes;
  }
  std::map<std::tuple<int, std::string, std::string>, TensorClassSummary> classes;
  for (size_t i = 0; i < load.plan.tensors.size(); ++i) {
    const TensorConversion& t = load.plan.tensors[i];
    const std::string dtype(DTypeName(t.dtype));
    const std::string layout = t.to.IsCommon() ? "native" : t.to.Name();
    TensorClassSummary& c = classes[{static_cast<int>(t.ref.role), dtype, layout}];
    c.role = std::string(TensorRoleName(t.ref.role));
    c.dtype = dtype;
    c.layout = layout;
    c.tensor_count += 1;
    c.bytes += bytes[i];
    d.bytes_total += bytes[i];
  }
  for (auto& [key, c] : classes) d.tensor_classes.push_back(std::move(c));
  d.tensors_total = static_cast<uint32_t>(load.plan.tensors.size());
  d.layout_tuning = prepared.tuning;
  return d;
}

}  // namespace relayout::server
