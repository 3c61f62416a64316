#include "kernels/cuda/host/op_plan.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace relayout::cuda {
namespace {

rl_matmul_weight Weight(int32_t dtype, int32_t layout, int64_t rows, int64_t cols,
                        int32_t group_rows = 1) {
  rl_matmul_weight w{};
  w.dtype = dtype;
  w.layout = layout;
  w.rows = rows;
  w.cols = cols;
  w.group_rows = group_rows;
  return w;
}

TEST(OpPlanTest, WeightBytesPerType) {
  EXPECT_EQ(WeightBytes(RL_DTYPE_F32, 3, 5), 60u);
  EXPECT_EQ(WeightBytes(RL_DTYPE_F16, 3, 5), 30u);
  EXPECT_EQ(WeightBytes(RL_DTYPE_BF16, 3, 5), 30u);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q8_0, 3, 64), 3u * 2 * 34);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q4_0, 3, 64), 3u * 2 * 18);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q4_1, 3, 64), 3u * 2 * 20);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q5_0, 3, 64), 3u * 2 * 22);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q5_1, 3, 64), 3u * 2 * 24);
  EXPECT_EQ(WeightBytes(RL_DTYPE_IQ4_NL, 3, 64), 3u * 2 * 18);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q2_K, 3, 512), 3u * 2 * 84);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q3_K, 3, 512), 3u * 2 * 110);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q4_K, 3, 512), 3u * 2 * 144);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q5_K, 3, 512), 3u * 2 * 176);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q6_K, 3, 512), 3u * 2 * 210);
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q4_K, 3, 288), 0u);  // not whole super-blocks
  EXPECT_EQ(WeightBytes(RL_DTYPE_Q4_0, 3, 40), 0u);   // not whole blocks
  EXPECT_EQ(WeightBytes(99, 3, 64), 0u);
  EXPECT_EQ(WeightBytes(RL_DTYPE_F32, -1, 5), 0u);
  EXPECT_EQ(WeightBytes(RL_DTYPE_F32, int64_t{1} << 40, int64_t{1} << 30), 0u);  // overflow
  EXPECT_EQ(WeightBytes(RL_DTYPE_F32, 0, 5), 0u);  // empty: nothing to hold
}

TEST(OpPlanTest, SupportedTypesAndLayouts) {
  for (int32_t t : {RL_DTYPE_F32, RL_DTYPE_F16, RL_DTYPE_BF16}) {
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 5))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_GROUP, 8, 64, 8))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_BF16_KPAIR, 8, 64, 8))) << t;
  }
  for (int32_t t : {RL_DTYPE_Q8_0, RL_DTYPE_Q4_0, RL_DTYPE_Q4_1}) {
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 64))) << t;
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_QUANT_ROW_GROUP, 13, 64, 8))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_QUANT_ROW_GROUP, 13, 64, 4))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 48))) << t;
  }
  for (int32_t t : {RL_DTYPE_Q5_0, RL_DTYPE_Q5_1, RL_DTYPE_IQ4_NL}) {
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 64))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_QUANT_ROW_GROUP, 16, 64, 8))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 48))) << t;
    EXPECT_EQ(QuantBlockElements(t), 32) << t;
  }
  for (int32_t t : {RL_DTYPE_Q2_K, RL_DTYPE_Q3_K, RL_DTYPE_Q4_K, RL_DTYPE_Q5_K, RL_DTYPE_Q6_K}) {
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 256))) << t;
    EXPECT_TRUE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 1, 4096))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_MAJOR, 3, 96))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_QUANT_ROW_GROUP, 16, 256, 8))) << t;
    EXPECT_FALSE(MatmulShapeSupported(Weight(t, RL_LAYOUT_ROW_GROUP, 16, 256, 8))) << t;
    EXPECT_EQ(QuantBlockElements(t), 256) << t;
  }
  EXPECT_EQ(QuantBlockElements(RL_DTYPE_BF16), 0);
  EXPECT_FALSE(MatmulShapeSupported(Weight(RL_DTYPE_F32, RL_LAYOUT_ROW_MAJOR, 0, 5)));
  EXPECT_FALSE(
      MatmulShapeSupported(Weight(RL_DTYPE_F32, RL_LAYOUT_ROW_MAJOR, 3, int64_t{1} << 31)));
  EXPECT_FALSE(MatmulShapeSupported(Weight(42, RL_LAYOUT_ROW_MAJOR, 3, 5)));
}

