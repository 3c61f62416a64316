// softmax.h against its formula written out in double, on odd sizes.
#include "kernels/cpu/attention/softmax.h"

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

TEST(SoftmaxTest, MatchesFormulaAndSumsToOne) {
  for (int64_t n : {1, 5, 129}) {
    std::vector<float> x = Random(static_cast<size_t>(2 * n), 9, 30.0f);
    std::vector<float> y = x;
    Softmax(y.data(), 2, n);
    for (int64_t r = 0; r < 2; ++r) {
      double m = x[r * n];
      for (int64_t i = 0; i < n; ++i) m = std::max<double>(m, x[r * n + i]);
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += std::exp(x[r * n + i] - m);
      double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(y[r * n + i], std::exp(x[r * n + i] - m) / sum, 1e-6);
        total += y[r * n + i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
    }
  }
}

TEST(SoftmaxTest, LargeLogitsDoNotOverflow) {
  std::vector<float> x = {1000.0f, 1000.0f};
  Softmax(x.data(), 1, 2);
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_FLOAT_EQ(x[1], 0.5f);
}

}  // namespace
}  // namespace relayout::kernels
