// The host-reference device plugin (librelayout_hostref.so): a device whose
// memory is host memory this plugin owns, loaded through the same dlopen
// path as the CUDA backend, so that CI exercises the loader, the device
// ledger and the staging path without a GPU.
//
// Every allocation is laid out as
//   [front guard: kGuardBytes of 0xFD][payload, rounded up to kAlignment][back guard]
// with the payload poisoned with 0xCD when allocated (so a reader of memory
// nobody wrote sees garbage, not zeros) and 0xDD when freed. buffer_free
// checks both guards and answers RL_DATA_LOSS, naming the side, when
// something wrote outside the buffer.
//
// Fault injection, read from the environment when a device is opened:
//   RELAYOUT_HOSTREF_FAIL_ALLOC_AT=N   the Nth buffer_alloc (1-based) fails
//                                      with RL_RESOURCE_EXHAUSTED
//   RELAYOUT_HOSTREF_FAIL_UPLOAD_AT=N  the Nth upload fails with RL_INTERNAL
//   RELAYOUT_HOSTREF_MEMORY_BYTES=B    the device's capacity (default 16 GiB);
//                                      allocations past it fail as a real
//                                      device's would
// Counting starts at open_device, per device.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "kernels/device_abi.h"

namespace {

constexpr uint64_t kAlignment = 64;
constexpr uint64_t kGuardBytes = 64;
constexpr uint8_t kGuardByte = 0xFD;
constexpr uint8_t kFreshByte = 0xCD;
constexpr uint8_t kFreedByte = 0xDD;
constexpr uint64_t kDefaultCapacity = uint64_t{16} << 30;

thread_local std::string last_error;

rl_status Fail(rl_status code, std::string message) {
  last_error = std::move(message);
  return code;
}

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long parsed = std::strtoull(v, &end, 10);
  return end != nullptr && *end == '\0' ? parsed : fallback;
}

uint64_t RoundUp(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

struct rl_device {
  uint64_t capacity = kDefaultCapacity;
  uint64_t fail_alloc_at = 0;  // 0: never
  uint64_t fail_upload_at = 0;
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> uploads{0};
  std::mutex mu;
  uint64_t in_use = 0;  // guarded by mu: alloc_size of live buffers
};

struct rl_buffer {
  unsigned char* block = nullptr;  // front guard starts here
  uint64_t bytes = 0;              // as asked
  uint64_t payload = 0;            // bytes rounded up
  unsigned char* data() const { return block + kGuardBytes; }
};

namespace {

int32_t DeviceCount() { return 1; }

rl_status OpenDevice(int32_t index, rl_device** out) {
  if (index != 0) return Fail(RL_NOT_FOUND, "hostref: only device 0 exists");
  auto* d = new (std::nothrow) rl_device;
  if (d == nullptr) return Fail(RL_RESOURCE_EXHAUSTED, "hostref: cannot allocate the device");
  d->capacity = EnvU64("RELAYOUT_HOSTREF_MEMORY_BYTES", kDefaultCapacity);
  d->fail_alloc_at = EnvU64("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", 0);
  d->fail_upload_at = EnvU64("RELAYOUT_HOSTREF_FAIL_UPLOAD_AT", 0);
  *out = d;
  return RL_OK;
}

void CloseDevice(rl_device* device) { delete device; }

// Saturates instead of wrapping; BufferAlloc refuses such sizes.
uint64_t AllocSize(rl_device*, uint64_t bytes) {
  return bytes > UINT64_MAX - 2 * kGuardBytes - kAlignment ? UINT64_MAX
                                                           : RoundUp(bytes) + 2 * kGuardBytes;
}

rl_status DeviceInfo(rl_device* device, rl_device_info* out) {
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "host reference");
  std::lock_guard<std::mutex> lock(device->mu);
  out->total_bytes = device->capacity;
  out->free_bytes = device->capacity - device->in_use;
  out->alignment = kAlignment;
  out->host_addressable = 1;
  return RL_OK;
}

// Sizes past this would wrap when padded and guarded.
constexpr uint64_t kMaxBytes = UINT64_MAX - 2 * kGuardBytes - kAlignment;

rl_status BufferAlloc(rl_device* device, uint64_t bytes, rl_buffer** out) {
  if (bytes > kMaxBytes) {
    return Fail(RL_RESOURCE_EXHAUSTED, "hostref: " + std::to_string(bytes) + " bytes asked");
  }
  const uint64_t n = device->allocs.fetch_add(1) + 1;
  if (device->fail_alloc_at != 0 && n == device->fail_alloc_at) {
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: allocation " + std::to_string(n) + " failed (fault injection)");
  }
  const uint64_t size = AllocSize(device, bytes);
  {
    std::lock_guard<std::mutex> lock(device->mu);
    if (size > device->capacity - device->in_use) {
      return Fail(RL_RESOURCE_EXHAUSTED, "hostref: out of device memory: " + std::to_string(size) +
                                             " bytes asked, " +
                                             std::to_string(device->capacity - device->in_use) +
                                             " free of " + std::to_string(device->capacity));
    }
    device->in_use += size;
  }
  auto* b = new (std::nothrow) rl_buffer;
  void* block = nullptr;
  if (b == nullptr || posix_memalign(&block, kAlignment, size) != 0) {
    delete b;
    std::lock_guard<std::mutex> lock(device->mu);
    device->in_use -= size;
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: the host refused " + std::to_string(size) + " bytes");
  }
  b->block = static_cast<unsigned char*>(block);
  b->bytes = bytes;
  b->payload = RoundUp(bytes);
  std::memset(b->block, kGuardByte, kGuardBytes);
  std::memset(b->data(), kFreshByte, b->payload);
  std::memset(b->data() + b->payload, kGuardByte, kGuardBytes);
  *out = b;
  return RL_OK;
}

bool GuardIntact(const unsigned char* p) {
  for (uint64_t i = 0; i < kGuardBytes; ++i) {
    if (p[i] != kGuardByte) return false;
  }
  return true;
}

rl_status BufferFree(rl_device* device, rl_buffer* buffer) {
  if (buffer == nullptr) return RL_OK;
  const bool front = GuardIntact(buffer->block);
  // The padding up to the payload's rounded size belongs to the buffer's
  // slack, not to the guard: only the guard proper is checked.
  const bool back = GuardIntact(buffer->data() + buffer->payload);
  std::memset(buffer->data(), kFreedByte, buffer->payload);
  const uint64_t size = AllocSize(device, buffer->bytes);
  std::free(buffer->block);
  delete buffer;
  {
    std::lock_guard<std::mutex> lock(device->mu);
    device->in_use -= size;
  }
  if (!front || !back) {
    return Fail(RL_DATA_LOSS, std::string("hostref: a write outside the buffer overwrote its ") +
                                  (!front ? "front" : "back") + " guard");
  }
  return RL_OK;
}

void* BufferHostPtr(rl_buffer* buffer) { return buffer != nullptr ? buffer->data() : nullptr; }

rl_status CheckRange(const rl_buffer* b, uint64_t offset, uint64_t bytes, const char* what) {
  if (b == nullptr)
    return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + what + ": null buffer");
  if (offset > b->bytes || bytes > b->bytes - offset) {
    return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + what + ": bytes [" +
                                         std::to_string(offset) + ", " +
                                         std::to_string(offset + bytes) + ") outside a buffer of " +
                                         std::to_string(b->bytes));
  }
  return RL_OK;
}

