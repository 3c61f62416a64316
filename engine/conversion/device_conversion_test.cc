// The conversion onto a device, through the host-reference plugin: the
// bytes equal the CPU conversion's whether the device transforms in place
// or the host does in staging; the device holds the weights and at most
// one transform's scratch, staging is bounded, and a failure at any
// allocation or upload is a clean error with nothing left behind.
#include "engine/conversion/device_conversion.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/conversion/model_loader.h"
#include "engine/device/device_loader.h"
#include "engine/device/device_test_util.h"

namespace relayout {
namespace {

const std::string kModel =
    std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.safetensors";

using testing::OpenHostref;
using testing::ScopedEnv;

class DeviceConversionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing";
    LoadOptions options;
    options.model_path = kModel;
    // Planned for the device (its sizes, its capacity), as `convert` does.
    options.device = "hostref";
    options.layout = "rowgroup-g8k8";  // so that every matrix is transformed
    options.budget = "1MiB";
    Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
    ASSERT_TRUE(load.ok()) << load.status();
    load_.emplace(std::move(*load));
  }
  const ConversionPlan& plan() const { return load_->plan; }
  const WeightSource& source() const { return *load_->checkpoint.source; }

  std::optional<PreparedLoad> load_;
};

class DeviceConversionBytesTest : public DeviceConversionTest,
                                  public ::testing::WithParamInterface<DeviceTransforms> {};

