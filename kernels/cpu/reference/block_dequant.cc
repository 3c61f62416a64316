#include "kernels/cpu/reference/block_dequant.h"

#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels::reference {

void DequantizeQ8_0Fields(uint16_t d, const uint8_t* qs, float* out) {
  const float scale = F16ToF32(d);
  for (int j = 0; j < kBlockElems; ++j) {
    out[j] = scale * static_cast<float>(static_cast<int8_t>(qs[j]));
  }
}

void DequantizeQ4_0Fields(uint16_t d, const uint8_t* qs, float* out) {
  const float scale = F16ToF32(d);
  for (int j = 0; j < kBlockElems / 2; ++j) {
    out[j] = scale * static_cast<float>((qs[j] & 0x0f) - 8);
    out[j + kBlockElems / 2] = scale * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void DequantizeQ4_1Fields(uint16_t d, uint16_t m, const uint8_t* qs, float* out) {
  const float scale = F16ToF32(d);
  const float min = F16ToF32(m);
  for (int j = 0; j < kBlockElems / 2; ++j) {
    out[j] = scale * static_cast<float>(qs[j] & 0x0f) + min;
    out[j + kBlockElems / 2] = scale * static_cast<float>(qs[j] >> 4) + min;
  }
}

}  // namespace relayout::kernels::reference
