#include "engine/device/cpu_device.h"

#include <cstring>
#include <memory>

#include "engine/memory/host_buffer.h"

namespace relayout {

CpuDevice::CpuDevice(uint64_t capacity_bytes)
    : Device("cpu", DeviceInfo{"CPU", capacity_bytes, capacity_bytes, HostBuffer::kSmallAlignment,
                               true, 0, 0}),
      backing_ledger_(std::make_unique<MemoryLedger>()) {}

CpuDevice::~CpuDevice() = default;

Result<Device::Allocation> CpuDevice::DoAllocate(uint64_t bytes) {
  ASSIGN_OR_RETURN(HostBuffer buffer,
                   HostBuffer::Allocate(backing_ledger_.get(), MemoryCategory::kWeights, bytes));
  // The handle owns the buffer until DoFree adopts it back.
  auto owned = std::make_unique<HostBuffer>(std::move(buffer));
  std::byte* data = owned->data();
  return Allocation{owned.release(), data};
}

Status CpuDevice::DoFree(void* handle) {
  std::unique_ptr<HostBuffer>(static_cast<HostBuffer*>(handle)).reset();
  return Status::OK();
}

Status CpuDevice::DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) {
  if (bytes > 0) std::memcpy(static_cast<HostBuffer*>(handle)->data() + offset, src, bytes);
  return Status::OK();
}

Status CpuDevice::DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) {
  if (bytes > 0) std::memcpy(dst, static_cast<HostBuffer*>(handle)->data() + offset, bytes);
  return Status::OK();
}

Status CpuDevice::DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) {
  if (bytes > 0) std::memset(static_cast<HostBuffer*>(handle)->data() + offset, value, bytes);
  return Status::OK();
}

}  // namespace relayout
