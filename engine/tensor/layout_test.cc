#include "engine/tensor/layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "engine/tensor/tensor_role.h"

namespace relayout {
namespace {

using ::testing::HasSubstr;

TEST(LayoutTest, NamesRoundTripThroughParsing) {
  const Layout layouts[] = {Layout::RowMajor(),
                            Layout::GgufBlocks(),
                            Layout::RowGroupInterleave(8, 8),
                            Layout::RowGroupInterleave(16, 16),
                            Layout::RowGroupInterleave(1, 4096),
                            Layout::QuantRowGroupInterleave(8),
                            Layout::Bf16KPair(16),
                            Layout::Transposed(),
                            Layout::WidenedF32()};
  for (const Layout& l : layouts) {
    Result<Layout> parsed = ParseLayoutName(l.Name());
    ASSERT_TRUE(parsed.ok()) << l.Name() << ": " << parsed.status();
    EXPECT_EQ(*parsed, l) << l.Name();
  }
}

TEST(LayoutTest, NamesAreTheDocumentedOnes) {
  EXPECT_EQ(Layout::RowGroupInterleave(8, 8).Name(), "rowgroup-g8k8");
  EXPECT_EQ(Layout::QuantRowGroupInterleave(8).Name(), "q-rowgroup-g8");
  EXPECT_EQ(Layout::Bf16KPair().Name(), "bf16-kpair-g16");
  EXPECT_EQ(Layout::Transposed().Name(), "transposed");
  EXPECT_EQ(Layout::WidenedF32().Name(), "f32-widened");
  EXPECT_EQ(Layout::RowMajor().Name(), "row-major");
  EXPECT_EQ(Layout::GgufBlocks().Name(), "gguf-blocks");
}

TEST(LayoutTest, UnknownOrMalformedNamesAreInvalidArgumentListingValidNames) {
  for (const char* bad :
       {"", "native", "rowgroup", "rowgroup-g8", "rowgroup-g8k", "rowgroup-g08k8", "rowgroup-g0k8",
        "rowgroup-g8k8x", "rowgroup-g257k8", "rowgroup-g8k4097", "q-rowgroup-g", "bf16-kpair-g-1",
        "rowgroup-g99999999999999999999k8", "ROW-MAJOR"}) {
    Result<Layout> r = ParseLayoutName(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().IsInvalidArgument());
    EXPECT_THAT(r.status().message(), HasSubstr(std::string("\"") + bad + "\""));
    EXPECT_THAT(r.status().message(), HasSubstr("q-rowgroup-g<G>"));
  }
}

TEST(LayoutTest, CommonLayoutsAreCommonAndPreferredAreNot) {
  EXPECT_EQ(CommonLayoutFor(DType::kF32), Layout::RowMajor());
  EXPECT_EQ(CommonLayoutFor(DType::kQ4_1), Layout::GgufBlocks());
  EXPECT_TRUE(Layout::RowMajor().IsCommon());
  EXPECT_TRUE(Layout::GgufBlocks().IsCommon());
  EXPECT_FALSE(Layout::RowGroupInterleave(8, 8).IsCommon());
  EXPECT_FALSE(Layout::Transposed().IsCommon());
  EXPECT_NE(Layout::RowGroupInterleave(8, 8), Layout::RowGroupInterleave(8, 16));
}

TEST(LayoutTest, LayoutsApplyOnlyToTheirDtypesAndTwoDimensionalShapes) {
  const std::vector<int64_t> mat = {64, 64};
  const std::vector<int64_t> vec = {64};
  EXPECT_TRUE(CheckLayoutApplies(Layout::RowGroupInterleave(8, 8), DType::kF16, mat).ok());
  EXPECT_TRUE(CheckLayoutApplies(Layout::QuantRowGroupInterleave(8), DType::kQ4_1, mat).ok());
  EXPECT_TRUE(CheckLayoutApplies(Layout::Bf16KPair(), DType::kBF16, mat).ok());
  EXPECT_TRUE(CheckLayoutApplies(Layout::RowMajor(), DType::kF32, vec).ok());

  const Status s = CheckLayoutApplies(Layout::QuantRowGroupInterleave(8), DType::kF32, mat);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_THAT(s.message(), HasSubstr("q-rowgroup-g8 does not apply to F32 [64, 64]"));
  EXPECT_FALSE(CheckLayoutApplies(Layout::Bf16KPair(), DType::kF16, mat).ok());
  EXPECT_FALSE(CheckLayoutApplies(Layout::RowGroupInterleave(8, 8), DType::kF32, vec).ok());
  EXPECT_FALSE(CheckLayoutApplies(Layout::RowMajor(), DType::kQ8_0, mat).ok());
  EXPECT_FALSE(CheckLayoutApplies(Layout::GgufBlocks(), DType::kF32, mat).ok());
  EXPECT_FALSE(CheckLayoutApplies(Layout::RowGroupInterleave(0, 8), DType::kF32, mat).ok());
  // K-quants: whole super-blocks of 256 along K.
  EXPECT_FALSE(CheckLayoutApplies(Layout::QuantRowGroupInterleave(8), DType::kQ4_K, mat).ok());
  const std::vector<int64_t> super_blocks = {64, 256};
  const std::vector<int64_t> partial_block = {64, 48};
  EXPECT_TRUE(
      CheckLayoutApplies(Layout::QuantRowGroupInterleave(8), DType::kQ4_K, super_blocks).ok());
  EXPECT_FALSE(
      CheckLayoutApplies(Layout::QuantRowGroupInterleave(8), DType::kQ4_0, partial_block).ok());
}

TEST(TensorRoleTest, NamesRoundTripAndMatmulWeightsAreTheProjections) {
  for (int i = 0; i <= static_cast<int>(TensorRole::kOther); ++i) {
    const auto role = static_cast<TensorRole>(i);
    EXPECT_EQ(TensorRoleFromName(TensorRoleName(role)), role) << TensorRoleName(role);
  }
  EXPECT_EQ(TensorRoleName(TensorRole::kFfnGate), "ffn_gate");
  EXPECT_EQ(TensorRoleName(TensorRole::kAttnQBias), "attn_q_bias");
  EXPECT_FALSE(TensorRoleFromName("blk.0.attn_q").has_value());
  EXPECT_TRUE(IsMatmulWeight(TensorRole::kAttnQ));
  EXPECT_TRUE(IsMatmulWeight(TensorRole::kOutput));
  EXPECT_FALSE(IsMatmulWeight(TensorRole::kTokenEmbd));
  EXPECT_FALSE(IsMatmulWeight(TensorRole::kAttnNorm));
  EXPECT_FALSE(IsMatmulWeight(TensorRole::kFfnUpBias));
}

}  // namespace
}  // namespace relayout
