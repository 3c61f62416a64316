// add.h against its formula written out in double, on odd sizes.
#include "kernels/cpu/ops/add.h"

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

TEST(AddTest, AddsElementwiseAndPerRow) {
  std::vector<float> x = Random(37, 5);
  std::vector<float> y = Random(37, 6);
  std::vector<float> expected(37);
  for (size_t i = 0; i < 37; ++i) expected[i] = x[i] + y[i];
  Add(x.data(), 37, y.data());
  EXPECT_EQ(y, expected);

  std::vector<float> b = {1, 2, 3};
  std::vector<float> m = {0, 0, 0, 10, 20, 30};
  AddRowBias(b.data(), 2, 3, m.data());
  EXPECT_EQ(m, (std::vector<float>{1, 2, 3, 11, 22, 33}));
}

}  // namespace
}  // namespace relayout::kernels
