#include "engine/device/device.h"

#include <utility>

namespace relayout {

Status Device::CheckRange(const DeviceBuffer& b, uint64_t offset, uint64_t bytes,
                          std::string_view what) const {
  if (b.empty()) return Status::InvalidArgument(what, "empty buffer");
  if (b.device_ != this) {
    return Status::InvalidArgument(what, StrCat("a buffer of another device than ", spec_));
  }
  if (offset > b.size() || bytes > b.size() - offset) {
    return Status::InvalidArgument(
        what, StrCat("bytes [", offset, ", ", offset + bytes, ") outside a buffer of ", b.size()));
  }
  return Status::OK();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    (void)Release();
    device_ = std::exchange(other.device_, nullptr);
    handle_ = std::exchange(other.handle_, nullptr);
    host_data_ = std::exchange(other.host_data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    reserved_ = std::exchange(other.reserved_, 0);
    category_ = other.category_;
  }
  return *this;
}

Status DeviceBuffer::Release() {
  if (device_ == nullptr) return Status::OK();
  return device_->Free(*this);
}

Device::Device(std::string spec, DeviceInfo info)
    : spec_(std::move(spec)), info_(std::move(info)), ledger_(info_.total_bytes) {}

Result<DeviceBuffer> Device::Allocate(uint64_t bytes, MemoryCategory category,
                                      std::string_view what) {
  const uint64_t reserved = AllocSize(bytes);
  if (Status s = ledger_.Reserve(category, reserved); !s.ok()) return s.WithPrefix(what);
  Result<Allocation> a = DoAllocate(bytes);
  if (!a.ok()) {
    ledger_.Release(category, reserved);
    return a.status().WithPrefix(what);
  }
  DeviceBuffer b;
  b.device_ = this;
  b.handle_ = a->handle;
  b.host_data_ = a->host_data;
  b.size_ = bytes;
  b.reserved_ = reserved;
  b.category_ = category;
  return b;
}

Status Device::Free(DeviceBuffer& buffer) {
  const Status s = DoFree(buffer.handle_);
  ledger_.Release(buffer.category_, buffer.reserved_);
  buffer.device_ = nullptr;
  buffer.handle_ = nullptr;
  buffer.host_data_ = nullptr;
  buffer.size_ = 0;
  buffer.reserved_ = 0;
  return s;
}

Status Device::Upload(DeviceBuffer& dst, uint64_t offset, std::span<const std::byte> src) {
  RETURN_IF_ERROR(CheckRange(dst, offset, src.size(), "upload"));
  return DoUpload(dst.handle_, offset, src.data(), src.size());
}

Status Device::Download(const DeviceBuffer& src, uint64_t offset, std::span<std::byte> dst) {
  RETURN_IF_ERROR(CheckRange(src, offset, dst.size(), "download"));
  return DoDownload(src.handle_, offset, dst.data(), dst.size());
}

Status Device::Fill(DeviceBuffer& dst, uint64_t offset, uint8_t value, uint64_t bytes) {
  RETURN_IF_ERROR(CheckRange(dst, offset, bytes, "fill"));
  return DoFill(dst.handle_, offset, value, bytes);
}

}  // namespace relayout
