// silu_gate.h against its formula written out in double, on odd sizes.
#include "kernels/cpu/ops/silu_gate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace relayout::kernels {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(SiluGateTest, MatchesFormula) {
  std::vector<float> g = Random(173, 7, 8.0f);
  std::vector<float> u = Random(173, 8, 2.0f);
  std::vector<float> out(173);
  SiluGate(g.data(), u.data(), 173, out.data());
  for (size_t i = 0; i < g.size(); ++i) {
    const double s = g[i] / (1.0 + std::exp(-double(g[i])));
    EXPECT_NEAR(out[i], s * u[i], 1e-5) << i;
  }
  // In place over the gate.
  SiluGate(g.data(), u.data(), 173, g.data());
  EXPECT_EQ(g, out);
}

}  // namespace
}  // namespace relayout::kernels
