// Elementwise add, for residual connections and biases:
//   Add:        y[i] = y[i] + x[i],           i in [0, n)
//   AddRowBias: y[r, j] = y[r, j] + b[j],     y [rows, cols], b [cols]
//
// Thread safety: pure functions of their inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

// REQUIRES: n >= 0; x and y do not partially overlap.
void Add(const float* x, int64_t n, float* y);

// REQUIRES: rows >= 0, cols >= 0.
void AddRowBias(const float* b, int64_t rows, int64_t cols, float* y);

}  // namespace relayout::kernels