TEST(OpPlanTest, MatmulPaths) {
  for (int32_t t :
       {RL_DTYPE_Q8_0, RL_DTYPE_Q4_0, RL_DTYPE_Q4_1, RL_DTYPE_Q5_0, RL_DTYPE_Q5_1, RL_DTYPE_IQ4_NL,
        RL_DTYPE_Q2_K, RL_DTYPE_Q3_K, RL_DTYPE_Q4_K, RL_DTYPE_Q5_K, RL_DTYPE_Q6_K}) {
    EXPECT_EQ(ChooseMatmulPath(t, 1, 8, 8), MatmulPath::kQuantGemv);
    EXPECT_EQ(ChooseMatmulPath(t, 8, 8, 8), MatmulPath::kQuantGemv);
    EXPECT_EQ(ChooseMatmulPath(t, 9, 8, 8), MatmulPath::kQuantDequantGemm);
    EXPECT_EQ(ChooseMatmulPath(t, 4096, int64_t{1} << 40, 8), MatmulPath::kQuantGemv);
  }
  EXPECT_EQ(ChooseMatmulPath(RL_DTYPE_BF16, 8, 8, 8), MatmulPath::kFloatKernel);
  EXPECT_EQ(ChooseMatmulPath(RL_DTYPE_BF16, 9, 8, 8), MatmulPath::kBf16PairGemm);
  EXPECT_EQ(ChooseMatmulPath(RL_DTYPE_F16, 512, 8, 8), MatmulPath::kFloatKernel);
  EXPECT_EQ(ChooseMatmulPath(RL_DTYPE_F32, 512, 8, 8), MatmulPath::kFloatKernel);
}

TEST(OpPlanTest, DequantChunksStayInTheirBound) {
  constexpr uint64_t kBound = uint64_t{32} << 20;
  // A small weight is one chunk.
  EXPECT_EQ(DequantChunkRows(4096, 4096, kBound), 4096);
  // 14336 x 4096: 4096 rows of 8 KiB fit 32 MiB exactly.
  EXPECT_EQ(DequantChunkRows(14336, 4096, kBound), 4096);
  // 128256 x 4096 (an output projection): 4096-row chunks.
  EXPECT_EQ(DequantChunkRows(128256, 4096, kBound), 4096);
  // K = 14336: 1170 rows fit; rounded down to a multiple of 64.
  const int64_t c = DequantChunkRows(4096, 14336, kBound);
  EXPECT_EQ(c, 1152);
  EXPECT_LE(static_cast<uint64_t>(c) * 14336 * 2, kBound);
  // A row larger than the bound still makes progress.
  EXPECT_EQ(DequantChunkRows(10, int64_t{1} << 25, kBound), 1);
  EXPECT_EQ(DequantChunkRows(100, 32, 64 * 32 * 2 + 100), 64);
  EXPECT_EQ(DequantChunkRows(50, 32, 32 * 32 * 2), 32);  // below 64: not rounded
}

TEST(OpPlanTest, ScratchGrowsInPowersOfTwoThenExactly) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  EXPECT_EQ(ScratchSize(0, kMiB, 64 * kMiB), kMiB);
  EXPECT_EQ(ScratchSize(1, kMiB, 64 * kMiB), kMiB);
  EXPECT_EQ(ScratchSize(kMiB + 1, kMiB, 64 * kMiB), 2 * kMiB);
  EXPECT_EQ(ScratchSize(40 * kMiB, kMiB, 64 * kMiB), 64 * kMiB);
  EXPECT_EQ(ScratchSize(64 * kMiB, kMiB, 64 * kMiB), 64 * kMiB);
  EXPECT_EQ(ScratchSize(64 * kMiB + 1, kMiB, 64 * kMiB), 64 * kMiB + 1);
}

}  // namespace
}  // namespace relayout::cuda
