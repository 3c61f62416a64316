#include "engine/conversion/layout_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace relayout {
namespace {

using ::testing::HasSubstr;

DeviceCaps NoSimd() { return DeviceCaps{}; }

DeviceCaps Avx2() {
  DeviceCaps caps;
  caps.cpu.avx2 = caps.cpu.fma = caps.cpu.f16c = true;
  return caps;
}

DeviceCaps Avx512() {
  DeviceCaps caps = Avx2();
  caps.cpu.avx512f = caps.cpu.avx512bw = caps.cpu.avx512vl = caps.cpu.avx512vnni = true;
  return caps;
}

DeviceCaps Avx512Bf16() {
  DeviceCaps caps = Avx512();
  caps.cpu.avx512bf16 = true;
  return caps;
}

LayoutPolicy Make(const DeviceCaps& caps, std::string_view mode = "auto") {
  Result<LayoutPolicy> p = LayoutPolicy::Create(caps, mode);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

const std::vector<int64_t> kMat = {576, 576};
const std::vector<int64_t> kVec = {576};

TEST(LayoutPolicyTest, WithoutAvx2EverythingStaysNative) {
  const LayoutPolicy p = Make(NoSimd());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQ, kMat), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnGate, kMat), Layout::GgufBlocks());
  EXPECT_EQ(p.Choose(DType::kBF16, TensorRole::kFfnUp, kMat), Layout::RowMajor());
}

TEST(LayoutPolicyTest, Avx2PicksEightRowGroups) {
  const LayoutPolicy p = Make(Avx2());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(8, 8));
  EXPECT_EQ(p.Choose(DType::kF16, TensorRole::kFfnDown, kMat), Layout::RowGroupInterleave(8, 8));
  EXPECT_EQ(p.Choose(DType::kBF16, TensorRole::kOutput, kMat), Layout::RowGroupInterleave(8, 8));
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnGate, kMat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ8_0, TensorRole::kAttnV, kMat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kAttnK, kMat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ5_0, TensorRole::kAttnK, kMat), Layout::QuantRowGroupInterleave(8));
  // The K-quants too, where K is whole super-blocks of 256; a K-quant tensor
  // whose K is not cannot exist, and no layout applies to it.
  const std::vector<int64_t> k_mat = {576, 512};
  EXPECT_EQ(p.Choose(DType::kQ4_K, TensorRole::kFfnUp, k_mat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ6_K, TensorRole::kOutput, k_mat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ4_K, TensorRole::kFfnUp, kMat), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, Avx2WithoutF16cWidensF16AndKeepsQuantNative) {
  DeviceCaps caps = Avx2();
  caps.cpu.f16c = false;
  const LayoutPolicy p = Make(caps);
  EXPECT_EQ(p.Choose(DType::kF16, TensorRole::kAttnQ, kMat), Layout::WidenedF32());
  EXPECT_EQ(p.Choose(DType::kQ8_0, TensorRole::kAttnQ, kMat), Layout::GgufBlocks());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(8, 8));
}

TEST(LayoutPolicyTest, Avx512PicksSixteenRowGroupsAndBf16PicksKPair) {
  const LayoutPolicy p = Make(Avx512());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(16, 16));
  EXPECT_EQ(p.Choose(DType::kBF16, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(16, 16));
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kAttnQ, kMat), Layout::QuantRowGroupInterleave(8));
  const LayoutPolicy bf = Make(Avx512Bf16());
  EXPECT_EQ(bf.Choose(DType::kBF16, TensorRole::kAttnQ, kMat), Layout::Bf16KPair(16));
  EXPECT_EQ(bf.Choose(DType::kF32, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(16, 16));
}

DeviceCaps Gpu(int major, int minor) {
  DeviceCaps caps = Avx512Bf16();  // the host's CPU does not matter
  caps.gpu_compute_major = major;
  caps.gpu_compute_minor = minor;
  return caps;
}

