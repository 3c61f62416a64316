// Random quantized weights for the kernels' tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/kernels/quant_blocks.cuh"

namespace relayout::cuda::testing {

// A finite f16 scale with a random sign, exponent and mantissa (normal or
// subnormal), so the decode is exercised over the whole finite range.
inline uint16_t RandomFiniteHalf(std::mt19937& rng) {
  uint16_t h;
  do {
    h = static_cast<uint16_t>(rng());
  } while ((h & 0x7c00u) == 0x7c00u);
  return h;
}

// A weight in GGUF order: random bytes for every payload, random finite f16
// scale fields.
inline std::vector<uint8_t> RandomNative(QuantType t, int64_t rows, int64_t blocks,
                                         std::mt19937& rng) {
  const QuantFormat f = FormatOf(t);
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * blocks * f.block_bytes));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < rows * blocks; ++i) {
    for (int field = 0; field < f.scale_fields; ++field) {
      const uint16_t h = RandomFiniteHalf(rng);
      std::memcpy(&bytes[static_cast<size_t>(i * f.block_bytes + 2 * field)], &h, 2);
    }
  }
  return bytes;
}

}  // namespace relayout::cuda::testing
