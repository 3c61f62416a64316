#include "kernels/cpu/ops/silu_gate.h"

#include <bit>
#include <cmath>
#include <cstdint>

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

void SiluGate(const float* g, const float* u, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = g[i];
    out[i] = v / (1.0f + ExpNoCall(-v)) * u[i];
  }
}

}  // namespace relayout::kernels
