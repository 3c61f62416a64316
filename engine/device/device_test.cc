// The device layer: CpuDevice and the host-reference plugin through the
// same Device interface (ledger, copies, ranges), the plugin's guards and
// fault injection, and every way the loader refuses a plugin.
#include "engine/device/device.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/device/cpu_device.h"
#include "engine/device/device_loader.h"
#include "engine/device/device_test_util.h"
#include "engine/device/plugin_device.h"

namespace relayout {
namespace {

const std::string kTestPluginDir = RELAYOUT_TEST_PLUGIN_DIR;

using testing::ScopedEnv;

std::unique_ptr<Device> Hostref() { return testing::OpenHostref(); }

class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Device> Make() {
    if (GetParam() == "cpu") return std::make_unique<CpuDevice>();
    return Hostref();
  }
};

TEST_P(DeviceTest, UploadDownloadAndFillRoundTrip) {
  std::unique_ptr<Device> device = Make();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> b = device->Allocate(1000, MemoryCategory::kWeights, "tensor t");
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<std::byte> in(1000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::byte>(i * 7);
  ASSERT_TRUE(device->Upload(*b, 0, in).ok());
  ASSERT_TRUE(device->Fill(*b, 10, 0xAB, 5).ok());
  std::vector<std::byte> out(1000);
  ASSERT_TRUE(device->Download(*b, 0, out).ok());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto want = i >= 10 && i < 15 ? std::byte{0xAB} : in[i];
    ASSERT_EQ(out[i], want) << i;
  }
  ASSERT_NE(b->host_data(), nullptr);  // both are host memory
  EXPECT_EQ(std::memcmp(b->host_data(), out.data(), out.size()), 0);
}

TEST_P(DeviceTest, LedgerCountsWhatTheDeviceTakesUntilTheBufferIsFreed) {
  std::unique_ptr<Device> device = Make();
  ASSERT_NE(device, nullptr);
  {
    Result<DeviceBuffer> a = device->Allocate(100, MemoryCategory::kWeights, "a");
    Result<DeviceBuffer> s = device->Allocate(4096, MemoryCategory::kScratch, "s");
    ASSERT_TRUE(a.ok() && s.ok());
    EXPECT_EQ(device->ledger().current(MemoryCategory::kWeights), device->AllocSize(100));
    EXPECT_EQ(device->ledger().current(MemoryCategory::kScratch), device->AllocSize(4096));
    EXPECT_GE(device->AllocSize(100), 100u);
    DeviceBuffer moved = std::move(*s);
    EXPECT_TRUE(s->empty());
    EXPECT_EQ(moved.size(), 4096u);
  }
  EXPECT_EQ(device->ledger().total_current(), 0u);
  EXPECT_EQ(device->ledger().total_peak(), device->AllocSize(100) + device->AllocSize(4096));
}

TEST_P(DeviceTest, CopiesOutsideTheBufferAreRefused) {
  std::unique_ptr<Device> device = Make();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> b = device->Allocate(64, MemoryCategory::kWeights, "b");
  ASSERT_TRUE(b.ok());
  std::vector<std::byte> bytes(16);
  EXPECT_EQ(device->Upload(*b, 50, bytes).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(device->Download(*b, 65, std::span(bytes).first(0)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(device->Fill(*b, 0, 0, 65).code(), StatusCode::kInvalidArgument);
  DeviceBuffer empty;
  EXPECT_EQ(device->Upload(empty, 0, {}).code(), StatusCode::kInvalidArgument);
}

TEST(DeviceBufferTest, ABufferOfAnotherDeviceIsRefused) {
  CpuDevice cpu;
  std::unique_ptr<Device> hostref = Hostref();
  ASSERT_NE(hostref, nullptr);
  Result<DeviceBuffer> b = cpu.Allocate(16, MemoryCategory::kWeights, "b");
  ASSERT_TRUE(b.ok());
  std::vector<std::byte> bytes(16);
  const Status s = hostref->Upload(*b, 0, bytes);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("another device"), std::string::npos) << s;
}

// The host-reference plugin defers asynchronous uploads until something
// needs them, as a GPU may: staging reused before its event completed shows
// up as the wrong bytes, and waiting on the event first gives the right ones.
TEST(HostrefTest, AsyncUploadsReadTheirSourceLateSoTheEventMustBeWaitedFor) {
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  MemoryLedger host;
  Result<StagingBuffer> staging = device->AllocateStaging(4, &host);
  ASSERT_TRUE(staging.ok()) << staging.status();
  EXPECT_TRUE(staging->pinned());
  EXPECT_EQ(host.current(MemoryCategory::kStaging), 4u);
  Result<DeviceBuffer> b = device->Allocate(8, MemoryCategory::kWeights, "b");
  Result<DeviceEvent> done = device->CreateEvent();
  ASSERT_TRUE(b.ok() && done.ok());
  const auto upload = [&](uint64_t offset, uint8_t value, bool wait_before_reuse) {
    std::memset(staging->span().data(), value, 4);
    ASSERT_TRUE(device->UploadAsync(*b, offset, staging->span()).ok());
    ASSERT_TRUE(device->Record(*done).ok());
    if (wait_before_reuse) ASSERT_TRUE(device->Wait(*done).ok());
    std::memset(staging->span().data(), 0xEE, 4);  // the next chunk's bytes
  };
  upload(0, 0x11, /*wait_before_reuse=*/false);
  upload(4, 0x22, /*wait_before_reuse=*/true);
  std::vector<std::byte> got(8);
  ASSERT_TRUE(device->Download(*b, 0, got).ok());
  EXPECT_EQ(got[0], std::byte{0x22});  // reused too early: the next upload's bytes
  EXPECT_EQ(got[4], std::byte{0x22});  // waited for
  staging->Release();
  EXPECT_EQ(host.current(MemoryCategory::kStaging), 0u);
}

TEST(HostrefTest, AnAbsurdSizeIsRefusedNotWrapped) {
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> b = device->Allocate(UINT64_MAX - 8, MemoryCategory::kWeights, "huge");
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted) << b.status();
  EXPECT_EQ(device->ledger().total_current(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceTest, ::testing::Values("cpu", "hostref"),
                         [](const auto& info) { return info.param; });

TEST(HostrefTest, FreshMemoryIsPoisonedNotZero) {
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> b = device->Allocate(32, MemoryCategory::kWeights, "b");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b->host_data()[i], std::byte{0xCD}) << i;
}

TEST(HostrefTest, AWriteOutsideTheBufferIsDataLossOnFree) {
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  for (const int offset : {-1, 64}) {
    Result<DeviceBuffer> b = device->Allocate(64, MemoryCategory::kWeights, "b");
    ASSERT_TRUE(b.ok());
    b->host_data()[offset] = std::byte{0};  // a stray write into a guard
    const Status s = b->Release();
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(offset < 0 ? "front guard" : "back guard"), std::string::npos) << s;
  }
  EXPECT_EQ(device->ledger().total_current(), 0u);  // freed all the same
}

TEST(HostrefTest, InjectedAllocationFailureIsCleanAndLeavesTheLedgerAlone) {
  ScopedEnv fail("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", "2");
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> first = device->Allocate(10, MemoryCategory::kWeights, "first");
  ASSERT_TRUE(first.ok());
  Result<DeviceBuffer> second = device->Allocate(10, MemoryCategory::kWeights, "tensor blk.0.x");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(second.status().message().find("tensor blk.0.x"), std::string::npos) << second.status();
  EXPECT_NE(second.status().message().find("fault injection"), std::string::npos);
  EXPECT_EQ(device->ledger().total_current(), device->AllocSize(10));
  EXPECT_TRUE(device->Allocate(10, MemoryCategory::kWeights, "third").ok());
}

TEST(HostrefTest, InjectedUploadFailureIsAnErrorNamingTheDevice) {
  ScopedEnv fail("RELAYOUT_HOSTREF_FAIL_UPLOAD_AT", "1");
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  Result<DeviceBuffer> b = device->Allocate(8, MemoryCategory::kWeights, "b");
  ASSERT_TRUE(b.ok());
  std::vector<std::byte> bytes(8);
  const Status s = device->Upload(*b, 0, bytes);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("hostref:0"), std::string::npos) << s;
  EXPECT_TRUE(device->Upload(*b, 0, bytes).ok());  // only the first
}

TEST(HostrefTest, CapacityIsTheLedgersAndTheDevicesLimit) {
  ScopedEnv capacity("RELAYOUT_HOSTREF_MEMORY_BYTES", "4096");
  std::unique_ptr<Device> device = Hostref();
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device->info().total_bytes, 4096u);
  Result<DeviceBuffer> big = device->Allocate(8192, MemoryCategory::kWeights, "big");
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(device->ledger().total_current(), 0u);
}

