#include "kernels/cpu/reference/dequant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/quant_format.h"

namespace relayout::kernels::reference {

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in half
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    // value = m * 2^(e - 150); in units of the half subnormal step 2^-24
    // that is m >> (126 - e), rounded to nearest even.
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

float BF16ToF32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t F32ToBF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  const uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace relayout::kernels::reference

// ---------------------------------------------------------------------------
// Rows. Blocks are copied out with memcpy: src needs no alignment.
//
// ggml's reference, like the gguf package's numpy, rounds the product a * b
// before adding c; a fused multiply-add rounds once and would change the last
// bit. The x86-64 baseline this file is built for has no FMA, and clang
// (which fuses by default where FMA exists, e.g. on AArch64) is told not to.
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace relayout::kernels::reference {
namespace {

template <typename Block>
Block LoadBlock(const void* src, int64_t i) {
  Block b;
  std::memcpy(&b, static_cast<const unsigned char*>(src) + i * sizeof(Block), sizeof(Block));
  return b;
}

template <typename Block>
void StoreBlock(const Block& b, void* dst, int64_t i) {
  std::memcpy(static_cast<unsigned char*>(dst) + i * sizeof(Block), &b, sizeof(Block));
}

// (int8_t)(v) of ggml's quantizers followed by MIN(15, .), for v that should
// lie in [0, 16.5]; clamping first keeps the cast defined for any input.
int TruncNibble(float v) {
  if (!(v >= 0.0f)) return 0;  // also NaN
  if (v >= 15.0f) return 15;
  return static_cast<int>(v);
}

// The two bits of element e (0..255) in a Q2_K/Q3_K qs[64]: element
// 128 * h + 32 * k + l (h = 0..1, k = 0..3, l = 0..31) is bits 2k..2k+1 of
// qs[32 * h + l].
int Low2Bits(const uint8_t* qs, int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
}

}  // namespace

void DequantizeRowF32(const void* src, float* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void DequantizeRowF16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = F16ToF32(h);
  }
}

void DequantizeRowBF16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, p + 2 * i, 2);
    dst[i] = BF16ToF32(b);
  }
}

void DequantizeRowQ8_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockQ8_0>(src, i);
    const float d = F16ToF32(b.d);
    for (int j = 0; j < kQK; ++j) dst[i * kQK + j] = b.qs[j] * d;
  }
}

void DequantizeRowQ4_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockQ4_0>(src, i);
    const float d = F16ToF32(b.d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int x0 = (b.qs[j] & 0x0f) - 8;
      const int x1 = (b.qs[j] >> 4) - 8;
      dst[i * kQK + j] = x0 * d;
      dst[i * kQK + j + kQK / 2] = x1 * d;
    }
  }
}

void DequantizeRowQ4_1(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockQ4_1>(src, i);
    const float d = F16ToF32(b.d);
    const float m = F16ToF32(b.m);
    for (int j = 0; j < kQK / 2; ++j) {
      const int x0 = b.qs[j] & 0x0f;
      const int x1 = b.qs[j] >> 4;
      dst[i * kQK + j] = x0 * d + m;
      dst[i * kQK + j + kQK / 2] = x1 * d + m;
    }
  }
}

void DequantizeRowQ5_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockQ5_0>(src, i);
    const float d = F16ToF32(b.d);
    const uint32_t qh =
        b.qh[0] | (b.qh[1] << 8) | (b.qh[2] << 16) | (static_cast<uint32_t>(b.qh[3]) << 24);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t xh0 = ((qh >> j) << 4) & 0x10;  // bit j: element j's fifth bit
      const uint8_t xh1 = (qh >> (j + 12)) & 0x10;  // bit j + 16: element j + 16's
      const int x0 = ((b.qs[j] & 0x0f) | xh0) - 16;
      const int x1 = ((b.qs[j] >> 4) | xh1) - 16;
      dst[i * kQK + j] = x0 * d;
      dst[i * kQK + j + kQK / 2] = x1 * d;
    }
  }
}

void DequantizeRowQ5_1(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockQ5_1>(src, i);
    const float d = F16ToF32(b.d);
    const float m = F16ToF32(b.m);
    const uint32_t qh =
        b.qh[0] | (b.qh[1] << 8) | (b.qh[2] << 16) | (static_cast<uint32_t>(b.qh[3]) << 24);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
      const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
      const int x0 = (b.qs[j] & 0x0f) | xh0;
      const int x1 = (b.qs[j] >> 4) | xh1;
      dst[i * kQK + j] = x0 * d + m;
      dst[i * kQK + j + kQK / 2] = x1 * d + m;
    }
  }
}

void DequantizeRowIQ4_NL(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const auto b = LoadBlock<BlockIQ4_NL>(src, i);
    const float d = F16ToF32(b.d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[i * kQK + j] = d * kIQ4_NLValues[b.qs[j] & 0x0f];
      dst[i * kQK + j + kQK / 2] = d * kIQ4_NLValues[b.qs[j] >> 4];
    }
  }
}

