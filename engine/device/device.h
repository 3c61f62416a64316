// Device and DeviceBuffer: the engine's one view of a place where tensors
// live and kernels run, whether the CPU (CpuDevice) or a plugin loaded
// through kernels/device_abi.h (PluginDevice: the CUDA backend, the
// host-reference plugin). The model, the KV cache, the executor and the
// serving scheduler talk to a Device and never name one.
//
// Every device keeps its own MemoryLedger (capacity: the device's memory):
// a buffer is reserved in it before the device allocates, with the bytes the
// device really takes (AllocSize: padding and guards), and released when the
// buffer is freed. So a device's measured peak is the ledger's, and a
// request over capacity is refused before anything is touched.
//
// Errors are Status values naming what was being allocated or copied;
// nothing aborts. A failed allocation leaves the ledger unchanged.
//
// Thread safety: Allocate and buffer destruction may run concurrently (the
// executor's waves); copies on distinct buffers may too. A DeviceBuffer is
// a move-only owner. The Device must outlive every buffer it made.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/memory/memory_ledger.h"

namespace relayout {

struct DeviceInfo {
  std::string name;               // "CPU", "host reference", "NVIDIA H200"
  uint64_t total_bytes = 0;       // memory the device has
  uint64_t free_bytes = 0;        // as its driver reports it when asked
  uint64_t alignment = 0;         // of every buffer's start
  bool host_addressable = false;  // DeviceBuffer::host_data() is usable
  int compute_major = 0;          // CUDA compute capability, else 0
  int compute_minor = 0;
};

class Device;

class DeviceBuffer {
 public:
  DeviceBuffer() = default;  // empty: no memory, no reservation
  ~DeviceBuffer() { (void)Release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  // Frees the memory and gives back its reservation; the buffer is then
  // empty. DataLoss when the device found that something wrote outside the
  // buffer (the memory is freed all the same). OK on an empty buffer.
  Status Release();

  uint64_t size() const { return size_; }
  bool empty() const { return device_ == nullptr; }
  MemoryCategory category() const { return category_; }
  // The bytes, for devices whose memory the host can address (CPU, hostref);
  // null otherwise and when empty.
  std::byte* host_data() const { return host_data_; }
  void* handle() const { return handle_; }

 private:
  friend class Device;
  Device* device_ = nullptr;
  void* handle_ = nullptr;
  std::byte* host_data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t reserved_ = 0;  // in the device's ledger
  MemoryCategory category_ = MemoryCategory::kWeights;
};

class Device {
 public:
  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // How the device is named on the command line: "cpu", "hostref:0",
  // "cuda:0".
  const std::string& spec() const { return spec_; }
  const DeviceInfo& info() const { return info_; }
  MemoryLedger& ledger() { return ledger_; }
  const MemoryLedger& ledger() const { return ledger_; }

  // The bytes an allocation of `bytes` takes on this device.
  virtual uint64_t AllocSize(uint64_t bytes) const = 0;

  // A buffer of `bytes` counted as `category`. Errors: the ledger's
  // ResourceExhausted when over capacity (nothing allocated), or the
  // device's own (ResourceExhausted, Unavailable), prefixed by `what` (a
  // tensor's or a request's name).
  Result<DeviceBuffer> Allocate(uint64_t bytes, MemoryCategory category, std::string_view what);

  // Synchronous copies and a fill; InvalidArgument when the range is
  // outside the buffer (nothing copied).
  Status Upload(DeviceBuffer& dst, uint64_t offset, std::span<const std::byte> src);
  Status Download(const DeviceBuffer& src, uint64_t offset, std::span<std::byte> dst);
  Status Fill(DeviceBuffer& dst, uint64_t offset, uint8_t value, uint64_t bytes);
  virtual Status Synchronize() { return Status::OK(); }

 protected:
  // `info.total_bytes` becomes the ledger's capacity.
  Device(std::string spec, DeviceInfo info);

  // The device's side of the operations above; ranges are already checked.
  struct Allocation {
    void* handle = nullptr;
    std::byte* host_data = nullptr;
  };
  virtual Result<Allocation> DoAllocate(uint64_t bytes) = 0;
  virtual Status DoFree(void* handle) = 0;
  virtual Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) = 0;
  virtual Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) = 0;
  virtual Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) = 0;

 private:
  friend class DeviceBuffer;
  Status Free(DeviceBuffer& buffer);
  // InvalidArgument unless [offset, offset + bytes) lies in a buffer of
  // this device.
  Status CheckRange(const DeviceBuffer& b, uint64_t offset, uint64_t bytes,
                    std::string_view what) const;

  const std::string spec_;
  const DeviceInfo info_;
  MemoryLedger ledger_;
};

}  // namespace relayout
