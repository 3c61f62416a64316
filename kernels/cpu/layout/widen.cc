#include "kernels/cpu/layout/widen.h"

#include <cstring>

#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels {

void WidenF16ToF32(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = reference::F16ToF32(src[i]);
}

void WidenBF16ToF32(const uint16_t* src, float* dst, size_t n) {
  // A bfloat16 is the top half of a float: a shift, which compilers vectorise.
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(&dst[i], &bits, sizeof bits);
  }
}

void NarrowF32ToF16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = reference::F32ToF16(src[i]);
}

void NarrowF32ToBF16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = reference::F32ToBF16(src[i]);
}

}  // namespace relayout::kernels
