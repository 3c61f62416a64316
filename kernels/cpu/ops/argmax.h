// ArgmaxRows: the index of each row's maximum, the greedy sampler's choice.
//   x  [rows, cols] floats; out[r] = the first j with x[r, j] maximal.
// NaN never wins (a row of NaNs gives 0).
//
// Thread safety: pure function of its inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

// REQUIRES: rows >= 0, cols >= 1.
void ArgmaxRows(const float* x, int64_t rows, int64_t cols, int32_t* out);

}  // namespace relayout::kernels
