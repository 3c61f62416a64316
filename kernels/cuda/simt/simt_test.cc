// The SIMT harness itself: barriers, shuffles, votes, atomics and shared
// memory behave as the CUDA programming guide says, so a kernel test that
// passes here tests the kernel, not the harness.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::simt {
namespace {

// Each block sums its slice through shared memory: a tree of __syncthreads.
__global__ void BlockSum(const float* x, int n, float* out) {
  __shared__ float partial[256];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  partial[threadIdx.x] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

TEST(SimtTest, SharedMemoryTreeReductionPerBlock) {
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  std::vector<float> out(4, -1.0f);
  Launch(dim3(4), dim3(256), 0, BlockSum, x.data(), 1000, out.data());
  for (int b = 0; b < 4; ++b) {
    double expected = 0;
    for (int i = b * 256; i < std::min(1000, b * 256 + 256); ++i) expected += i;
    EXPECT_EQ(out[b], static_cast<float>(expected)) << b;
  }
}

__global__ void WarpOps(int* out) {
  const int lane = threadIdx.x % 32;
  int v = lane + 1;
  for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
  out[threadIdx.x * 8 + 0] = v;                                       // 528 everywhere
  out[threadIdx.x * 8 + 1] = __shfl_sync(0xffffffffu, lane * 10, 3);  // lane 3's
  out[threadIdx.x * 8 + 2] = __shfl_down_sync(0xffffffffu, lane, 4);  // lane + 4, or own
  out[threadIdx.x * 8 + 3] = __shfl_up_sync(0xffffffffu, lane, 1);    // lane - 1, or own
  out[threadIdx.x * 8 + 4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 2));
  out[threadIdx.x * 8 + 5] = __any_sync(0xffffffffu, lane == 31);
  out[threadIdx.x * 8 + 6] = __all_sync(0xffffffffu, lane < 31);
  out[threadIdx.x * 8 + 7] = __shfl_xor_sync(0xffffffffu, lane, 1, 8);  // pairs within 8
}

TEST(SimtTest, WarpShufflesAndVotesFollowTheGuide) {
  std::vector<int> out(64 * 8, -7);
  Launch(dim3(1), dim3(64), 0, WarpOps, out.data());
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    const int* o = &out[t * 8];
    EXPECT_EQ(o[0], 528) << t;
    EXPECT_EQ(o[1], 30) << t;
    EXPECT_EQ(o[2], lane + 4 < 32 ? lane + 4 : lane) << t;
    EXPECT_EQ(o[3], lane >= 1 ? lane - 1 : lane) << t;
    EXPECT_EQ(static_cast<unsigned>(o[4]), 0xaaaaaaaau) << t;
    EXPECT_EQ(o[5], 1) << t;
    EXPECT_EQ(o[6], 0) << t;
    EXPECT_EQ(o[7], lane ^ 1) << t;
  }
}

__global__ void AtomicCount(int* counter, float* sum, int* maximum) {
  atomicAdd(counter, 1);
  atomicAdd(sum, 0.5f);
  atomicMax(maximum, static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x));
}

TEST(SimtTest, AtomicsAcrossThreadsAndBlocks) {
  int counter = 0;
  float sum = 0.0f;
  int maximum = -1;
  Launch(dim3(3, 2), dim3(40), 0, AtomicCount, &counter, &sum, &maximum);
  EXPECT_EQ(counter, 240);
  EXPECT_EQ(sum, 120.0f);
  EXPECT_EQ(maximum, 2 * 40 + 39);  // blockIdx.x reaches 2
}

__global__ void ReadDynamicShared(int write, int* out) {
  RL_DYNAMIC_SHARED(int, s);
  if (write != 0) s[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

TEST(SimtTest, DynamicSharedMemoryIsPoisonedBeforeEveryBlock) {
  std::vector<int> out(2 * 16);
  Launch(dim3(2), dim3(16), 16 * sizeof(int), ReadDynamicShared, 1, out.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], (i % 16 + 1) % 16) << i;
  // Nothing written in this launch: every read sees the poison.
  Launch(dim3(2), dim3(16), 16 * sizeof(int), ReadDynamicShared, 0, out.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], -1) << i;
}

__global__ void Indices(unsigned* out) {
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[block * blockDim.x * blockDim.y * blockDim.z + linear] = block * 1000 + linear;
}

TEST(SimtTest, ThreeDimensionalGridsAndBlocksCoverEveryIndexOnce) {
  std::vector<unsigned> out(2 * 3 * 2 * 4 * 2 * 3, 0xffffffffu);
  Launch(dim3(2, 3, 2), dim3(4, 2, 3), 0, Indices, out.data());
  for (unsigned i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], i / 24 * 1000 + i % 24) << i;
}

TEST(SimtTest, RefusesWhatTheDeviceWouldRefuse) {
  unsigned out = 0;
  EXPECT_THROW(Launch(dim3(1), dim3(1025), 0, Indices, &out), std::invalid_argument);
  EXPECT_THROW(Launch(dim3(1), dim3(1), kMaxDynamicSharedBytes + 1, Indices, &out),
               std::invalid_argument);
  Launch(dim3(0), dim3(32), 0, Indices, &out);  // an empty grid runs nothing
  EXPECT_EQ(out, 0u);
}

TEST(SimtTest, Dp4aMultipliesSignedBytes) {
  const int a = static_cast<int>(0x80'7f'ff'02u);  // -128, 127, -1, 2 (high to low)
  const int b = static_cast<int>(0x02'03'05'07u);
  EXPECT_EQ(__dp4a(a, b, 10), 10 + 2 * 7 + (-1) * 5 + 127 * 3 + (-128) * 2);
}

TEST(SimtTest, HalfConversionsMatchTheReferenceForEveryBitPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = cuda::HalfToFloat(static_cast<uint16_t>(h));
    const float ref = kernels::reference::F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      continue;
    }
    ASSERT_EQ(cuda::FloatToBits(f), cuda::FloatToBits(ref)) << h;
    ASSERT_EQ(cuda::FloatToHalf(f), h) << h;  // every half survives the round trip
    EXPECT_EQ(cuda::FloatToBf16(cuda::Bf16ToFloat(static_cast<uint16_t>(h))), h) << h;
  }
  // Round to nearest even at the midpoints, and overflow to infinity.
  EXPECT_EQ(cuda::FloatToHalf(1.0f + 0x1p-11f), 0x3c00);  // tie, even stays
  EXPECT_EQ(cuda::FloatToHalf(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  EXPECT_EQ(cuda::FloatToHalf(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie, odd rounds up
  EXPECT_EQ(cuda::FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(cuda::FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(cuda::FloatToHalf(0x1p-25f), 0x0000);  // tie with zero: even
  EXPECT_EQ(cuda::FloatToHalf(0x1p-25f * 1.5f), 0x0001);
  EXPECT_EQ(cuda::FloatToBf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(cuda::FloatToBf16(1.0f + 3 * 0x1p-8f), 0x3f82);
}

}  // namespace
}  // namespace relayout::simt
