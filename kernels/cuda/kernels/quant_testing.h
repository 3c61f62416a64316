// Random quantized weights for the kernels' tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/reference/dequant.h"
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

// Byte offsets of a block's f16 scales (d, and m or dmin), at most two;
// returns their count. Everything else in a block is integer data (Q5's qh
// included), any bit pattern of which is valid.
inline int HalfFieldOffsets(QuantType t, int32_t* offsets) {
  switch (t) {
    case QuantType::kQ2_K:
      offsets[0] = 80;
      offsets[1] = 82;
      return 2;
    case QuantType::kQ3_K:
      offsets[0] = 108;
      return 1;
    case QuantType::kQ6_K:
      offsets[0] = 208;
      return 1;
    case QuantType::kQ4_K:
    case QuantType::kQ5_K:
      offsets[0] = 0;
      offsets[1] = 2;
      return 2;
    default:
      offsets[0] = 0;
      offsets[1] = 2;
      return HasBlockMin(t) ? 2 : 1;
  }
}

// A weight in GGUF order: `blocks` blocks per row (of BlockElements(t)
// elements), random bytes everywhere but the f16 scales, which are random
// finite halves.
inline std::vector<uint8_t> RandomNative(QuantType t, int64_t rows, int64_t blocks,
                                         std::mt19937& rng) {
  const int32_t block_bytes = BlockBytes(t);
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * blocks * block_bytes));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  int32_t offsets[2];
  const int fields = HalfFieldOffsets(t, offsets);
  for (int64_t i = 0; i < rows * blocks; ++i) {
    for (int field = 0; field < fields; ++field) {
      const uint16_t h = RandomFiniteHalf(rng);
      std::memcpy(&bytes[static_cast<size_t>(i * block_bytes + offsets[field])], &h, 2);
    }
  }
  return bytes;
}

// The reference dequantizer (kernels/cpu/reference/dequant.h) of a type.
inline std::vector<float> ReferenceDequant(QuantType t, const std::vector<uint8_t>& native,
                                           int64_t n) {
  namespace ref = ::relayout::kernels::reference;
  void (*const row[])(const void*, float*, int64_t) = {
      ref::DequantizeRowQ8_0, ref::DequantizeRowQ4_0, ref::DequantizeRowQ4_1,
      ref::DequantizeRowQ5_0, ref::DequantizeRowQ5_1, ref::DequantizeRowIQ4_NL,
      ref::DequantizeRowQ2_K, ref::DequantizeRowQ3_K, ref::DequantizeRowQ4_K,
      ref::DequantizeRowQ5_K, ref::DequantizeRowQ6_K};
  std::vector<float> out(static_cast<size_t>(n));
  row[static_cast<int>(t)](native.data(), out.data(), n);
  return out;
}

inline constexpr QuantType kAllQuantTypes[] = {
    QuantType::kQ8_0, QuantType::kQ4_0,   QuantType::kQ4_1, QuantType::kQ5_0,
    QuantType::kQ5_1, QuantType::kIQ4_NL, QuantType::kQ2_K, QuantType::kQ3_K,
    QuantType::kQ4_K, QuantType::kQ5_K,   QuantType::kQ6_K};

inline const char* QuantTypeName(QuantType t) {
  constexpr const char* kNames[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL",
                                    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
  return kNames[static_cast<int>(t)];
}

}  // namespace relayout::cuda::testing
