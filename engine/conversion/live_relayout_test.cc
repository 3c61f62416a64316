#include "engine/conversion/live_relayout.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/device/cpu_device.h"
#include "engine/device/device_test_util.h"
#include "engine/memory/host_buffer.h"

namespace relayout {
namespace {

std::vector<std::byte> RandomBytes(uint64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (std::byte& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

// The bytes of `common` (a tensor in its common layout) in `to`, by the
// start-up path: one forward transform, out of place.
std::vector<std::byte> Expected(DType dtype, const std::vector<int64_t>& shape,
                                std::vector<std::byte> common, const Layout& to) {
  Result<TransformSpec> spec = DescribeTransform(dtype, shape, CommonLayoutFor(dtype), to);
  EXPECT_TRUE(spec.ok()) << spec.status();
  const StrategyOption* out_of_place = spec->Find(Strategy::kOutOfPlace);
  if (out_of_place == nullptr) return common;  // nothing moves
  std::vector<std::byte> scratch(out_of_place->scratch_bytes);
  EXPECT_TRUE(
      ApplyTransform(*spec, Strategy::kOutOfPlace, common, scratch, Direction::kForward).ok());
  return common;
}

ResidentTensor Resident(DType dtype, std::vector<int64_t> shape, Layout layout,
                        std::vector<std::byte>& bytes) {
  ResidentTensor t;
  t.name = "blk.0.ffn_up";
  t.ref = {TensorRole::kFfnUp, 0};
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.layout = layout;
  t.data = DeviceRef::Host(bytes.data(), bytes.size());
  return t;
}

struct Pair {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t bytes;
  Layout from, to;
};

// A -> B in place gives exactly the bytes the start-up conversion gives B,
// for preferred -> preferred, preferred -> native and native -> preferred,
// with the budget as small as the tensor allows.
TEST(LiveRelayout, EveryPairGivesTheStartUpBytes) {
  const std::vector<Pair> pairs = {
      {DType::kF32,
       {40, 64},
       40 * 64 * 4,
       Layout::RowGroupInterleave(8, 8),
       Layout::RowGroupInterleave(16, 16)},
      {DType::kF32, {40, 64}, 40 * 64 * 4, Layout::RowGroupInterleave(16, 16), Layout::RowMajor()},
      {DType::kF16, {48, 96}, 48 * 96 * 2, Layout::RowMajor(), Layout::RowGroupInterleave(8, 8)},
      {DType::kBF16,
       {32, 64},
       32 * 64 * 2,
       Layout::Bf16KPair(16),
       Layout::RowGroupInterleave(16, 16)},
      {DType::kQ8_0,
       {24, 64},
       24 * 2 * 34,
       Layout::QuantRowGroupInterleave(8),
       Layout::QuantRowGroupInterleave(4)},
      {DType::kQ4_0,
       {24, 64},
       24 * 2 * 18,
       Layout::QuantRowGroupInterleave(8),
       Layout::GgufBlocks()},
  };
  for (const Pair& p : pairs) {
    SCOPED_TRACE(StrCat(DTypeName(p.dtype), " ", p.from.Name(), " -> ", p.to.Name()));
    const std::vector<std::byte> common = RandomBytes(p.bytes, 7);
    std::vector<std::byte> data = Expected(p.dtype, p.shape, common, p.from);
    const std::vector<ResidentTensor> tensors = {Resident(p.dtype, p.shape, p.from, data)};
    for (uint64_t budget : {uint64_t{1} << 20, uint64_t{0}}) {
      Result<LiveRelayoutPlan> plan = PlanLiveRelayout(
          tensors, [&](DType, TensorRole, std::span<const int64_t>) { return p.to; }, budget);
      if (budget == 0 && !plan.ok()) {  // a move that needs scratch
        EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted) << plan.status();
        continue;
      }
      ASSERT_TRUE(plan.ok()) << plan.status();
      ASSERT_EQ(plan->steps.size(), 1u);
      EXPECT_EQ(plan->weight_bytes, p.bytes);
      EXPECT_LE(plan->max_scratch_bytes, budget);
      std::vector<std::byte> work = data;
      const ResidentTensor moving = Resident(p.dtype, p.shape, p.from, work);
      MemoryLedger ledger;
      Layout now;
      TensorConversionReport report;
      ASSERT_TRUE(
          ConvertResidentTensor(plan->steps[0], moving.data, nullptr, &ledger, &now, &report).ok());
      EXPECT_EQ(now, p.to);
      EXPECT_EQ(work, Expected(p.dtype, p.shape, common, p.to));
      EXPECT_LE(ledger.peak(MemoryCategory::kScratch), budget);
      EXPECT_EQ(report.bytes, p.bytes);
      EXPECT_EQ(report.layout, p.to.IsCommon() ? "native" : p.to.Name());
    }
  }
}

TEST(LiveRelayout, TensorsAlreadyThereAreLeftOut) {
  std::vector<std::byte> bytes = RandomBytes(40 * 64 * 4, 1);
  const std::vector<ResidentTensor> tensors = {
      Resident(DType::kF32, {40, 64}, Layout::RowGroupInterleave(8, 8), bytes)};
  Result<LiveRelayoutPlan> plan = PlanLiveRelayout(
      tensors,
      [](DType, TensorRole, std::span<const int64_t>) { return Layout::RowGroupInterleave(8, 8); },
      0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->steps.empty());
  EXPECT_EQ(plan->weight_bytes, bytes.size());
  EXPECT_EQ(plan->bytes_to_convert, 0u);
}

TEST(LiveRelayout, SizeChangingAndInapplicableTargetsAreRefusedNamingTheTensor) {
  std::vector<std::byte> bytes = RandomBytes(48 * 96 * 2, 1);
  const std::vector<ResidentTensor> tensors = {
      Resident(DType::kF16, {48, 96}, Layout::RowMajor(), bytes)};
  for (const Layout& to : {Layout::WidenedF32(), Layout::QuantRowGroupInterleave(8)}) {
    Result<LiveRelayoutPlan> plan = PlanLiveRelayout(
        tensors, [&](DType, TensorRole, std::span<const int64_t>) { return to; }, 1 << 20);
    EXPECT_TRUE(plan.status().IsInvalidArgument()) << plan.status();
    EXPECT_NE(plan.status().message().find("blk.0.ffn_up"), std::string::npos) << plan.status();
  }
}

// On a device that does not take host memory the tensor goes down to host
// staging, is converted there and goes back up into the same buffer.
TEST(LiveRelayout, ADevicesTensorIsConvertedThroughHostStaging) {
  std::unique_ptr<Device> device = testing::OpenHostref();
  ASSERT_NE(device, nullptr);
  ASSERT_FALSE(device->accepts_host_memory());
  const std::vector<int64_t> shape = {24, 64};
  const std::vector<std::byte> common = RandomBytes(24 * 2 * 18, 3);
  const std::vector<std::byte> from =
      Expected(DType::kQ4_0, shape, common, Layout::QuantRowGroupInterleave(8));
  Result<DeviceBuffer> buffer = device->Allocate(from.size(), MemoryCategory::kWeights, "test");
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  ASSERT_TRUE(device->Upload(*buffer, 0, from).ok());
  ResidentTensor t;
  t.name = "blk.0.attn_q";
  t.ref = {TensorRole::kAttnQ, 0};
  t.dtype = DType::kQ4_0;
  t.shape = shape;
  t.layout = Layout::QuantRowGroupInterleave(8);
  t.data = buffer->ref();
  const std::vector<ResidentTensor> tensors = {t};
  Result<LiveRelayoutPlan> plan = PlanLiveRelayout(
      tensors, [](DType, TensorRole, std::span<const int64_t>) { return Layout::GgufBlocks(); },
      1 << 20);
  ASSERT_TRUE(plan.ok()) << plan.status();
  MemoryLedger host;
  Layout now;
  ASSERT_TRUE(
      ConvertResidentTensor(plan->steps[0], t.data, device.get(), &host, &now, nullptr).ok());
  EXPECT_EQ(now, Layout::GgufBlocks());
  std::vector<std::byte> back(common.size());
  ASSERT_TRUE(device->Download(*buffer, 0, back).ok());
  EXPECT_EQ(back, common);
  EXPECT_EQ(host.peak(MemoryCategory::kStaging), common.size());
  EXPECT_EQ(host.current(MemoryCategory::kStaging), 0u);
  EXPECT_EQ(host.current(MemoryCategory::kScratch), 0u);
}

}  // namespace
}  // namespace relayout
