#include "kernels/cpu/ops/embedding.h"

#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels {
namespace {

reference::DequantizeRowFn RowFn(WeightType type) {
  switch (type) {
    case WeightType::kF32:
      return &reference::DequantizeRowF32;
    case WeightType::kF16:
      return &reference::DequantizeRowF16;
    case WeightType::kBF16:
      return &reference::DequantizeRowBF16;
    case WeightType::kQ8_0:
      return &reference::DequantizeRowQ8_0;
    case WeightType::kQ4_0:
      return &reference::DequantizeRowQ4_0;
    case WeightType::kQ4_1:
      return &reference::DequantizeRowQ4_1;
    case WeightType::kQ5_0:
      return &reference::DequantizeRowQ5_0;
    case WeightType::kQ5_1:
      return &reference::DequantizeRowQ5_1;
    case WeightType::kIQ4_NL:
      return &reference::DequantizeRowIQ4_NL;
    case WeightType::kQ2_K:
      return &reference::DequantizeRowQ2_K;
    case WeightType::kQ3_K:
      return &reference::DequantizeRowQ3_K;
    case WeightType::kQ4_K:
      return &reference::DequantizeRowQ4_K;
    case WeightType::kQ5_K:
      return &reference::DequantizeRowQ5_K;
    case WeightType::kQ6_K:
      return &reference::DequantizeRowQ6_K;
  }
  return nullptr;
}

}  // namespace

int64_t EmbeddingRowBytes(WeightType type, int64_t dim) {
  // A one-row matrix of the type in its file layout: the matmul's own size
  // and block-divisibility rules.
  MatmulWeight row;
  row.type = type;
  row.rows = 1;
  row.cols = dim;
  if (!MatmulShapeSupported(row)) return 0;
  return MatmulWeightBytes(row);
}

bool EmbeddingRows(const void* table, WeightType type, int64_t vocab, int64_t dim,
                   const int32_t* ids, int64_t n, float* out) {
  const int64_t row_bytes = EmbeddingRowBytes(type, dim);
  const reference::DequantizeRowFn fn = RowFn(type);
  if (row_bytes == 0 || fn == nullptr) return false;
  for (int64_t t = 0; t < n; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) return false;
  }
  const auto* base = static_cast<const unsigned char*>(table);
  for (int64_t t = 0; t < n; ++t) fn(base + ids[t] * row_bytes, out + t * dim, dim);
  return true;
}

}  // namespace relayout::kernels
