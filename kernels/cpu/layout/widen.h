// Widening of half-precision tensors to F32 and back: the one size-changing
// transform (layout f32-widened). dst and src must not overlap.
//
//   Widen:  F16 / BF16 -> F32, exact.
//   Narrow: F32 -> F16 / BF16, round to nearest even; exact on values that
//           were widened from that type, so Narrow(Widen(x)) == x bit for bit
//           (NaN payloads aside: a quiet NaN stays a quiet NaN).
#pragma once

#include <cstddef>
#include <cstdint>

namespace relayout::kernels {

void WidenF16ToF32(const uint16_t* src, float* dst, size_t n);
void WidenBF16ToF32(const uint16_t* src, float* dst, size_t n);
void NarrowF32ToF16(const float* src, uint16_t* dst, size_t n);
void NarrowF32ToBF16(const float* src, uint16_t* dst, size_t n);

}  // namespace relayout::kernels
