#include "kernels/cpu/ops/embedding.h"

#include "kernels/cpu/reference/dequant.h"
#include "kernels/quant_format.h"

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
  }
  return nullptr;
}

}  // namespace

int64_t EmbeddingRowBytes(WeightType type, int64_t dim) {
  if (dim <= 0) return 0;
  const bool quant =
      type == WeightType::kQ8_0 || type == WeightType::kQ4_0 || type == WeightType::kQ4_1;
  if (quant && dim % kQK != 0) return 0;
  switch (type) {
    case WeightType::kF32:
      return dim * 4;
    case WeightType::kF16:
    case WeightType::kBF16:
      return dim * 2;
    case WeightType::kQ8_0:
      return dim / kQK * static_cast<int64_t>(sizeof(BlockQ8_0));
    case WeightType::kQ4_0:
      return dim / kQK * static_cast<int64_t>(sizeof(BlockQ4_0));
    case WeightType::kQ4_1:
      return dim / kQK * static_cast<int64_t>(sizeof(BlockQ4_1));
  }
  return 0;
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
