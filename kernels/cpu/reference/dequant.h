// Reference dequantization: the common layouts of every readable dtype to
// float32, one element at a time. Never optimised; the fast kernels and the
// tests compare against these.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relayout::kernels::reference {

// IEEE half / bfloat16 bits to float, and back (round to nearest even).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
float BF16ToF32(uint16_t b);
uint16_t F32ToBF16(float f);

}  // namespace relayout::kernels::reference
