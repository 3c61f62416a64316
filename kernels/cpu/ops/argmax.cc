#include "kernels/cpu/ops/argmax.h"

namespace relayout::kernels {

void ArgmaxRows(const float* x, int64_t rows, int64_t cols, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; ++j) {
      // !(a <= b) rather than a > b would let a NaN win; a NaN at 0 loses
      // to any number.
      if (row[j] > row[best] || (row[best] != row[best] && row[j] == row[j])) best = j;
    }
    out[r] = static_cast<int32_t>(best);
  }
}

}  // namespace relayout::kernels
