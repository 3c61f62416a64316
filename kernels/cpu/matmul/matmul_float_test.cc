// Matmul on float weights (F32, F16, BF16) in row-major, row-group and BF16
// K-pair layouts: every ISA path, odd shapes, partial K-blocks, tails, with
// and without a pool, within the float bound of the reference; preferred and
// native layouts agree within the same bound.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_test_util.h"
#include "kernels/cpu/matmul/matmul_testing.h"

namespace relayout::kernels {
namespace {

using testing::AvailableIsas;
using testing::ErrorBound;
using testing::IsaGuard;
using testing::MakePreferred;
using testing::MakeWeight;
using testing::RandomFloats;
using testing::RunMatmul;
using testing::TestWeight;
using testing::TypeName;

struct LayoutCase {
  WeightLayout layout;
  int32_t group_rows;
  int32_t k_block;
};

// The policy's layouts (g8k8 for AVX2, g16k16 for AVX-512, K-pair g16) and
// parameters no fast kernel reads directly (decoded to a panel first).
constexpr LayoutCase kLayouts[] = {
    {WeightLayout::kRowMajor, 1, 0},   {WeightLayout::kRowGroup, 8, 8},
    {WeightLayout::kRowGroup, 16, 16}, {WeightLayout::kRowGroup, 4, 3},
    {WeightLayout::kRowGroup, 16, 8},  {WeightLayout::kBf16KPair, 16, 0},
    {WeightLayout::kBf16KPair, 8, 0},  {WeightLayout::kBf16KPair, 3, 0},
};

struct Shape {
  int64_t rows;
  int64_t cols;
};
constexpr Shape kShapes[] = {{1, 1},   {7, 5},   {16, 16},   {17, 33},
                             {33, 77}, {48, 64}, {4097, 24}, {20, 1031}};
constexpr int64_t kTokens[] = {1, 3, 17};

TEST(MatmulFloatTest, EveryIsaLayoutAndShapeIsWithinTheFloatBound) {
  IsaGuard guard;
  ThreadPool pool(3);
  std::mt19937 rng(17);
  for (WeightType type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
    for (const Shape& shape : kShapes) {
      TestWeight tw = MakeWeight(type, shape.rows, shape.cols, rng);
      for (const LayoutCase& lc : kLayouts) {
        if (lc.layout == WeightLayout::kBf16KPair && type != WeightType::kBF16) continue;
        if (lc.layout == WeightLayout::kRowMajor) {
          tw.preferred = tw.native;
        } else {
          MakePreferred(tw, lc.layout, lc.group_rows, lc.k_block);
        }
        ASSERT_TRUE(MatmulSupported(tw.preferred));
        for (int64_t tokens : kTokens) {
          if (shape.rows > 1000 && tokens > 3) continue;
          SCOPED_TRACE(::testing::Message()
                       << TypeName(type) << " layout=" << static_cast<int>(lc.layout)
                       << " G=" << lc.group_rows << " KB=" << lc.k_block << " N=" << shape.rows
                       << " K=" << shape.cols << " T=" << tokens);
          const std::vector<float> x = RandomFloats(static_cast<size_t>(tokens * shape.cols), rng);
          std::vector<float> ref(static_cast<size_t>(tokens * shape.rows));
          ASSERT_TRUE(MatmulReference(tw.native, x.data(), tokens, ref.data()));
          for (MatmulIsa isa : AvailableIsas()) {
            SCOPED_TRACE(MatmulIsaName(isa));
            ASSERT_TRUE(SetMatmulIsaForTesting(isa));
            ExpectWithinBound(tw, x, tokens, RunMatmul(tw.preferred, x, tokens, nullptr), ref);
            ExpectWithinBound(tw, x, tokens, RunMatmul(tw.preferred, x, tokens, &pool), ref);
          }
        }
      }
    }
  }
}

// The SmolLM2-like shape with the policy's layouts: native and preferred runs
// agree with each other within the bound, with 64 tokens (the GEMM path with
// several register tiles and token blocks).
TEST(MatmulFloatTest, PreferredMatchesNativeOnAPrefillBatch) {
  IsaGuard guard;
  ThreadPool pool(2);
  std::mt19937 rng(23);
  const int64_t tokens = 64;
  for (WeightType type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
    TestWeight tw = MakeWeight(type, 192, 576, rng);
    const std::vector<float> x = RandomFloats(static_cast<size_t>(tokens * 576), rng);
    std::vector<float> ref(static_cast<size_t>(tokens * 192));
    ASSERT_TRUE(MatmulReference(tw.native, x.data(), tokens, ref.data()));
    for (MatmulIsa isa : AvailableIsas()) {
      ASSERT_TRUE(SetMatmulIsaForTesting(isa));
      SCOPED_TRACE(::testing::Message() << TypeName(type) << " " << MatmulIsaName(isa));
      ExpectWithinBound(tw, x, tokens, RunMatmul(tw.native, x, tokens, &pool), ref);
      for (const LayoutCase& lc :
           {LayoutCase{WeightLayout::kRowGroup, 16, 16}, LayoutCase{WeightLayout::kRowGroup, 8, 8},
            LayoutCase{WeightLayout::kBf16KPair, 16, 0}}) {
        if (lc.layout == WeightLayout::kBf16KPair && type != WeightType::kBF16) continue;
        MakePreferred(tw, lc.layout, lc.group_rows, lc.k_block);
        ExpectWithinBound(tw, x, tokens, RunMatmul(tw.preferred, x, tokens, &pool), ref);
      }
    }
  }
}

// The AVX-512 float GEMM (F16 and BF16 from kFloatGemmMinTokens tokens) sums
// each row and token in one float accumulator over K ascending, so its bits
// are those of a plain fma loop: for every layout it reads, with a partial
// token group (25 = 12 + 12 + 1, 40), an odd tile at the end (50 rows = a
// pair, a single and two rows), and one or two threads.
TEST(MatmulFloatTest, Avx512FloatGemmIsASequentialFmaSum) {
  if (!MatmulIsaAvailable(MatmulIsa::kAvx512)) GTEST_SKIP() << "no AVX-512 here";
  IsaGuard guard;
  ASSERT_TRUE(SetMatmulIsaForTesting(MatmulIsa::kAvx512));
  ThreadPool pool(2);
  std::mt19937 rng(31);
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    for (const Shape& shape : {Shape{50, 64}, Shape{33, 2048}, Shape{96, 160}}) {
      TestWeight tw = MakeWeight(type, shape.rows, shape.cols, rng);
      for (int64_t tokens : {16, 25, 40}) {
        const std::vector<float> x = RandomFloats(static_cast<size_t>(tokens * shape.cols), rng);
        std::vector<float> want(static_cast<size_t>(tokens * shape.rows));
        for (int64_t t = 0; t < tokens; ++t) {
          for (int64_t n = 0; n < shape.rows; ++n) {
            float acc = 0.0f;
            for (int64_t j = 0; j < shape.cols; ++j) {
              acc = std::fma(tw.values[n * shape.cols + j], x[t * shape.cols + j], acc);
            }
            want[t * shape.rows + n] = acc;
          }
        }
        for (const LayoutCase& lc : {LayoutCase{WeightLayout::kRowMajor, 1, 0},
                                     LayoutCase{WeightLayout::kRowGroup, 16, 16},
                                     LayoutCase{WeightLayout::kBf16KPair, 16, 0}}) {
          if (lc.layout == WeightLayout::kBf16KPair && type != WeightType::kBF16) continue;
          if (lc.layout == WeightLayout::kRowMajor) {
            tw.preferred = tw.native;
          } else {
            MakePreferred(tw, lc.layout, lc.group_rows, lc.k_block);
          }
          SCOPED_TRACE(::testing::Message()
                       << TypeName(type) << " layout=" << static_cast<int>(lc.layout)
                       << " N=" << shape.rows << " K=" << shape.cols << " T=" << tokens);
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            const std::vector<float> got = RunMatmul(tw.preferred, x, tokens, p);
            ASSERT_EQ(got.size(), want.size());
            for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "at " << i;
          }
        }
      }
    }
  }
}

// K-pair with vdpbf16ps splits x into two bf16: inputs that bf16 cannot hold
// exactly must still come out with float accuracy.
TEST(MatmulFloatTest, Bf16KPairKeepsFloatPrecisionOfX) {
  IsaGuard guard;
  std::mt19937 rng(29);
  TestWeight tw = MakeWeight(WeightType::kBF16, 32, 256, rng);
  MakePreferred(tw, WeightLayout::kBf16KPair, 16, 0);
  std::vector<float> x = RandomFloats(256, rng);
  for (float& v : x) v = 1.0f + v * 0x1p-10f;  // differences below bf16's resolution
  std::vector<float> ref(32);
  ASSERT_TRUE(MatmulReference(tw.native, x.data(), 1, ref.data()));
  for (MatmulIsa isa : AvailableIsas()) {
    ASSERT_TRUE(SetMatmulIsaForTesting(isa));
    SCOPED_TRACE(MatmulIsaName(isa));
    ExpectWithinBound(tw, x, 1, RunMatmul(tw.preferred, x, 1, nullptr), ref);
  }
}

}  // namespace
}  // namespace relayout::kernels
