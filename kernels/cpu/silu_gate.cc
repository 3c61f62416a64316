#include "kernels/cpu/silu_gate.h"

#include <cmath>

namespace relayout::kernels {

void SiluGate(const float* g, const float* u, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = g[i];
    out[i] = v / (1.0f + std::exp(-v)) * u[i];
  }
}

}  // namespace relayout::kernels
