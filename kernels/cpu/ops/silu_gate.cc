#include "kernels/cpu/ops/silu_gate.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

// No fused multiply-add where a clone has FMA: see SiluGate.
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace relayout::kernels {
namespace {

// exp(x) for x in [-87, 88] without a library call, so the loop below
// vectorises: k = round(x / ln 2) by the 1.5 * 2^23 rounding trick,
// r = x - k ln 2, exp(r) by its degree-6 Taylor polynomial (relative error
// ~2e-7, as expf), 2^k written into the exponent bits.
inline float ExpNoCall(float x) {
  x = std::fmin(std::fmax(x, -87.0f), 88.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const float t = x * 1.44269504f + kRound;
  const float k = t - kRound;
  float r = x - k * 0.693145752f;
  r = r - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

}  // namespace

// Built three times, chosen at load by the CPU (the loop is the same; the
// widest vectors run 4x the baseline's elements per instruction: a prefill's
// gate is tokens x ffn floats per layer). Contraction is off, so no ISA fuses
// a multiply and an add that another rounds twice: every CPU gives the same
// bits, as the other kernels do.
__attribute__((target_clones("avx512f", "avx2", "default"))) void SiluGate(const float* g,
                                                                           const float* u,
                                                                           int64_t n, float* out) {
  // Through a local buffer: out usually is g itself, and a loop writing out
  // directly fails the vectorizer's runtime overlap check and runs scalar.
  constexpr int64_t kChunk = 256;
  float tmp[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = n - i0 < kChunk ? n - i0 : kChunk;
    for (int64_t i = 0; i < m; ++i) {
      const float v = g[i0 + i];
      tmp[i] = v / (1.0f + ExpNoCall(-v)) * u[i0 + i];
    }
    std::memcpy(out + i0, tmp, static_cast<size_t>(m) * sizeof(float));
  }
}

}  // namespace relayout::kernels
