#include "kernels/cpu/ops/add.h"

namespace relayout::kernels {

void Add(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void AddRowBias(const float* b, int64_t rows, int64_t cols, float* y) {
  for (int64_t r = 0; r < rows; ++r) Add(b, cols, y + r * cols);
}

}  // namespace relayout::kernels
