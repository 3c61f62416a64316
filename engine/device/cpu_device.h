// CpuDevice: host memory as a Device. Buffers are HostBuffers (64-byte
// aligned; mapped, and given back to the OS when freed, from 2 MiB), so the
// CPU kernels read them directly with no copy and no speed lost.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/device/device.h"

namespace relayout {

class CpuDevice final : public Device {
 public:
  // `capacity_bytes`: what the ledger allows (the memory limit or the
  // memory available); MemoryLedger::kUnlimited for none.
  explicit CpuDevice(uint64_t capacity_bytes = MemoryLedger::kUnlimited);
  ~CpuDevice() override;

  uint64_t AllocSize(uint64_t bytes) const override { return bytes; }

 private:
  Result<Allocation> DoAllocate(uint64_t bytes) override;
  Status DoFree(void* handle) override;
  Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) override;
  Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) override;
  Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) override;

  // HostBuffer asks a ledger before it allocates; the device's own ledger
  // already counted the bytes, so its buffers draw on this unlimited one.
  std::unique_ptr<MemoryLedger> backing_ledger_;
};

}  // namespace relayout