TEST(DeviceLoaderTest, AutoFallsBackToTheCpuAndLogsWhy) {
  DeviceRequest request;
  request.plugin_dirs = {::testing::TempDir() + "/no-plugins-here"};
  std::vector<std::string> lines;
  Result<OpenedDevice> opened =
      OpenDevice(request, [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->device->spec(), "cpu");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("librelayout_cuda.so"), std::string::npos) << lines[0];
  EXPECT_NE(opened->why.find("no GPU plugin"), std::string::npos) << opened->why;
}

TEST(DeviceLoaderTest, ExplicitPluginDeviceThatIsMissingIsNotFound) {
  DeviceRequest request;
  request.spec = "cuda:0";
  request.plugin_dirs = {::testing::TempDir() + "/no-plugins-here"};
  Result<OpenedDevice> opened = OpenDevice(request);
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound) << opened.status();
}

TEST(DeviceLoaderTest, MalformedSpecsAreInvalidArgument) {
  for (const char* spec : {"gpu", "cuda:", "cuda:-1", "cpu:0", "auto:1", "cuda:x", ""}) {
    DeviceRequest request;
    request.spec = spec;
    EXPECT_EQ(OpenDevice(request).status().code(), StatusCode::kInvalidArgument) << spec;
  }
}

TEST(PluginLibraryTest, EachBrokenPluginIsRefusedSayingWhy) {
  const struct {
    std::string file;
    std::string why;
  } cases[] = {
      {"librelayout_test_plugin_badversion.so", "device ABI version 99"},
      {"librelayout_test_plugin_zeroscore.so", "score 0"},
      {"librelayout_test_plugin_noinit.so", "rl_plugin_init missing"},
  };
  for (const auto& c : cases) {
    Result<std::shared_ptr<const PluginLibrary>> lib =
        PluginLibrary::Load(kTestPluginDir + "/" + c.file);
    ASSERT_FALSE(lib.ok()) << c.file;
    EXPECT_EQ(lib.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(lib.status().message().find(c.file), std::string::npos) << lib.status();
    EXPECT_NE(lib.status().message().find(c.why), std::string::npos) << lib.status();
  }
}

TEST(PluginLibraryTest, AFileThatIsNoLibraryIsRefused) {
  const std::string path = ::testing::TempDir() + "/librelayout_garbage.so";
  std::ofstream(path) << "not an ELF file";
  Result<std::shared_ptr<const PluginLibrary>> lib = PluginLibrary::Load(path);
  ASSERT_FALSE(lib.ok());
  EXPECT_NE(lib.status().message().find("cannot load"), std::string::npos) << lib.status();
}

}  // namespace
}  // namespace relayout
