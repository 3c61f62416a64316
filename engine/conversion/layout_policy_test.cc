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

TEST(LayoutPolicyTest, TensorClassesCoverTheMatmulWeightsAndRoundTripTheirNames) {
  EXPECT_EQ(TensorClassOf(TensorRole::kAttnQ), TensorClass::kAttnQkv);
  EXPECT_EQ(TensorClassOf(TensorRole::kAttnV), TensorClass::kAttnQkv);
  EXPECT_EQ(TensorClassOf(TensorRole::kAttnOutput), TensorClass::kAttnOutput);
  EXPECT_EQ(TensorClassOf(TensorRole::kFfnUp), TensorClass::kFfnGateUp);
  EXPECT_EQ(TensorClassOf(TensorRole::kFfnDown), TensorClass::kFfnDown);
  EXPECT_EQ(TensorClassOf(TensorRole::kOutput), TensorClass::kOutput);
  EXPECT_EQ(TensorClassOf(TensorRole::kTokenEmbd), std::nullopt);
  EXPECT_EQ(TensorClassOf(TensorRole::kAttnQBias), std::nullopt);
  for (int i = 0; i < kNumTensorClasses; ++i) {
    const auto c = static_cast<TensorClass>(i);
    EXPECT_EQ(TensorClassFromName(TensorClassName(c)), c);
  }
  EXPECT_EQ(TensorClassName(TensorClass::kFfnGateUp), "ffn_gate_up");
  EXPECT_EQ(TensorClassFromName("ffn_gate"), std::nullopt);
}

TEST(LayoutPolicyTest, ClassOverrideAppliesToItsClassAndTheBaseDecidesTheRest) {
  const LayoutPolicy p = Make(Avx2(), "auto,ffn_down=rowgroup-g16k16,attn_qkv=native");
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kFfnDown, kMat), Layout::RowGroupInterleave(16, 16));
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kAttnK, kMat), Layout::RowMajor());
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kAttnQ, kMat), Layout::GgufBlocks());
  EXPECT_EQ(p.Choose(DType::kF32, TensorRole::kFfnUp, kMat), Layout::RowGroupInterleave(8, 8));
  // Where the entry's layout does not apply, the base's choice stands.
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnDown, kMat), Layout::QuantRowGroupInterleave(8));
  // Not a matmul weight: never overridden.
  const LayoutPolicy embd = Make(Avx2(), "native,output=q-rowgroup-g8");
  EXPECT_EQ(embd.Choose(DType::kQ8_0, TensorRole::kTokenEmbd, kMat), Layout::GgufBlocks());
  EXPECT_EQ(embd.Choose(DType::kQ8_0, TensorRole::kOutput, kMat),
            Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(embd.Choose(DType::kQ8_0, TensorRole::kFfnDown, kMat), Layout::GgufBlocks());
  EXPECT_EQ(embd.Choose(DType::kQ8_0, TensorRole::kOutput, kVec), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, DtypeEntryWinsOverTheClassEntryAndALaterClassEntryDropsIt) {
  const LayoutPolicy p = Make(Avx2(), "native,ffn_down=q-rowgroup-g4,ffn_down:Q4_0=q-rowgroup-g8");
  EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat), Layout::QuantRowGroupInterleave(8));
  EXPECT_EQ(p.Choose(DType::kQ4_1, TensorRole::kFfnDown, kMat), Layout::QuantRowGroupInterleave(4));
  const LayoutPolicy later = Make(Avx2(), "auto,ffn_down:Q4_0=q-rowgroup-g16,ffn_down=native");
  EXPECT_EQ(later.mode_name(), "auto,ffn_down=native");
  EXPECT_EQ(later.Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat), Layout::GgufBlocks());
}

TEST(LayoutPolicyTest, ModeNameRoundTripsThroughCreate) {
  for (std::string_view mode :
       {"auto", "native", "rowgroup-g4k32", "auto,ffn_down=rowgroup-g8k8",
        "native,attn_qkv:Q4_1=q-rowgroup-g8,output=native",
        "auto,ffn_gate_up:BF16=bf16-kpair-g16,attn_output:F32=rowgroup-g16k16"}) {
    const LayoutPolicy p = Make(Avx512(), mode);
    EXPECT_EQ(p.mode_name(), mode);
    const LayoutPolicy again = Make(Avx512(), p.mode_name());
    EXPECT_EQ(again.mode_name(), mode);
    for (DType d : {DType::kF32, DType::kBF16, DType::kQ4_1}) {
      for (TensorRole r : {TensorRole::kAttnQ, TensorRole::kFfnUp, TensorRole::kOutput}) {
        EXPECT_EQ(again.Choose(d, r, kMat), p.Choose(d, r, kMat)) << mode;
      }
    }
  }
  // "row-major" as an entry's layout means native and prints so.
  EXPECT_EQ(Make(Avx2(), "auto,output=row-major").mode_name(), "auto,output=native");
}

TEST(LayoutPolicyTest, SetOverrideGivesWhatTheGrammarGives) {
  LayoutPolicy p = Make(Avx2());
  p.SetOverride({TensorClass::kFfnDown, DType::kQ4_0, Layout::QuantRowGroupInterleave(16)});
  p.SetOverride({TensorClass::kOutput, std::nullopt, Layout::GgufBlocks()});
  EXPECT_EQ(p.mode_name(), "auto,ffn_down:Q4_0=q-rowgroup-g16,output=native");
  EXPECT_EQ(p.base_name(), "auto");
  EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kFfnDown, kMat),
            Layout::QuantRowGroupInterleave(16));
  EXPECT_EQ(p.Choose(DType::kQ4_0, TensorRole::kOutput, kMat), Layout::GgufBlocks());
  ASSERT_EQ(p.overrides().size(), 2u);
  EXPECT_EQ(p.overrides()[0].ToString(), "ffn_down:Q4_0=q-rowgroup-g16");
}

TEST(LayoutPolicyTest, BadEntriesAreInvalidArgumentNamingTheValueAndListingValidOnes) {
  const auto error = [](std::string_view mode) {
    Result<LayoutPolicy> p = LayoutPolicy::Create(Avx2(), mode);
    EXPECT_FALSE(p.ok()) << mode;
    EXPECT_TRUE(p.status().IsInvalidArgument()) << mode;
    return std::string(p.status().message());
  };
  std::string m = error("auto,ffn=rowgroup-g8k8");
  EXPECT_THAT(m, HasSubstr("unknown tensor class \"ffn\""));
  EXPECT_THAT(m, HasSubstr("attn_qkv, attn_output, ffn_gate_up, ffn_down, output"));
  m = error("auto,ffn_down=fast");
  EXPECT_THAT(m, HasSubstr("unknown layout \"fast\""));
  EXPECT_THAT(m, HasSubstr("native or a layout name"));
  EXPECT_THAT(m, HasSubstr("q-rowgroup-g<G>"));
  EXPECT_THAT(error("auto,ffn_down:Q9=native"), HasSubstr("unknown dtype \"Q9\""));
  EXPECT_THAT(error("auto,ffn_down"), HasSubstr("is not CLASS=LAYOUT"));
  EXPECT_THAT(error("auto,"), HasSubstr("is not CLASS=LAYOUT"));
  EXPECT_THAT(error("fastest,ffn_down=native"), HasSubstr("unknown layout \"fastest\""));
  EXPECT_THAT(error("tuned"), HasSubstr("measured at load"));
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
