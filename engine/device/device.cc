#include "engine/device/device.h"

#include <cstring>
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

Device::Device(std::string spec, DeviceInfo info, MemoryLedger* shared_ledger)
    : spec_(std::move(spec)),
      info_(std::move(info)),
      own_ledger_(info_.total_bytes),
      ledger_(shared_ledger != nullptr ? shared_ledger : &own_ledger_) {}

Result<DeviceBuffer> Device::Allocate(uint64_t bytes, MemoryCategory category,
                                      std::string_view what) {
  const uint64_t reserved = AllocSize(bytes);
  if (Status s = ledger_->Reserve(category, reserved); !s.ok()) return s.WithPrefix(what);
  Result<Allocation> a = DoAllocate(bytes);
  if (!a.ok()) {
    ledger_->Release(category, reserved);
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
  if (s.code() == StatusCode::kDataLoss) corrupted_frees_.fetch_add(1);
  ledger_->Release(buffer.category_, buffer.reserved_);
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

namespace {
Status NoOp(const std::string& spec, std::string_view op) {
  return Status::Unimplemented(spec, StrCat("this device has no ", op, " op"));
}
}  // namespace

bool Device::MatmulSupported(const DeviceMatmulWeight&) const { return false; }
Status Device::Matmul(const DeviceMatmulWeight&, DeviceRef, int64_t, DeviceRef) {
  return NoOp(spec_, "matmul");
}
Status Device::AddRowBias(DeviceRef, int64_t, int64_t, DeviceRef) {
  return NoOp(spec_, "add_row_bias");
}
Status Device::Embedding(DeviceRef, kernels::WeightType, int64_t, int64_t, std::span<const int32_t>,
                         DeviceRef) {
  return NoOp(spec_, "embedding");
}
Status Device::RmsNorm(DeviceRef, DeviceRef, int64_t, int64_t, float, DeviceRef) {
  return NoOp(spec_, "rms_norm");
}
Status Device::Rope(DeviceRef, int64_t, int64_t, int64_t, int64_t, std::span<const int32_t>,
                    DeviceRef, kernels::RopePairing) {
  return NoOp(spec_, "rope");
}
Status Device::Add(DeviceRef, int64_t, DeviceRef) { return NoOp(spec_, "add"); }
Status Device::SiluGate(DeviceRef, DeviceRef, int64_t, DeviceRef) {
  return NoOp(spec_, "silu_gate");
}
Status Device::KvWrite(const kernels::PagedAttentionParams&, int64_t, DeviceRef, DeviceRef,
                       std::span<const kernels::AttentionSpan>, DeviceRef, DeviceRef) {
  return NoOp(spec_, "kv_write");
}
Status Device::Attention(const kernels::PagedAttentionParams&, int64_t, DeviceRef,
                         std::span<const kernels::AttentionSpan>, DeviceRef, DeviceRef, DeviceRef) {
  return NoOp(spec_, "attention");
}
Status Device::Argmax(DeviceRef, int64_t, int64_t, std::span<int32_t>) {
  return NoOp(spec_, "argmax");
}
std::optional<uint64_t> Device::TransformScratchBytes(const DeviceMatmulWeight&) const {
  return std::nullopt;
}
Status Device::TransformInPlace(const DeviceMatmulWeight&, DeviceRef) {
  return NoOp(spec_, "transform_in_place");
}

Status Device::Download(DeviceRef src, std::span<std::byte> dst) {
  const uint64_t bytes = dst.size();
  if (bytes > src.size) {
    return Status::InvalidArgument("download",
                                   StrCat(bytes, " bytes from a place holding ", src.size));
  }
  if (src.device == nullptr) {
    if (bytes > 0) std::memcpy(dst.data(), src.host + src.offset, bytes);
    return Status::OK();
  }
  if (src.device != this) {
    return Status::InvalidArgument("download", StrCat("a buffer of another device than ", spec_));
  }
  return DoDownload(src.handle, src.offset, dst.data(), bytes);
}

Status Device::Upload(DeviceRef dst, std::span<const std::byte> src) {
  const uint64_t bytes = src.size();
  if (bytes > dst.size) {
    return Status::InvalidArgument("upload", StrCat(bytes, " bytes to a place holding ", dst.size));
  }
  if (dst.device == nullptr) {
    if (bytes > 0) std::memcpy(dst.host + dst.offset, src.data(), bytes);
    return Status::OK();
  }
  if (dst.device != this) {
    return Status::InvalidArgument("upload", StrCat("a buffer of another device than ", spec_));
  }
  return DoUpload(dst.handle, dst.offset, src.data(), bytes);
}

StagingBuffer::StagingBuffer(StagingBuffer&& other) noexcept { *this = std::move(other); }

StagingBuffer& StagingBuffer::operator=(StagingBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    device_ = std::exchange(other.device_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    pinned_ = std::exchange(other.pinned_, false);
    fallback_ = std::move(other.fallback_);
    ledger_ = std::exchange(other.ledger_, nullptr);
  }
  return *this;
}

void StagingBuffer::Release() {
  if (pinned_ && device_ != nullptr) {
    device_->DoHostFree(data_);
    if (ledger_ != nullptr) ledger_->Release(MemoryCategory::kStaging, size_);
  }
  fallback_.Reset();
  device_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  pinned_ = false;
  ledger_ = nullptr;
}

Result<StagingBuffer> Device::AllocateStaging(uint64_t bytes, MemoryLedger* host_ledger) {
  StagingBuffer out;
  RETURN_IF_ERROR(host_ledger->Reserve(MemoryCategory::kStaging, bytes).WithPrefix("staging"));
  if (Result<std::byte*> pinned = DoHostAlloc(bytes); pinned.ok()) {
    out.device_ = this;
    out.data_ = *pinned;
    out.size_ = bytes;
    out.pinned_ = true;
    out.ledger_ = host_ledger;
    return out;
  }
  host_ledger->Release(MemoryCategory::kStaging, bytes);
  ASSIGN_OR_RETURN(out.fallback_,
                   HostBuffer::Allocate(host_ledger, MemoryCategory::kStaging, bytes));
  out.data_ = out.fallback_.data();
  out.size_ = bytes;
  return out;
}

DeviceEvent::~DeviceEvent() {
  if (device_ != nullptr && handle_ != nullptr) device_->DoDestroyEvent(handle_);
}

DeviceEvent::DeviceEvent(DeviceEvent&& other) noexcept { *this = std::move(other); }

DeviceEvent& DeviceEvent::operator=(DeviceEvent&& other) noexcept {
  if (this != &other) {
    if (device_ != nullptr && handle_ != nullptr) device_->DoDestroyEvent(handle_);
    device_ = std::exchange(other.device_, nullptr);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

Status Device::UploadAsync(DeviceBuffer& dst, uint64_t offset, std::span<const std::byte> src) {
  RETURN_IF_ERROR(CheckRange(dst, offset, src.size(), "upload"));
  return DoUploadAsync(dst.handle_, offset, src.data(), src.size());
}

Result<DeviceEvent> Device::CreateEvent() {
  DeviceEvent event;
  ASSIGN_OR_RETURN(event.handle_, DoCreateEvent());
  event.device_ = this;
  return event;
}

Status Device::Record(DeviceEvent& event) {
  if (event.device_ != this) return Status::InvalidArgument(spec_, "an event of another device");
  return event.handle_ != nullptr ? DoRecord(event.handle_) : Status::OK();
}

Status Device::Wait(DeviceEvent& event) {
  if (event.device_ != this) return Status::InvalidArgument(spec_, "an event of another device");
  return event.handle_ != nullptr ? DoWait(event.handle_) : Status::OK();
}

}  // namespace relayout
