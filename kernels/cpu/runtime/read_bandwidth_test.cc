#include "kernels/cpu/runtime/read_bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>

namespace relayout::kernels {
namespace {

TEST(ReadBandwidthTest, MeasuresAPositiveFiniteRateOverWholePages) {
  ThreadPool pool(2);
  const ReadBandwidth bw = MeasureReadBandwidth(&pool, (8 << 20) + 123, 2);
  EXPECT_EQ(bw.buffer_bytes, 8u << 20);
  EXPECT_EQ(bw.threads, 2);
  EXPECT_TRUE(std::isfinite(bw.bytes_per_second));
  // Any machine that runs this reads 8 MiB faster than 100 MB/s.
  EXPECT_GT(bw.bytes_per_second, 1e8);
}

TEST(ReadBandwidthTest, NoPoolIsOneThreadAndTooSmallABufferMeasuresNothing) {
  EXPECT_EQ(MeasureReadBandwidth(nullptr, 1 << 20, 1).threads, 1);
  const ReadBandwidth none = MeasureReadBandwidth(nullptr, 4095, 1);
  EXPECT_EQ(none.buffer_bytes, 0u);
  EXPECT_EQ(none.bytes_per_second, 0);
}

}  // namespace
}  // namespace relayout::kernels
