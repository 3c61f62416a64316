// RMSNorm over rows:
//   y[r, i] = x[r, i] / sqrt(mean_j(x[r, j]^2) + eps) * w[i]
//   x, y  [rows, dim] row-major (y may alias x)
//   w     [dim]
// The sum of squares accumulates in float, as llama2.c's rmsnorm does, so the
// reference logits are reproduced to rounding.
//
// Thread safety: a pure function of its inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

// REQUIRES: rows >= 0, dim >= 1, eps >= 0.
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

}  // namespace relayout::kernels
