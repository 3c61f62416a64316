#include "engine/conversion/layout_tuner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/device/cpu_device.h"

namespace relayout {
namespace {

using ::testing::HasSubstr;

DeviceCaps Avx2() {
  DeviceCaps caps;
  caps.cpu.avx2 = caps.cpu.fma = caps.cpu.f16c = true;
  return caps;
}

// Two layers of a small model: Q4_1 attention and FFN, an F32 ffn_down, a
// Q8_0 head; plus an embedding and a norm, which are not tuned.
std::vector<TunableTensor> SmallModel() {
  std::vector<TunableTensor> t;
  for (int layer = 0; layer < 2; ++layer) {
    t.push_back({TensorRole::kAttnQ, DType::kQ4_1, {128, 128}});
    t.push_back({TensorRole::kAttnK, DType::kQ4_1, {32, 128}});
    t.push_back({TensorRole::kAttnOutput, DType::kQ4_1, {128, 128}});
    t.push_back({TensorRole::kFfnUp, DType::kQ4_1, {256, 128}});
    t.push_back({TensorRole::kFfnDown, DType::kF32, {128, 256}});
  }
  t.push_back({TensorRole::kOutput, DType::kQ8_0, {512, 128}});
  t.push_back({TensorRole::kTokenEmbd, DType::kQ8_0, {512, 128}});
  t.push_back({TensorRole::kAttnNorm, DType::kF32, {128}});
  return t;
}

const ClassTuning* Find(const LayoutTuningReport& r, TensorClass c, DType d) {
  for (const ClassTuning& t : r.classes) {
    if (t.tensor_class == c && t.dtype == d) return &t;
  }
  return nullptr;
}

TEST(LayoutTunerTest, MeasuresEveryClassAndDtypeAndChoosesTheLowestScore) {
  CpuDevice device;
  TuningOptions options;
  options.max_seconds = 1.0;
  LayoutTuningReport report;
  Result<LayoutPolicy> policy = TuneLayouts(SmallModel(), Avx2(), &device, options, &report);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(report.device, "cpu");
  EXPECT_LT(report.total_seconds, options.max_seconds);
  ASSERT_EQ(report.classes.size(), 5u);
  // Class order, then dtype order.
  EXPECT_EQ(report.classes[0].tensor_class, TensorClass::kAttnQkv);
  EXPECT_EQ(report.classes[4].tensor_class, TensorClass::kOutput);

  const ClassTuning* qkv = Find(report, TensorClass::kAttnQkv, DType::kQ4_1);
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->tensors, 4);
  EXPECT_EQ(qkv->rows, 128);  // the largest of q and k
  EXPECT_EQ(qkv->timed_rows, 128);
  ASSERT_EQ(qkv->candidates.size(), 2u);
  EXPECT_EQ(qkv->candidates[0].layout, "native");
  EXPECT_EQ(qkv->candidates[1].layout, "q-rowgroup-g8");

  const ClassTuning* down = Find(report, TensorClass::kFfnDown, DType::kF32);
  ASSERT_NE(down, nullptr);
  ASSERT_EQ(down->candidates.size(), 3u);
  EXPECT_EQ(down->candidates[1].layout, "rowgroup-g8k8");
  EXPECT_EQ(down->candidates[2].layout, "rowgroup-g16k16");

  for (const ClassTuning& c : report.classes) {
    EXPECT_TRUE(c.measured) << TensorClassName(c.tensor_class);
    const CandidateTiming* best = nullptr;
    for (const CandidateTiming& t : c.candidates) {
      EXPECT_GT(t.decode_seconds, 0);
      if (std::isinf(t.score)) {  // given up: 4x the fastest decode so far
        EXPECT_EQ(t.prefill_seconds, 0);
        EXPECT_NE(t.layout, c.chosen);
        continue;
      }
      EXPECT_GT(t.prefill_seconds, 0);
      EXPECT_DOUBLE_EQ(t.score, t.decode_seconds + t.prefill_seconds / 64);
      if (best == nullptr || t.score < best->score) best = &t;
    }
    ASSERT_NE(best, nullptr);
    EXPECT_EQ(c.chosen, best->layout);
  }
  // The policy says what the report says, and round-trips.
  EXPECT_EQ(report.mode, policy->mode_name());
  const std::vector<int64_t> shape = {256, 128};
  const Layout up = policy->Choose(DType::kQ4_1, TensorRole::kFfnGate, shape);
  EXPECT_EQ(up.IsCommon() ? "native" : up.Name(),
            Find(report, TensorClass::kFfnGateUp, DType::kQ4_1)->chosen);
  Result<LayoutPolicy> again = LayoutPolicy::Create(Avx2(), policy->mode_name());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Choose(DType::kQ4_1, TensorRole::kFfnGate, shape), up);
  // Not a matmul weight: native, as always.
  EXPECT_EQ(policy->Choose(DType::kQ8_0, TensorRole::kTokenEmbd, shape), Layout::GgufBlocks());
}

