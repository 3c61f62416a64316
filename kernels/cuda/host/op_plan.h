// The CUDA plugin's host-side decisions that need no CUDA: which weights
// matmul runs, their sizes, which path a matmul takes, how a dequantized
// weight is chunked, how a workspace grows. Plain C++ over the ABI's
// constants, tested without a GPU (op_plan_test.cc); plugin.cu calls them.
#pragma once

#include <cstdint>

#include "kernels/device_abi.h"

namespace relayout::cuda {

// Rows per group of the GPU's quant row group layout (quant_blocks.cuh's
// kGpuQuantGroupRows).
inline constexpr int32_t kPlanGroupRows = 8;

// Bytes of a GGUF block of a quantized dtype (Q8_0 .. Q6_K); 0 otherwise.
int64_t QuantBlockBytes(int32_t dtype);
// Elements per block: 32, 256 for the K-quants (Q2_K .. Q6_K); 0 otherwise.
int64_t QuantBlockElements(int32_t dtype);
bool IsQuantDtype(int32_t dtype);

// The bytes of a [rows, cols] weight of `dtype` in any of its layouts (each
// is a permutation of the common one); 0 for an unknown dtype, a negative
// size, cols not a multiple of the block for block types, or an overflow of
// uint64.
uint64_t WeightBytes(int32_t dtype, int64_t rows, int64_t cols);

// What the plugin's matmul runs: F32/F16/BF16 row-major; Q8_0/Q4_0/Q4_1
// row-major (native blocks) or quant row group with group_rows 8; Q5_0,
// Q5_1, IQ4_NL and the K-quants row-major only; rows and cols in [1, 2^31)
// (grids and cuBLASLt's dimensions), cols a multiple of the block (32, or
// 256 for the K-quants).
bool MatmulShapeSupported(const rl_matmul_weight& w);

enum class MatmulPath {
  kQuantGemv,         // QuantMatmul over Q8 activations (the CPU's numerics)
  kQuantDequantGemm,  // DequantizeToBf16 chunks + cuBLASLt, x rounded to BF16
  kBf16PairGemm,      // cuBLASLt twice, x split into BF16 hi + lo
  kFloatKernel,       // FloatMatmul (F32 in double, F16, BF16 GEMV)
};

// The path of a supported weight's matmul over `tokens` tokens:
// quantized weights take the GEMV up to quant_gemv_max_tokens, BF16
// weights the pair GEMM above float_gemv_max_tokens.
MatmulPath ChooseMatmulPath(int32_t dtype, int64_t tokens, int64_t quant_gemv_max_tokens,
                            int64_t float_gemv_max_tokens);

// Rows of one dequantized BF16 chunk of a [rows, cols] weight within
// chunk_bytes: at least 1, at most rows, a multiple of 64 when it is more
// than 64 and less than rows (so y + first_row keeps y's 256-byte
// alignment for cuBLASLt).
int64_t DequantChunkRows(int64_t rows, int64_t cols, uint64_t chunk_bytes);

// The size a workspace grows to for a need of `bytes`: a power of two of at
// least min_bytes up to pow2_limit (rare growth: each one drops the cached
// step graphs), the need itself past it.
uint64_t ScratchSize(uint64_t bytes, uint64_t min_bytes, uint64_t pow2_limit);

}  // namespace relayout::cuda
