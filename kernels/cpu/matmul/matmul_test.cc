// Matmul on quantized weights (every GGUF type it reads): within the stated error
// bound of the float reference, and bit for bit equal across ISAs, layouts,
// thread counts and token batching (the algorithm of matmul_internal.h).
#include "kernels/cpu/matmul/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

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

struct Shape {
  int64_t rows;
  int64_t cols;
};

// The 32-element block types.
constexpr WeightType kQuantTypes[] = {WeightType::kQ8_0, WeightType::kQ4_0, WeightType::kQ4_1,
                                      WeightType::kQ5_0, WeightType::kQ5_1, WeightType::kIQ4_NL};
constexpr WeightType kKQuantTypes[] = {WeightType::kQ2_K, WeightType::kQ3_K, WeightType::kQ4_K,
                                       WeightType::kQ5_K, WeightType::kQ6_K};
constexpr Shape kKShapes[] = {{1, 256}, {9, 512}, {33, 768}, {300, 256}};
// Group sizes: 8 (the fast group-block kernels), others through row tiles.
constexpr int32_t kGroups[] = {8, 3, 16};
constexpr Shape kShapes[] = {{1, 32}, {7, 64}, {8, 32}, {17, 96}, {40, 576}, {4097, 64}};
// 17 and 50 tokens: the AVX-512 GEMMs (from 8 tokens for the K-quants, 48
// for the 32-element types), with a partial register tile of 8 tokens.
constexpr int64_t kTokens[] = {1, 3, 17, 50};

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

// Every ISA, layout, shape and token count of `types`: the scalar path is the
// exact reference of the SIMD ones, and the float reference bounds them all.
template <size_t kTypes, size_t kShapeCount>
void ExpectEveryIsaAndLayoutMatchesScalar(const WeightType (&types)[kTypes],
                                          const Shape (&shapes)[kShapeCount], uint32_t seed,
                                          const std::vector<int64_t>& token_counts = {
                                              std::begin(kTokens), std::end(kTokens)}) {
  IsaGuard guard;
  ThreadPool pool(3);
  std::mt19937 rng(seed);
  for (WeightType type : types) {
    for (const Shape& shape : shapes) {
      TestWeight tw = MakeWeight(type, shape.rows, shape.cols, rng);
      for (int64_t tokens : token_counts) {
        if (shape.rows > 1000 && tokens > 3) continue;  // keeps the scalar path quick
        SCOPED_TRACE(::testing::Message() << TypeName(type) << " N=" << shape.rows
                                          << " K=" << shape.cols << " T=" << tokens);
        const std::vector<float> x =
            RandomFloats(static_cast<size_t>(tokens * shape.cols), rng, 2.0f);
        std::vector<float> ref(static_cast<size_t>(tokens * shape.rows));
        ASSERT_TRUE(MatmulReference(tw.native, x.data(), tokens, ref.data()));
        ASSERT_TRUE(SetMatmulIsaForTesting(MatmulIsa::kScalar));
        const std::vector<float> scalar = RunMatmul(tw.native, x, tokens, nullptr);
        ExpectWithinBound(tw, x, tokens, scalar, ref);
        for (MatmulIsa isa : AvailableIsas()) {
          SCOPED_TRACE(MatmulIsaName(isa));
          ASSERT_TRUE(SetMatmulIsaForTesting(isa));
          ExpectSameBits(RunMatmul(tw.native, x, tokens, nullptr), scalar, "native, no pool");
          ExpectSameBits(RunMatmul(tw.native, x, tokens, &pool), scalar, "native, pool");
          for (int32_t g : kGroups) {
            MakePreferred(tw, WeightLayout::kQuantRowGroup, g, 0);
            SCOPED_TRACE(::testing::Message() << "q-rowgroup-g" << g);
            ExpectSameBits(RunMatmul(tw.preferred, x, tokens, nullptr), scalar, "grouped");
            ExpectSameBits(RunMatmul(tw.preferred, x, tokens, &pool), scalar, "grouped, pool");
          }
        }
      }
    }
  }
}

