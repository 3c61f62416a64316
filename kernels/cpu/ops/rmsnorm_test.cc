// rmsnorm.h against its formula written out in double, on odd sizes.
#include "kernels/cpu/ops/rmsnorm.h"

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

TEST(RmsNormTest, MatchesFormulaOnOddSizes) {
  for (int64_t dim : {1, 7, 33, 577}) {
    const int64_t rows = 3;
    std::vector<float> x = Random(static_cast<size_t>(rows * dim), 1, 3.0f);
    std::vector<float> w = Random(static_cast<size_t>(dim), 2);
    std::vector<float> y(x.size());
    RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
      const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
      for (int64_t i = 0; i < dim; ++i) {
        EXPECT_NEAR(y[r * dim + i], x[r * dim + i] * inv * w[i], 1e-5) << dim << " " << i;
      }
    }
  }
}

TEST(RmsNormTest, InPlaceEqualsOutOfPlace) {
  std::vector<float> x = Random(2 * 13, 3);
  std::vector<float> w = Random(13, 4);
  std::vector<float> y(x.size());
  RmsNorm(x.data(), w.data(), 2, 13, 1e-6f, y.data());
  RmsNorm(x.data(), w.data(), 2, 13, 1e-6f, x.data());
  EXPECT_EQ(x, y);
}

}  // namespace
}  // namespace relayout::kernels