TEST(LayoutPolicyTest, GpuTakesQuantRowGroupsOfEightAndKeepsFloatsRowMajor) {
  for (const DeviceCaps& caps : {Gpu(8, 0), Gpu(9, 0)}) {
    const LayoutPolicy p = Make(caps);
    EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat),
              Layout::QuantRowGroupInterleave(8));
    EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kAttnQ, kMat), Layout::QuantRowGroupInterleave(8));
    EXPECT_EQ(p.Choose(DType::kQ8_0, TensorRole::kOutput, kMat),
              Layout::QuantRowGroupInterleave(8));
    // cuBLASLt's TN operand is the row-major [out, in] weight as stored.
    EXPECT_EQ(p.Choose(DType::kBF16, TensorRole::kAttnQ, kMat), Layout::RowMajor());
    EXPECT_EQ(p.Choose(DType::kF16, TensorRole::kFfnUp, kMat), Layout::RowMajor());
    EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kFfnUp, kMat), Layout::RowMajor());
    EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kTokenEmbd, kMat), Layout::GgufBlocks());
  }
  // Below sm_80 the backend has no kernels of its own for the group layout.
  EXPECT_EQ(Make(Gpu(7, 5)).Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat), Layout::GgufBlocks());
  // --layout native on a GPU: every tensor as stored.
  EXPECT_EQ(Make(Gpu(9, 0), "native").Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat),
            Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, EmbeddingsNormsBiasesAndVectorsStayNative) {
  const LayoutPolicy p = Make(Avx512Bf16());
  EXPECT_EQ(p.Choose(DType::kQ8_0, TensorRole::kTokenEmbd, kMat), Layout::GgufBlocks());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnNorm, kVec), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQBias, kVec), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnQ, kVec), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kOther, kMat), Layout::RowMajor());
  const std::vector<int64_t> k_mat = {512, 512};
  EXPECT_EQ(p.Choose(DType::kQ6_K, TensorRole::kTokenEmbd, k_mat), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, FewerRowsThanAGroupStayNative) {
  const LayoutPolicy p = Make(Avx512());
  const std::vector<int64_t> short_mat = {15, 64};
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnK, short_mat), Layout::RowMajor());
  const std::vector<int64_t> group_mat = {16, 64};
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnK, group_mat),
            Layout::RowGroupInterleave(16, 16));
}

TEST(LayoutPolicyTest, NativeOverrideKeepsEveryCommonLayout) {
  const LayoutPolicy p = Make(Avx512Bf16(), "native");
  EXPECT_EQ(p.mode_name(), "native");
  EXPECT_EQ(p.Choose(DType::kBF16, TensorRole::kAttnQ, kMat), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnUp, kMat), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, NamedOverrideForcesItsFamilyOnlyWhereItApplies) {
  const LayoutPolicy p = Make(NoSimd(), "q-rowgroup-g4");
  EXPECT_EQ(p.mode_name(), "q-rowgroup-g4");
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnUp, kMat), Layout::QuantRowGroupInterleave(4));
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kFfnUp, kMat), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kTokenEmbd, kMat), Layout::GgufBlocks());
  const LayoutPolicy rg = Make(Avx512(), "rowgroup-g4k32");
  EXPECT_EQ(rg.Choose(DType::kF16, TensorRole::kAttnQ, kMat), Layout::RowGroupInterleave(4, 32));
  EXPECT_EQ(rg.Choose(DType::kQ8_0, TensorRole::kAttnQ, kMat), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, UnknownOverrideIsInvalidArgumentListingValidValues) {
  Result<LayoutPolicy> p = LayoutPolicy::Create(Avx2(), "fastest");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.status().IsInvalidArgument());
  EXPECT_THAT(p.status().message(), HasSubstr("--layout \"fastest\""));
  EXPECT_THAT(p.status().message(), HasSubstr("auto, native"));
  EXPECT_THAT(p.status().message(), HasSubstr("bf16-kpair-g<G>"));
}

TEST(LayoutPolicyTest, SummaryGroupsTensorsByClassInRoleOrder) {
  const LayoutPolicy p = Make(Avx2());
  std::vector<TensorLayoutChoice> choices;
  for (int layer = 0; layer < 2; ++layer) {
    choices.push_back(
        {TensorRole::kFfnGate, DType::kQ4_1, p.Choose(DType::kQ4_1, TensorRole::kFfnGate, kMat)});
    choices.push_back(
        {TensorRole::kAttnNorm, DType::kF32, p.Choose(DType::kF32, TensorRole::kAttnNorm, kVec)});
  }
  choices.push_back(
      {TensorRole::kTokenEmbd, DType::kQ8_0, p.Choose(DType::kQ8_0, TensorRole::kTokenEmbd, kMat)});
  EXPECT_EQ(SummarizeLayoutChoices(choices),
            "token_embd Q8_0 -> native (1 tensor)\n"
            "attn_norm F32 -> native (2 tensors)\n"
            "ffn_gate Q4_1 -> q-rowgroup-g8 (2 tensors)\n");
}

TEST(LayoutPolicyTest, ChoicesOnThisMachineAlwaysApply) {
  const LayoutPolicy p = Make(DeviceCaps{kernels::DetectCpuFeatures()});
  for (DType d :
       {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    const Layout l = p.Choose(d, TensorRole::kFfnDown, kMat);
    EXPECT_TRUE(CheckLayoutApplies(l, d, kMat).ok()) << l.Name();
  }
}

}  // namespace
}  // namespace relayout
