#include "kernels/cpu/ops/argmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace relayout::kernels {
namespace {

TEST(ArgmaxTest, FirstMaximumOfEachRowAndNanNeverWins) {
  const float nan = std::nanf("");
  const std::vector<float> x = {1,  3,  3,  2,  //
                                -5, -4, -9, -4, nan, 0, -1, nan, nan, nan, nan, nan};
  std::vector<int32_t> out(4, -1);
  ArgmaxRows(x.data(), 4, 4, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{1, 1, 1, 0}));
}

}  // namespace
}  // namespace relayout::kernels
