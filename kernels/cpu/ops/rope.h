// Rotary position embedding (RoPE), in place, for both pairings of a head's
// dims and the three frequency scalings of Llama models.
//
// For a head of head_dim dims of which the first rope_dim rotate, pair p in
// [0, rope_dim / 2) is the two dims (a, b):
//   kInterleaved  a = 2p,  b = 2p + 1            (Meta / GGUF; llama.cpp's
//                                                 LLAMA_ROPE_TYPE_NORM)
//   kHalves       a = p,   b = p + rope_dim / 2  (Hugging Face rotate-half;
//                                                 llama.cpp's NEOX)
// and at position pos, with angle = pos * inv_freq[p]:
//   x'[a] = x[a] cos(angle) - x[b] sin(angle)
//   x'[b] = x[a] sin(angle) + x[b] cos(angle)
// Dims [rope_dim, head_dim) are left as they are.
//
// inv_freq comes from RopeInverseFrequencies, once per model:
//   base    inv[p] = theta^(-2p / rope_dim)
//   linear  inv[p] = base[p] / factor            (positions divided by factor)
//   llama3  Hugging Face's piecewise rule: wavelengths 2pi / base[p] shorter
//           than original_max / high_freq_factor keep base[p], longer than
//           original_max / low_freq_factor take base[p] / factor, and those
//           between blend the two by
//           s = (original_max / wavelen - low) / (high - low):
//           (1 - s) * base[p] / factor + s * base[p];
//           or, when freq_factors is given (GGUF's rope_freqs.weight),
//           inv[p] = base[p] / freq_factors[p].
//
// Thread safety: pure functions of their inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

enum class RopePairing : uint8_t { kInterleaved, kHalves };
enum class RopeScalingKind : uint8_t { kNone, kLinear, kLlama3 };

struct RopeFrequencyParams {
  double theta = 10000.0;
  int64_t rope_dim = 0;  // even, >= 2
  RopeScalingKind scaling = RopeScalingKind::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_positions = 8192;
};

// Rotation pairs per call are limited so the cos/sin table lives on the stack.
inline constexpr int64_t kMaxRopeDim = 1024;

// Fills inv_freq[rope_dim / 2]. freq_factors (may be null) holds rope_dim / 2
// divisors and replaces the llama3 rule when given.
// REQUIRES: rope_dim even in [2, kMaxRopeDim]; theta, factor > 0.
void RopeInverseFrequencies(const RopeFrequencyParams& params, const float* freq_factors,
                            float* inv_freq);

// Rotates every head of every row of x [rows, n_heads * head_dim]; row r is
// at position positions[r].
// REQUIRES: rope_dim even, 2 <= rope_dim <= min(head_dim, kMaxRopeDim).
void ApplyRope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim,
               const int32_t* positions, const float* inv_freq, RopePairing pairing);

}  // namespace relayout::kernels
