// rope.h against the rotation written out in double, both pairings, the
// three scalings, a partial rope_dim, odd head counts.
#include "kernels/cpu/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

namespace relayout::kernels {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// The rotation of one head, pairs given by their dim indexes.
void RotateReference(std::vector<float>& x, size_t head_offset, int64_t rope_dim, bool halves,
                     double pos, const std::vector<double>& inv) {
  for (int64_t p = 0; p < rope_dim / 2; ++p) {
    const size_t a = head_offset + static_cast<size_t>(halves ? p : 2 * p);
    const size_t b = head_offset + static_cast<size_t>(halves ? p + rope_dim / 2 : 2 * p + 1);
    const double angle = pos * inv[static_cast<size_t>(p)];
    const double x0 = x[a], x1 = x[b];
    x[a] = static_cast<float>(x0 * std::cos(angle) - x1 * std::sin(angle));
    x[b] = static_cast<float>(x0 * std::sin(angle) + x1 * std::cos(angle));
  }
}

TEST(RopeTest, BothPairingsMatchTheRotationFormula) {
  const int64_t heads = 3, head_dim = 10, rope_dim = 6, rows = 4;
  RopeFrequencyParams params;
  params.rope_dim = rope_dim;
  params.theta = 10000.0;
  std::vector<float> inv(rope_dim / 2);
  RopeInverseFrequencies(params, nullptr, inv.data());
  std::vector<double> inv_ref(rope_dim / 2);
  for (int64_t p = 0; p < rope_dim / 2; ++p) {
    inv_ref[p] = std::pow(10000.0, -2.0 * p / rope_dim);
    EXPECT_NEAR(inv[p], inv_ref[p], 1e-7);
  }
  const std::vector<int32_t> positions = {0, 1, 17, 255};
  for (RopePairing pairing : {RopePairing::kInterleaved, RopePairing::kHalves}) {
    std::vector<float> x = Random(rows * heads * head_dim, 11);
    std::vector<float> expected = x;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t h = 0; h < heads; ++h) {
        RotateReference(expected, static_cast<size_t>((r * heads + h) * head_dim), rope_dim,
                        pairing == RopePairing::kHalves, positions[r], inv_ref);
      }
    }
    ApplyRope(x.data(), rows, heads, head_dim, rope_dim, positions.data(), inv.data(), pairing);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expected[i], 2e-5) << i;
  }
}

TEST(RopeTest, PositionZeroIsIdentity) {
  std::vector<float> x = Random(16, 3);
  const std::vector<float> before = x;
  std::vector<float> inv(8);
  RopeInverseFrequencies({.theta = 10000.0, .rope_dim = 16}, nullptr, inv.data());
  const int32_t pos = 0;
  ApplyRope(x.data(), 1, 1, 16, 16, &pos, inv.data(), RopePairing::kHalves);
  EXPECT_EQ(x, before);
}

TEST(RopeTest, LinearScalingDividesFrequencies) {
  std::vector<float> base(4), linear(4);
  RopeInverseFrequencies({.theta = 10000.0, .rope_dim = 8}, nullptr, base.data());
  RopeInverseFrequencies(
      {.theta = 10000.0, .rope_dim = 8, .scaling = RopeScalingKind::kLinear, .factor = 4.0},
      nullptr, linear.data());
  for (int p = 0; p < 4; ++p) EXPECT_FLOAT_EQ(linear[p], base[p] / 4.0f);
}

TEST(RopeTest, Llama3ScalingFollowsThePiecewiseRule) {
  RopeFrequencyParams params{.theta = 500000.0,
                             .rope_dim = 128,
                             .scaling = RopeScalingKind::kLlama3,
                             .factor = 8.0,
                             .low_freq_factor = 1.0,
                             .high_freq_factor = 4.0,
                             .original_max_positions = 8192};
  std::vector<float> inv(64);
  RopeInverseFrequencies(params, nullptr, inv.data());
  int high = 0, low = 0, mid = 0;
  for (int p = 0; p < 64; ++p) {
    const double base = std::pow(500000.0, -2.0 * p / 128);
    const double wavelen = 2 * std::numbers::pi / base;
    double expected;
    if (wavelen < 8192 / 4.0) {
      expected = base, ++high;
    } else if (wavelen > 8192 / 1.0) {
      expected = base / 8, ++low;
    } else {
      const double s = (8192 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - s) * base / 8 + s * base, ++mid;
    }
    EXPECT_NEAR(inv[p], expected, 1e-6 * expected) << p;
  }
  // The rule's three branches are all exercised.
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
}

TEST(RopeTest, Llama3FrequencyFactorsTensorDividesBase) {
  RopeFrequencyParams params{.theta = 10000.0, .rope_dim = 6, .scaling = RopeScalingKind::kLlama3};
  const std::vector<float> factors = {1.0f, 2.0f, 8.0f};
  std::vector<float> inv(3);
  RopeInverseFrequencies(params, factors.data(), inv.data());
  for (int p = 0; p < 3; ++p) {
    EXPECT_NEAR(inv[p], std::pow(10000.0, -2.0 * p / 6) / factors[p], 1e-7);
  }
}

}  // namespace
}  // namespace relayout::kernels
