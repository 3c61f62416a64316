// Reference GEMV over elementwise weights: row-major, row-group interleave,
// BF16 K-pair. Each layout differs only in where element (n, k) lives; the
// accumulation order (k ascending per row) is shared so results match bit for
// bit across layouts.
#include <cstring>

#include "kernels/cpu/reference/dequant.h"
#include "kernels/cpu/reference/gemv.h"

namespace relayout::kernels::reference {
namespace {

using Byte = unsigned char;

size_t ElemBytes(FloatElem elem) { return elem == FloatElem::kF32 ? 4 : 2; }

float LoadElem(FloatElem elem, const Byte* p) {
  if (elem == FloatElem::kF32) {
    float f;
    std::memcpy(&f, p, sizeof f);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return elem == FloatElem::kF16 ? F16ToF32(h) : BF16ToF32(h);
}

// Element index of W[n, k] in the row-group interleave (row_group_interleave.h).
size_t RowGroupElementIndex(const RowGroupParams& p, size_t n, size_t k) {
  const size_t g = p.group_rows;
  const size_t group = n / g;
  if (group >= p.rows / g) return n * p.cols + k;  // tail rows: row-major
  const size_t r = n % g;
  const size_t c = k / p.k_block;
  const size_t k0 = c * p.k_block;
  const size_t width = p.cols - k0 < p.k_block ? p.cols - k0 : p.k_block;
  return group * g * p.cols + g * k0 + r * width + (k - k0);
}

}  // namespace

void GemvRowMajor(FloatElem elem, const void* w, size_t rows, size_t cols, const float* x,
                  float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  const size_t eb = ElemBytes(elem);
  for (size_t n = 0; n < rows; ++n) {
    float acc = 0.0f;
    for (size_t k = 0; k < cols; ++k) acc += LoadElem(elem, base + (n * cols + k) * eb) * x[k];
    y[n] = acc;
  }
}

void GemvRowGroup(FloatElem elem, const RowGroupParams& layout, const void* w, const float* x,
                  float* y) {
  const Byte* base = static_cast<const Byte*>(w);
  const size_t eb = ElemBytes(elem);
  for (size_t n = 0; n < layout.rows; ++n) {
    float acc = 0.0f;
    for (size_t k = 0; k < layout.cols; ++k) {
      acc += LoadElem(elem, base + RowGroupElementIndex(layout, n, k) * eb) * x[k];
    }
    y[n] = acc;
  }
}

void GemvBf16KPair(const Bf16KPairParams& layout, const void* w, const float* x, float* y) {
  GemvRowGroup(FloatElem::kBF16, Bf16KPairAsRowGroup(layout), w, x, y);
}

}  // namespace relayout::kernels::reference