TEST(LayoutTunerTest, WhenTheTimeRunsOutTheRestKeepAutosChoiceUnmeasured) {
  CpuDevice device;
  TuningOptions options;
  options.max_seconds = 1e-9;
  LayoutTuningReport report;
  Result<LayoutPolicy> policy = TuneLayouts(SmallModel(), Avx2(), &device, options, &report);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->mode_name(), "auto");
  ASSERT_EQ(report.classes.size(), 5u);
  for (const ClassTuning& c : report.classes) {
    EXPECT_FALSE(c.measured);
    EXPECT_THAT(c.note, HasSubstr("time budget"));
    for (const CandidateTiming& t : c.candidates) EXPECT_EQ(t.decode_seconds, 0);
  }
  EXPECT_EQ(Find(report, TensorClass::kAttnQkv, DType::kQ4_1)->chosen, "q-rowgroup-g8");
  EXPECT_EQ(Find(report, TensorClass::kFfnDown, DType::kF32)->chosen, "rowgroup-g8k8");
}

TEST(LayoutTunerTest, UserEntriesAreNotMeasuredAndWin) {
  CpuDevice device;
  TuningOptions options;
  options.max_seconds = 0.5;
  options.overrides = "ffn_down=native,output:Q8_0=q-rowgroup-g16";
  LayoutTuningReport report;
  Result<LayoutPolicy> policy = TuneLayouts(SmallModel(), Avx2(), &device, options, &report);
  ASSERT_TRUE(policy.ok()) << policy.status();
  const ClassTuning* down = Find(report, TensorClass::kFfnDown, DType::kF32);
  EXPECT_FALSE(down->measured);
  EXPECT_EQ(down->chosen, "native");
  EXPECT_EQ(down->note, "fixed by --layout");
  EXPECT_EQ(Find(report, TensorClass::kOutput, DType::kQ8_0)->chosen, "q-rowgroup-g16");
  EXPECT_TRUE(Find(report, TensorClass::kAttnQkv, DType::kQ4_1)->measured);
  const std::vector<int64_t> down_shape = {128, 256};
  EXPECT_EQ(policy->Choose(DType::kF32, TensorRole::kFfnDown, down_shape), Layout::RowMajor());
  const std::vector<int64_t> out_shape = {512, 128};
  EXPECT_EQ(policy->Choose(DType::kQ8_0, TensorRole::kOutput, out_shape),
            Layout::QuantRowGroupInterleave(16));
  EXPECT_THAT(policy->mode_name(), HasSubstr(",ffn_down=native,output:Q8_0=q-rowgroup-g16"));
}

TEST(LayoutTunerTest, ALargeTensorIsTimedOnASliceOfWholeRowGroups) {
  CpuDevice device;
  TuningOptions options;
  options.max_seconds = 0.3;
  // 20000 x 1024 F32 is 78 MiB: 4096 rows fit in 16 MiB.
  const std::vector<TunableTensor> big = {{TensorRole::kOutput, DType::kF32, {20000, 1024}}};
  LayoutTuningReport report;
  ASSERT_TRUE(TuneLayouts(big, Avx2(), &device, options, &report).ok());
  ASSERT_EQ(report.classes.size(), 1u);
  EXPECT_EQ(report.classes[0].rows, 20000);
  EXPECT_EQ(report.classes[0].timed_rows, 4096);
  EXPECT_EQ(device.ledger().Snapshot().total_current_bytes, 0u);
}

TEST(LayoutTunerTest, BadOptionsAreInvalidArgument) {
  CpuDevice device;
  TuningOptions options;
  options.overrides = "ffn=native";
  Result<LayoutPolicy> p = TuneLayouts(SmallModel(), Avx2(), &device, options, nullptr);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.status().IsInvalidArgument());
  EXPECT_THAT(p.status().message(), HasSubstr("unknown tensor class \"ffn\""));
  options.overrides.clear();
  options.max_seconds = 0;
  EXPECT_TRUE(
      TuneLayouts(SmallModel(), Avx2(), &device, options, nullptr).status().IsInvalidArgument());
}

}  // namespace
}  // namespace relayout
