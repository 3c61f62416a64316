#include "engine/device/device_weight.h"

namespace relayout {

Result<kernels::WeightType> WeightTypeFor(const std::string& name, DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return kernels::WeightType::kF32;
    case DType::kF16:
      return kernels::WeightType::kF16;
    case DType::kBF16:
      return kernels::WeightType::kBF16;
    case DType::kQ8_0:
      return kernels::WeightType::kQ8_0;
    case DType::kQ4_0:
      return kernels::WeightType::kQ4_0;
    case DType::kQ4_1:
      return kernels::WeightType::kQ4_1;
    case DType::kQ5_0:
      return kernels::WeightType::kQ5_0;
    case DType::kQ5_1:
      return kernels::WeightType::kQ5_1;
    case DType::kIQ4_NL:
      return kernels::WeightType::kIQ4_NL;
    case DType::kQ2_K:
      return kernels::WeightType::kQ2_K;
    case DType::kQ3_K:
      return kernels::WeightType::kQ3_K;
    case DType::kQ4_K:
      return kernels::WeightType::kQ4_K;
    case DType::kQ5_K:
      return kernels::WeightType::kQ5_K;
    case DType::kQ6_K:
      return kernels::WeightType::kQ6_K;
    default:
      return Status::Unimplemented(
          name, StrCat("dtype ", DTypeName(dtype), " is not supported by the model's kernels"));
  }
}

Result<DeviceMatmulWeight> MatmulWeightFor(const std::string& name, DType dtype,
                                           const std::vector<int64_t>& shape, const Layout& layout,
                                           DeviceRef data) {
  if (shape.size() != 2) {
    return Status::Unimplemented(name,
                                 StrCat("a matmul weight must be 2-D, got ", ShapeToString(shape)));
  }
  DeviceMatmulWeight w;
  w.data = data;
  ASSIGN_OR_RETURN(w.type, WeightTypeFor(name, dtype));
  w.rows = shape[0];
  w.cols = shape[1];
  switch (layout.kind) {
    case LayoutKind::kRowMajor:
    case LayoutKind::kGgufBlocks:
    case LayoutKind::kWidenedF32:  // F32 row-major (the tensor's dtype is F32)
      w.layout = kernels::WeightLayout::kRowMajor;
      break;
    case LayoutKind::kRowGroupInterleave:
      w.layout = kernels::WeightLayout::kRowGroup;
      w.group_rows = static_cast<int32_t>(layout.group_rows);
      w.k_block = static_cast<int32_t>(layout.k_block);
      break;
    case LayoutKind::kQuantRowGroupInterleave:
      w.layout = kernels::WeightLayout::kQuantRowGroup;
      w.group_rows = static_cast<int32_t>(layout.group_rows);
      break;
    case LayoutKind::kBf16KPair:
      w.layout = kernels::WeightLayout::kBf16KPair;
      w.group_rows = static_cast<int32_t>(layout.group_rows);
      break;
    case LayoutKind::kTransposed:
      return Status::Unimplemented(
          name, "the transposed layout is not supported for inference (use auto or native)");
  }
  return w;
}

}  // namespace relayout
