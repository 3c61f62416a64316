#include "kernels/cuda/host/op_plan.h"

#include <algorithm>

namespace relayout::cuda {

int64_t QuantBlockBytes(int32_t dtype) {
  switch (dtype) {
    case RL_DTYPE_Q8_0:
      return 34;
    case RL_DTYPE_Q4_0:
    case RL_DTYPE_IQ4_NL:
      return 18;
    case RL_DTYPE_Q4_1:
      return 20;
    case RL_DTYPE_Q5_0:
      return 22;
    case RL_DTYPE_Q5_1:
      return 24;
    case RL_DTYPE_Q2_K:
      return 84;
    case RL_DTYPE_Q3_K:
      return 110;
    case RL_DTYPE_Q4_K:
      return 144;
    case RL_DTYPE_Q5_K:
      return 176;
    case RL_DTYPE_Q6_K:
      return 210;
    default:
      return 0;
  }
}

int64_t QuantBlockElements(int32_t dtype) {
  if (QuantBlockBytes(dtype) == 0) return 0;
  return dtype >= RL_DTYPE_Q2_K ? 256 : 32;
}

bool IsQuantDtype(int32_t dtype) { return QuantBlockBytes(dtype) != 0; }

uint64_t WeightBytes(int32_t dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return 0;
  uint64_t elems = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), &elems)) {
    return 0;
  }
  uint64_t out = 0;
  switch (dtype) {
    case RL_DTYPE_F32:
      return __builtin_mul_overflow(elems, uint64_t{4}, &out) ? 0 : out;
    case RL_DTYPE_F16:
    case RL_DTYPE_BF16:
      return __builtin_mul_overflow(elems, uint64_t{2}, &out) ? 0 : out;
    default: {
      const int64_t block = QuantBlockElements(dtype);
      if (block == 0 || cols % block != 0) return 0;
      const uint64_t blocks_per_row = static_cast<uint64_t>(cols / block);
      uint64_t blocks = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(rows), blocks_per_row, &blocks)) return 0;
      return __builtin_mul_overflow(blocks, static_cast<uint64_t>(QuantBlockBytes(dtype)), &out)
                 ? 0
                 : out;
    }
  }
}

bool MatmulShapeSupported(const rl_matmul_weight& w) {
  if (w.rows < 1 || w.cols < 1 || w.rows > INT32_MAX || w.cols > INT32_MAX) return false;
  switch (w.dtype) {
    case RL_DTYPE_F32:
    case RL_DTYPE_F16:
    case RL_DTYPE_BF16:
      return w.layout == RL_LAYOUT_ROW_MAJOR;
    case RL_DTYPE_Q8_0:
    case RL_DTYPE_Q4_0:
    case RL_DTYPE_Q4_1:
      if (w.cols % 32 != 0) return false;
      return w.layout == RL_LAYOUT_ROW_MAJOR ||
             (w.layout == RL_LAYOUT_QUANT_ROW_GROUP && w.group_rows == kPlanGroupRows);
    default:
      // The newer GGUF types: native blocks only (the GEMV has no group
      // kernel for them).
      if (!IsQuantDtype(w.dtype) || w.cols % QuantBlockElements(w.dtype) != 0) return false;
      return w.layout == RL_LAYOUT_ROW_MAJOR;
  }
}

MatmulPath ChooseMatmulPath(int32_t dtype, int64_t tokens, int64_t quant_gemv_max_tokens,
                            int64_t float_gemv_max_tokens) {
  if (IsQuantDtype(dtype)) {
    return tokens <= quant_gemv_max_tokens ? MatmulPath::kQuantGemv : MatmulPath::kQuantDequantGemm;
  }
  if (dtype == RL_DTYPE_BF16 && tokens > float_gemv_max_tokens) return MatmulPath::kBf16PairGemm;
  return MatmulPath::kFloatKernel;
}

int64_t DequantChunkRows(int64_t rows, int64_t cols, uint64_t chunk_bytes) {
  if (rows < 1 || cols < 1) return 1;
  const uint64_t row_bytes = 2 * static_cast<uint64_t>(cols);
  const int64_t fit = static_cast<int64_t>(std::max<uint64_t>(1, chunk_bytes / row_bytes));
  int64_t chunk = std::min(rows, fit);
  if (chunk < rows && chunk > 64) chunk = chunk / 64 * 64;
  return chunk;
}

uint64_t ScratchSize(uint64_t bytes, uint64_t min_bytes, uint64_t pow2_limit) {
  if (bytes > pow2_limit) return bytes;
  uint64_t size = std::max<uint64_t>(min_bytes, 1);
  while (size < bytes) size *= 2;
  return size;
}

}  // namespace relayout::cuda