TEST(MatmulQuantTest, EveryIsaAndLayoutMatchesScalarBitForBitAndReferenceWithinBound) {
  ExpectEveryIsaAndLayoutMatchesScalar(kQuantTypes, kShapes, 7);
}

// The K-quants: the same contract, with Q8_K activations, in the file layout
// and in row groups of super-blocks.
TEST(MatmulQuantTest, KQuantsMatchScalarBitForBitAndReferenceWithinBound) {
  ExpectEveryIsaAndLayoutMatchesScalar(kKQuantTypes, kKShapes, 17);
}

// The AVX-512 K-quant GEMM (from 8 tokens) unpacks row panels of about 1 MiB
// and runs token blocks of about 256 KiB of activations: at K = 8192 a panel
// is 80 rows and a block 24 tokens, so 90 rows and 33 tokens cross both
// boundaries, with a partial tile and a partial register tile of tokens.
// Q4_K and Q6_K: 32- and 16-element sub-blocks, with and without dmin.
TEST(MatmulQuantTest, KQuantGemmCrossesPanelsAndTokenBlocks) {
  constexpr WeightType kTypes[] = {WeightType::kQ4_K, WeightType::kQ6_K};
  constexpr Shape kLong[] = {{90, 8192}};
  ExpectEveryIsaAndLayoutMatchesScalar(kTypes, kLong, 23, {33});
}

// The same GEMM over the 32-element types: at K = 8192 a panel is 96 rows and
// a token block 16 tokens, so 100 rows and 50 tokens cross both (Q4_1: a
// min; IQ4_NL: a table; every type's unpacking is covered at T = 50 above).
TEST(MatmulQuantTest, QuantGemmCrossesPanelsAndTokenBlocks) {
  constexpr WeightType kTypes[] = {WeightType::kQ4_1, WeightType::kIQ4_NL};
  constexpr Shape kLong[] = {{100, 8192}};
  ExpectEveryIsaAndLayoutMatchesScalar(kTypes, kLong, 29, {50});
}

// K-quants need whole super-blocks, in their file layout or row groups.
TEST(MatmulQuantTest, KQuantsRejectPartialSuperBlocksAndFloatLayouts) {
  std::vector<uint8_t> bytes(144 * 4);
  MatmulWeight w{bytes.data(), WeightType::kQ4_K, WeightLayout::kRowMajor, 2, 384, 1, 0};
  EXPECT_FALSE(MatmulSupported(w));
  w.cols = 512;
  EXPECT_TRUE(MatmulSupported(w));
  EXPECT_EQ(MatmulWeightBytes(w), 2 * 2 * 144);
  w.layout = WeightLayout::kQuantRowGroup;
  w.group_rows = 8;
  EXPECT_TRUE(MatmulSupported(w));
  w.layout = WeightLayout::kRowGroup;
  w.k_block = 8;
  EXPECT_FALSE(MatmulSupported(w));
}

// A token's result does not depend on the batch it is in (the Q8 rounding is
// per token, and the kernels' per-row sums are per token).
TEST(MatmulQuantTest, BatchedTokensEqualOneAtATime) {
  IsaGuard guard;
  std::mt19937 rng(11);
  TestWeight tw = MakeWeight(WeightType::kQ4_1, 24, 128, rng);
  MakePreferred(tw, WeightLayout::kQuantRowGroup, 8, 0);
  const int64_t tokens = 9;
  const std::vector<float> x = RandomFloats(static_cast<size_t>(tokens * 128), rng);
  for (MatmulIsa isa : AvailableIsas()) {
    SCOPED_TRACE(MatmulIsaName(isa));
    ASSERT_TRUE(SetMatmulIsaForTesting(isa));
    const std::vector<float> batched = RunMatmul(tw.preferred, x, tokens, nullptr);
    for (int64_t t = 0; t < tokens; ++t) {
      const std::vector<float> xt(x.begin() + t * 128, x.begin() + (t + 1) * 128);
      const std::vector<float> one = RunMatmul(tw.preferred, xt, 1, nullptr);
      EXPECT_EQ(std::memcmp(one.data(), &batched[static_cast<size_t>(t * 24)], 24 * 4), 0)
          << "token " << t;
    }
  }
}