// In Q2_K and Q3_K, sub-block s (one scale, and in Q2_K one min) is elements
// 16 * s .. 16 * s + 15; the low two bits of each come from Low2Bits, and
// Q3_K's third bit of element 128 * h + 32 * k + l is bit 4 * h + k of hmask[l].
void DequantizeRowQ2_K(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto b = LoadBlock<BlockQ2_K>(src, i);
    const float d = F16ToF32(b.d);
    const float min = F16ToF32(b.dmin);
    float* y = dst + i * kQKK;
    for (int s = 0; s < kQKK / 16; ++s) {
      const float dl = d * (b.scales[s] & 0xf);
      const float ml = min * (b.scales[s] >> 4);
      for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * Low2Bits(b.qs, e) - ml;
    }
  }
}

void DequantizeRowQ3_K(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto b = LoadBlock<BlockQ3_K>(src, i);
    const float d = F16ToF32(b.d);
    float* y = dst + i * kQKK;
    for (int s = 0; s < kQKK / 16; ++s) {
      // Six-bit scales, stored minus 32: the low four bits of 0..7 in the
      // low nibbles of scales[0..7], of 8..15 in their high nibbles; the top
      // two bits of s in bits 2 * (s / 4) of scales[8 + s % 4].
      const int lo = s < 8 ? b.scales[s] & 0xf : b.scales[s - 8] >> 4;
      const int hi = (b.scales[8 + s % 4] >> (2 * (s / 4))) & 3;
      const float dl = d * ((lo | (hi << 4)) - 32);
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int high = (b.hmask[e % 32] >> (4 * (e / 128) + e % 128 / 32)) & 1;
        y[e] = dl * (Low2Bits(b.qs, e) - (high ? 0 : 4));
      }
    }
  }
}

// In Q4_K and Q5_K, sub-block j (0..7) is elements 32 * j .. 32 * j + 31:
// the low nibbles of qs[32 * (j / 2) ..] for even j, the high ones for odd j.
// Q5_K's fifth bit of element 32 * j + l is bit j of qh[l].
void DequantizeRowQ4_K(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto b = LoadBlock<BlockQ4_K>(src, i);
    const float d = F16ToF32(b.d);
    const float min = F16ToF32(b.dmin);
    float* y = dst + i * kQKK;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      KQuantScaleMin(j, b.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      const uint8_t* q = b.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * ((q[l] >> shift) & 0xf) - m1;
    }
  }
}

void DequantizeRowQ5_K(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto b = LoadBlock<BlockQ5_K>(src, i);
    const float d = F16ToF32(b.d);
    const float min = F16ToF32(b.dmin);
    float* y = dst + i * kQKK;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      KQuantScaleMin(j, b.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      const uint8_t* q = b.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        const int q5 = ((q[l] >> shift) & 0xf) | (((b.qh[l] >> j) & 1) << 4);
        y[32 * j + l] = d1 * q5 - m1;
      }
    }
  }
}

void DequantizeRowQ6_K(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto b = LoadBlock<BlockQ6_K>(src, i);
    const float d = F16ToF32(b.d);
    float* y = dst + i * kQKK;
    // Two halves of 128 elements; in half h, element 128 * h + 32 * k + l
    // (k = 0..3) is the low (k < 2) or high nibble of ql[64 * h + 32 * (k % 2) + l]
    // and bits 2k..2k+1 of qh[32 * h + l], minus 32; element e has scale
    // scales[e / 16].
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[128 * h + l + 0] = d * sc[is + 0] * q1;
        y[128 * h + l + 32] = d * sc[is + 2] * q2;
        y[128 * h + l + 64] = d * sc[is + 4] * q3;
        y[128 * h + l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void QuantizeRowQ8_0(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = F32ToF16(d);
    for (int j = 0; j < kQK; ++j) {
      b.qs[j] = static_cast<int8_t>(std::clamp(std::round(x[j] * id), -128.0f, 127.0f));
    }
    StoreBlock(b, dst, i);
  }
}

void QuantizeRowQ4_0(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    float amax = 0.0f;
    float max = 0.0f;  // the value of largest magnitude, with its sign
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = F32ToF16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = TruncNibble(x[j] * id + 8.5f);
      const int q1 = TruncNibble(x[j + kQK / 2] * id + 8.5f);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    StoreBlock(b, dst, i);
  }
}

void QuantizeRowQ4_1(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* x = src + i * kQK;
    float min = std::numeric_limits<float>::max();
    float max = -std::numeric_limits<float>::max();
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 b;
    b.d = F32ToF16(d);
    b.m = F32ToF16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = TruncNibble((x[j] - min) * id + 0.5f);
      const int q1 = TruncNibble((x[j + kQK / 2] - min) * id + 0.5f);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    StoreBlock(b, dst, i);
  }
}

}  // namespace relayout::kernels::reference
