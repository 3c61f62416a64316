// Reference dequantization: the common layouts of every readable dtype to
// float32, one element at a time. Never optimised; the fast kernels and the
// tests compare against these.
//
// Each DequantizeRow* converts n consecutive elements (a row, or several
// rows back to back) from src, in the GGUF block layout of
// kernels/quant_format.h, to dst. They do the float operations of ggml's
// reference dequantize_row_* in the same order, with no multiply-add fused
// (see dequant.cc), so results equal ggml's bit for bit where ggml does not
// fuse either. Checked on hand-built blocks (dequant_test.cc) and, bitwise,
// against the PyPI gguf package's dequantizers on random blocks of every type
// and every tensor of ../shared/models/synthetic-kquant (dequant_gguf_check.py).
//   REQUIRES: n >= 0 and a multiple of the type's block size (32 for Q4_0..Q8_0
//   and IQ4_NL, 256 for the K-quants); src holds n / block * block_bytes bytes
//   (no alignment needed); dst holds n floats and does not overlap src.
//
// The QuantizeRow* functions are ggml's round-to-nearest reference
// quantizers (quantize_row_*_ref), for tests and synthetic checkpoints. Same
// REQUIREs, and the inputs must be finite.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relayout::kernels::reference {

// IEEE half / bfloat16 bits to float, and back (round to nearest even).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
float BF16ToF32(uint16_t b);
uint16_t F32ToBF16(float f);

// Signature shared by the row dequantizers, for dispatch tables.
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);

void DequantizeRowF32(const void* src, float* dst, int64_t n);
void DequantizeRowF16(const void* src, float* dst, int64_t n);
void DequantizeRowBF16(const void* src, float* dst, int64_t n);
void DequantizeRowQ8_0(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_0(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_1(const void* src, float* dst, int64_t n);
void DequantizeRowQ5_0(const void* src, float* dst, int64_t n);
void DequantizeRowQ5_1(const void* src, float* dst, int64_t n);
void DequantizeRowIQ4_NL(const void* src, float* dst, int64_t n);
void DequantizeRowQ2_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ3_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ5_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ6_K(const void* src, float* dst, int64_t n);

// Quantize n floats into blocks at dst. Per block of 32:
//   Q8_0: d = max|x| / 127, q = round(x / d)
//   Q4_0: d = x_at_max|x| / -8, q = min(15, trunc(x / d + 8.5))
//   Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))
void QuantizeRowQ8_0(const float* src, void* dst, int64_t n);
void QuantizeRowQ4_0(const float* src, void* dst, int64_t n);
void QuantizeRowQ4_1(const float* src, void* dst, int64_t n);

}  // namespace relayout::kernels::reference
