#include "kernels/cpu/attention/softmax.h"

#include <cmath>

namespace relayout::kernels {

void Softmax(float* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * n;
    float m = xr[0];
    for (int64_t i = 1; i < n; ++i) m = xr[i] > m ? xr[i] : m;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      xr[i] = std::exp(xr[i] - m);
      sum += xr[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) xr[i] *= inv;
  }
}

}  // namespace relayout::kernels