rl_status Upload(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                 uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes, "upload"); s != RL_OK) return s;
  const uint64_t n = device->uploads.fetch_add(1) + 1;
  if (device->fail_upload_at != 0 && n == device->fail_upload_at) {
    return Fail(RL_INTERNAL, "hostref: upload " + std::to_string(n) + " failed (fault injection)");
  }
  if (bytes > 0) std::memcpy(dst->data() + offset, src, bytes);
  return RL_OK;
}

rl_status Download(rl_device*, const rl_buffer* src, uint64_t offset, void* dst, uint64_t bytes) {
  if (rl_status s = CheckRange(src, offset, bytes, "download"); s != RL_OK) return s;
  if (bytes > 0) std::memcpy(dst, src->data() + offset, bytes);
  return RL_OK;
}

rl_status Fill(rl_device*, rl_buffer* dst, uint64_t offset, uint8_t value, uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes, "fill"); s != RL_OK) return s;
  if (bytes > 0) std::memset(dst->data() + offset, value, bytes);
  return RL_OK;
}

rl_status HostAlloc(rl_device*, uint64_t bytes, void** out) {
  if (bytes > kMaxBytes) {
    return Fail(RL_RESOURCE_EXHAUSTED, "hostref: " + std::to_string(bytes) + " bytes of staging");
  }
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, bytes == 0 ? kAlignment : RoundUp(bytes)) != 0) {
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: cannot allocate " + std::to_string(bytes) + " bytes of staging");
  }
  *out = p;
  return RL_OK;
}

void HostFree(rl_device*, void* ptr) { std::free(ptr); }

rl_status Synchronize(rl_device*) { return RL_OK; }

const char* LastError() { return last_error.c_str(); }

constexpr rl_device_api kApi = {
    RL_DEVICE_ABI_VERSION,
    "hostref",
    &DeviceCount,
    &OpenDevice,
    &CloseDevice,
    &DeviceInfo,
    &AllocSize,
    &BufferAlloc,
    &BufferFree,
    &BufferHostPtr,
    &Upload,
    &Download,
    &Fill,
    &HostAlloc,
    &HostFree,
    &Synchronize,
    &LastError,
};

}  // namespace

extern "C" {

RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void) {
#ifdef RELAYOUT_TEST_PLUGIN_VERSION
  return RELAYOUT_TEST_PLUGIN_VERSION;  // a deliberately mismatched copy, for the loader's tests
#else
  return RL_DEVICE_ABI_VERSION;
#endif
}

// Host memory is always there; a low score, so that a real device wins
// under --device auto.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void) {
#ifdef RELAYOUT_TEST_PLUGIN_SCORE
  return RELAYOUT_TEST_PLUGIN_SCORE;
#else
  return 1;
#endif
}

#ifndef RELAYOUT_TEST_PLUGIN_NO_INIT
RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void) { return &kApi; }
#else
// The test copy without rl_plugin_init still has the table, unexported.
[[maybe_unused]] const rl_device_api* UnexportedInit() { return &kApi; }
#endif

}  // extern "C"
