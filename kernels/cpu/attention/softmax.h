// Softmax over rows, in place:
//   x[r, i] = exp(x[r, i] - m_r) / sum_j exp(x[r, j] - m_r),  m_r = max_j x[r, j]
//   x  [rows, n] row-major
// The maximum is subtracted only for numerical stability (exp never
// overflows); the result is that of the plain formula.
//
// Thread safety: a pure function of its inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

// REQUIRES: rows >= 0, n >= 1.
void Softmax(float* x, int64_t rows, int64_t n);

}  // namespace relayout::kernels