TEST_P(DeviceConversionBytesTest, BytesOnTheDeviceEqualTheCpuConversion) {
  const DeviceTransforms transforms = GetParam();
  MemoryLedger cpu_ledger;
  Result<LoadedWeights> cpu =
      ExecuteConversion(source(), plan(), &cpu_ledger, nullptr, nullptr, nullptr);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  std::unique_ptr<Device> device = OpenHostref();
  ASSERT_NE(device, nullptr);
  MemoryLedger host;
  RelayoutReport report;
  Result<DeviceWeights> on_device = ExecuteConversionOnDevice(
      source(), plan(), device.get(), &host, nullptr, nullptr, &report, transforms);
  ASSERT_TRUE(on_device.ok()) << on_device.status();
  ASSERT_EQ(on_device->tensors.size(), cpu->tensors.size());
  uint64_t largest = 0;
  for (size_t i = 0; i < cpu->tensors.size(); ++i) {
    const LoadedTensor& want = cpu->tensors[i];
    const DeviceTensor& got = on_device->tensors[i];
    ASSERT_EQ(got.name, want.name);
    EXPECT_EQ(got.layout.Name(), want.layout.Name()) << got.name;
    ASSERT_EQ(got.buffer.size(), want.buffer.size()) << got.name;
    std::vector<std::byte> bytes(got.buffer.size());
    ASSERT_TRUE(device->Download(got.buffer, 0, bytes).ok());
    EXPECT_EQ(std::memcmp(bytes.data(), want.buffer.data(), bytes.size()), 0) << got.name;
    largest = std::max(largest, got.buffer.size());
  }
  EXPECT_EQ(report.device, "hostref:0");
  EXPECT_EQ(load_->plan.device, "hostref:0");
  // The plan counted the device's sizes: its bound is the one measured.
  EXPECT_EQ(report.weights_bytes, plan().plan.weight_bytes);
  EXPECT_TRUE(report.bound_held());
  EXPECT_EQ(device->ledger().current(MemoryCategory::kScratch), 0u);
  uint64_t on_device_scratch = 0;
  size_t transformed_on_device = 0;
  for (const TensorConversionReport& t : report.tensors) {
    if (!t.on_device) continue;
    ++transformed_on_device;
    on_device_scratch = std::max(on_device_scratch, device->AllocSize(t.scratch_bytes));
  }
  if (transforms == DeviceTransforms::kNever) {
    // Staged through host: the device held the weights and nothing else;
    // staging held one converted tensor and the two streaming chunks.
    EXPECT_EQ(transformed_on_device, 0u);
    EXPECT_EQ(report.measured_peak_bytes, report.weights_bytes);
    EXPECT_EQ(report.scratch_peak_bytes, 0u);
    EXPECT_GT(report.host_scratch_peak_bytes, 0u);
    EXPECT_GT(report.staging_peak_bytes, 0u);
    EXPECT_LE(report.staging_peak_bytes, 3 * largest);
  } else {
    // Every matrix permuted in place on the device, one scratch at a time;
    // the host only streamed.
    EXPECT_GT(transformed_on_device, 10u);
    EXPECT_EQ(report.scratch_peak_bytes, on_device_scratch);
    // The scratch of a tensor coexists with the tensors before it only.
    EXPECT_GT(report.measured_peak_bytes, report.weights_bytes);
    EXPECT_LE(report.measured_peak_bytes, report.weights_bytes + on_device_scratch);
    EXPECT_EQ(report.host_scratch_peak_bytes, 0u);
    EXPECT_LE(report.staging_peak_bytes, 2 * largest);
  }
  EXPECT_EQ(host.total_current(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Transforms, DeviceConversionBytesTest,
                         ::testing::Values(DeviceTransforms::kWhenSupported,
                                           DeviceTransforms::kNever),
                         [](const auto& info) {
                           return info.param == DeviceTransforms::kNever ? "StagedThroughHost"
                                                                         : "InPlaceOnTheDevice";
                         });

// With --layout native nothing is converted: every tensor streams from the
// file through a bounded chunk and lands byte for byte as stored.
TEST(DeviceConversionNativeTest, UnconvertedTensorsStreamThroughABoundedChunk) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing";
  LoadOptions options;
  options.model_path = kModel;
  options.device = "cpu";
  options.layout = "native";
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  ASSERT_TRUE(load.ok()) << load.status();
  std::unique_ptr<Device> device = OpenHostref();
  ASSERT_NE(device, nullptr);
  MemoryLedger host;
  RelayoutReport report;
  Result<DeviceWeights> w = ExecuteConversionOnDevice(
      *load->checkpoint.source, load->plan, device.get(), &host, nullptr, nullptr, &report);
  ASSERT_TRUE(w.ok()) << w.status();
  const WeightSource& source = *load->checkpoint.source;
  for (const TensorConversion& t : load->plan.tensors) {
    const DeviceTensor& got = w->tensors[&t - load->plan.tensors.data()];
    std::vector<std::byte> want(source.tensors()[t.source_index].byte_size);
    ASSERT_TRUE(source.ReadTensor(t.source_index, want).ok());
    std::vector<std::byte> bytes(got.buffer.size());
    ASSERT_TRUE(device->Download(got.buffer, 0, bytes).ok());
    EXPECT_EQ(bytes, want) << got.name;
  }
  EXPECT_LE(report.staging_peak_bytes, uint64_t{32} << 20);
  EXPECT_EQ(report.scratch_peak_bytes, 0u);
  EXPECT_EQ(report.host_scratch_peak_bytes, 0u);
  EXPECT_EQ(host.total_current(), 0u);
}

TEST_F(DeviceConversionTest, AFailedAllocationAtEveryStepIsCleanAndLeavesNothing) {
  const size_t tensors = plan().tensors.size();
  for (size_t n = 1; n <= tensors; ++n) {
    ScopedEnv fail("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", std::to_string(n));
    std::unique_ptr<Device> device = OpenHostref();
    ASSERT_NE(device, nullptr);
    MemoryLedger host;
    Result<DeviceWeights> r =
        ExecuteConversionOnDevice(source(), plan(), device.get(), &host, nullptr, nullptr, nullptr);
    ASSERT_FALSE(r.ok()) << "allocation " << n;
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status();
    EXPECT_EQ(r.status().message().rfind("tensor ", 0), 0u) << r.status();
    EXPECT_EQ(device->ledger().total_current(), 0u) << "allocation " << n;
    EXPECT_EQ(host.total_current(), 0u) << "allocation " << n;
  }
}

TEST_F(DeviceConversionTest, AFailedUploadIsCleanAndLeavesNothing) {
  for (const size_t n : {size_t{1}, plan().tensors.size() / 2, plan().tensors.size()}) {
    ScopedEnv fail("RELAYOUT_HOSTREF_FAIL_UPLOAD_AT", std::to_string(n));
    std::unique_ptr<Device> device = OpenHostref();
    ASSERT_NE(device, nullptr);
    MemoryLedger host;
    Result<DeviceWeights> r =
        ExecuteConversionOnDevice(source(), plan(), device.get(), &host, nullptr, nullptr, nullptr);
    ASSERT_FALSE(r.ok()) << "upload " << n;
    EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status();
    EXPECT_NE(r.status().message().find("fault injection"), std::string::npos) << r.status();
    EXPECT_EQ(device->ledger().total_current(), 0u);
    EXPECT_EQ(host.total_current(), 0u);
  }
}

TEST_F(DeviceConversionTest, ADeviceTooSmallForTheWeightsIsRefusedNamingTheTensor) {
  ScopedEnv capacity("RELAYOUT_HOSTREF_MEMORY_BYTES", std::to_string(plan().plan.weight_bytes / 2));
  std::unique_ptr<Device> device = OpenHostref();
  ASSERT_NE(device, nullptr);
  MemoryLedger host;
  Result<DeviceWeights> r =
      ExecuteConversionOnDevice(source(), plan(), device.get(), &host, nullptr, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status();
  EXPECT_EQ(device->ledger().total_current(), 0u);
}

}  // namespace
}  // namespace relayout
