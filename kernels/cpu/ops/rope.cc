#include "kernels/cpu/ops/rope.h"

#include <cmath>
#include <numbers>

namespace relayout::kernels {

void RopeInverseFrequencies(const RopeFrequencyParams& params, const float* freq_factors,
                            float* inv_freq) {
  const int64_t pairs = params.rope_dim / 2;
  const double low_wavelen = params.original_max_positions / params.low_freq_factor;
  const double high_wavelen = params.original_max_positions / params.high_freq_factor;
  for (int64_t p = 0; p < pairs; ++p) {
    const double base = 1.0 / std::pow(params.theta, static_cast<double>(2 * p) /
                                                         static_cast<double>(params.rope_dim));
    double f = base;
    switch (params.scaling) {
      case RopeScalingKind::kNone:
        break;
      case RopeScalingKind::kLinear:
        f = base / params.factor;
        break;
      case RopeScalingKind::kLlama3: {
        if (freq_factors != nullptr) {
          f = base / static_cast<double>(freq_factors[p]);
          break;
        }
        const double wavelen = 2.0 * std::numbers::pi / base;
        if (wavelen < high_wavelen) {
          f = base;
        } else if (wavelen > low_wavelen) {
          f = base / params.factor;
        } else {
          const double s = (params.original_max_positions / wavelen - params.low_freq_factor) /
                           (params.high_freq_factor - params.low_freq_factor);
          f = (1.0 - s) * base / params.factor + s * base;
        }
        break;
      }
    }
    inv_freq[p] = static_cast<float>(f);
  }
}

void ApplyRope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim,
               const int32_t* positions, const float* inv_freq, RopePairing pairing) {
  const int64_t pairs = rope_dim / 2;
  float cos_t[kMaxRopeDim / 2];
  float sin_t[kMaxRopeDim / 2];
  // Interleaved pairs are (2p, 2p + 1); halves are (p, p + pairs).
  const int64_t a_step = pairing == RopePairing::kInterleaved ? 2 : 1;
  const int64_t b_offset = pairing == RopePairing::kInterleaved ? 1 : pairs;
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t p = 0; p < pairs; ++p) {
      const float angle = pos * inv_freq[p];
      cos_t[p] = std::cos(angle);
      sin_t[p] = std::sin(angle);
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* head = x + (r * n_heads + h) * head_dim;
      for (int64_t p = 0; p < pairs; ++p) {
        float* a = head + p * a_step;
        float* b = a + b_offset;
        const float x0 = *a;
        const float x1 = *b;
        *a = x0 * cos_t[p] - x1 * sin_t[p];
        *b = x0 * sin_t[p] + x1 * cos_t[p];
      }
    }
  }
}

}  // namespace relayout::kernels