// A large activation in one block must not cost precision in the others:
// scales are per block of 32, so block 1's result stays within its own bound.
TEST(MatmulQuantTest, OutlierBlockDoesNotDegradeOtherBlocks) {
  std::mt19937 rng(3);
  TestWeight tw = MakeWeight(WeightType::kQ8_0, 8, 64, rng);
  std::vector<float> x = RandomFloats(64, rng, 1e-3f);
  x[5] = 1e4f;
  std::vector<float> ref(8);
  ASSERT_TRUE(MatmulReference(tw.native, x.data(), 1, ref.data()));
  const std::vector<float> y = RunMatmul(tw.native, x, 1, nullptr);
  ExpectWithinBound(tw, x, 1, y, ref);
}

// Zero and tiny activation blocks quantize to zero and give exact zeros.
TEST(MatmulQuantTest, ZeroAndTinyActivationsGiveZero) {
  IsaGuard guard;
  std::mt19937 rng(5);
  TestWeight tw = MakeWeight(WeightType::kQ4_0, 9, 64, rng);
  std::vector<float> x(64, 0.0f);
  x[40] = 1e-35f;
  for (MatmulIsa isa : AvailableIsas()) {
    ASSERT_TRUE(SetMatmulIsaForTesting(isa));
    for (float v : RunMatmul(tw.native, x, 1, nullptr)) EXPECT_EQ(v, 0.0f) << MatmulIsaName(isa);
  }
}

TEST(MatmulQuantTest, RejectsKNotMultipleOf32AndBadArguments) {
  std::vector<uint8_t> bytes(34 * 4);
  std::vector<float> x(64), y(8);
  MatmulWeight w{bytes.data(), WeightType::kQ8_0, WeightLayout::kRowMajor, 2, 48, 1, 0};
  EXPECT_FALSE(MatmulSupported(w));
  EXPECT_FALSE(Matmul(w, x.data(), 1, y.data(), nullptr));
  w.cols = 64;
  EXPECT_TRUE(MatmulSupported(w));
  EXPECT_FALSE(Matmul(w, x.data(), 0, y.data(), nullptr));
  EXPECT_FALSE(Matmul(w, nullptr, 1, y.data(), nullptr));
  EXPECT_FALSE(Matmul(w, x.data(), 1, nullptr, nullptr));
  w.layout = WeightLayout::kRowGroup;
  w.group_rows = 8;
  w.k_block = 8;
  EXPECT_FALSE(MatmulSupported(w));
  w.layout = WeightLayout::kQuantRowGroup;
  w.group_rows = 0;
  EXPECT_FALSE(MatmulSupported(w));
}

TEST(MatmulIsaTest, ForcingAnUnavailableIsaFailsAndScalarAlwaysWorks) {
  IsaGuard guard;
  EXPECT_TRUE(SetMatmulIsaForTesting(MatmulIsa::kScalar));
  EXPECT_EQ(ActiveMatmulIsa(), MatmulIsa::kScalar);
  EXPECT_TRUE(SetMatmulIsaForTesting(MatmulIsa::kAuto));
  EXPECT_NE(ActiveMatmulIsa(), MatmulIsa::kAuto);
  for (MatmulIsa isa : {MatmulIsa::kAvx2, MatmulIsa::kAvx512}) {
    if (!MatmulIsaAvailable(isa)) {
      EXPECT_FALSE(SetMatmulIsaForTesting(isa));
      EXPECT_NE(ActiveMatmulIsa(), isa);
    }
  }
}

}  // namespace
}  // namespace relayout::kernels
