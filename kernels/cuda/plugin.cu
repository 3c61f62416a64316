// The CUDA backend's device table (kernels/device_abi.h, version 3): devices,
// memory, staging and asynchronous uploads over the CUDA runtime, which is
// linked statically so the plugin needs only the driver. Every CUDA error
// becomes a status code and a message for last_error; nothing aborts. The
// forward-pass ops and the layout transforms are not here yet (NULL
// entries): the engine then keeps the model on the CPU under --device auto
// and says so.
//
// One in-order stream per device: the legacy default stream, so that the
// synchronous copies (cudaMemcpy) and the asynchronous uploads
// (cudaMemcpyAsync from pinned memory) are ordered with each other.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/device_abi.h"

namespace {

// cudaMalloc aligns to at least 256 bytes; the ledger counts allocations
// rounded up to it.
constexpr uint64_t kAlignment = 256;

thread_local std::string last_error;

rl_status Fail(rl_status code, const std::string& what, cudaError_t error) {
  last_error = "cuda: " + what + ": " + cudaGetErrorString(error);
  return code;
}

rl_status FromCuda(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return RL_OK;
  if (error == cudaErrorMemoryAllocation) return Fail(RL_RESOURCE_EXHAUSTED, what, error);
  if (error == cudaErrorInvalidValue) return Fail(RL_INVALID_ARGUMENT, what, error);
  return Fail(RL_INTERNAL, what, error);
}

}  // namespace

struct rl_device {
  int index = 0;
};

struct rl_buffer {
  void* ptr = nullptr;
  uint64_t bytes = 0;
};

namespace {

int32_t DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

rl_status OpenDevice(int32_t index, rl_device** out) {
  if (index < 0 || index >= DeviceCount()) {
    last_error = "cuda: no device " + std::to_string(index);
    return RL_NOT_FOUND;
  }
  if (rl_status s = FromCuda(cudaSetDevice(index), "cudaSetDevice"); s != RL_OK) return s;
  *out = new rl_device{index};
  return RL_OK;
}

void CloseDevice(rl_device* device) { delete device; }

rl_status DeviceInfo(rl_device* device, rl_device_info* out) {
  std::memset(out, 0, sizeof(*out));
  cudaDeviceProp prop;
  if (rl_status s = FromCuda(cudaGetDeviceProperties(&prop, device->index), "properties");
      s != RL_OK) {
    return s;
  }
  if (rl_status s = FromCuda(cudaSetDevice(device->index), "cudaSetDevice"); s != RL_OK) return s;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (rl_status s = FromCuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
      s != RL_OK) {
    return s;
  }
  std::snprintf(out->name, sizeof(out->name), "%s", prop.name);
  out->total_bytes = total_bytes;
  out->free_bytes = free_bytes;
  out->alignment = kAlignment;
  out->host_addressable = 0;
  out->compute_major = prop.major;
  out->compute_minor = prop.minor;
  return RL_OK;
}

uint64_t AllocSize(rl_device*, uint64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

rl_status BufferAlloc(rl_device* device, uint64_t bytes, rl_buffer** out) {
  if (rl_status s = FromCuda(cudaSetDevice(device->index), "cudaSetDevice"); s != RL_OK) return s;
  auto* b = new rl_buffer{nullptr, bytes};
  if (bytes > 0) {
    if (rl_status s = FromCuda(cudaMalloc(&b->ptr, bytes), "cudaMalloc"); s != RL_OK) {
      delete b;
      return s;
    }
  }
  *out = b;
  return RL_OK;
}

rl_status BufferFree(rl_device*, rl_buffer* buffer) {
  if (buffer == nullptr) return RL_OK;
  const cudaError_t error = buffer->ptr != nullptr ? cudaFree(buffer->ptr) : cudaSuccess;
  delete buffer;
  return FromCuda(error, "cudaFree");
}

void* BufferHostPtr(rl_buffer*) { return nullptr; }

rl_status CheckRange(const rl_buffer* b, uint64_t offset, uint64_t bytes) {
  if (b == nullptr || offset > b->bytes || bytes > b->bytes - offset) {
    last_error = "cuda: copy outside the buffer";
    return RL_INVALID_ARGUMENT;
  }
  return RL_OK;
}

rl_status Upload(rl_device*, rl_buffer* dst, uint64_t offset, const void* src, uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes); s != RL_OK) return s;
  if (bytes == 0) return RL_OK;
  return FromCuda(
      cudaMemcpy(static_cast<char*>(dst->ptr) + offset, src, bytes, cudaMemcpyHostToDevice),
      "upload");
}

rl_status Download(rl_device*, const rl_buffer* src, uint64_t offset, void* dst, uint64_t bytes) {
  if (rl_status s = CheckRange(src, offset, bytes); s != RL_OK) return s;
  if (bytes == 0) return RL_OK;
  return FromCuda(
      cudaMemcpy(dst, static_cast<const char*>(src->ptr) + offset, bytes, cudaMemcpyDeviceToHost),
      "download");
}

rl_status Fill(rl_device*, rl_buffer* dst, uint64_t offset, uint8_t value, uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes); s != RL_OK) return s;
  if (bytes == 0) return RL_OK;
  return FromCuda(cudaMemset(static_cast<char*>(dst->ptr) + offset, value, bytes), "fill");
}

rl_status HostAlloc(rl_device*, uint64_t bytes, void** out) {
  return FromCuda(cudaMallocHost(out, bytes == 0 ? 1 : bytes), "cudaMallocHost");
}

void HostFree(rl_device*, void* ptr) { cudaFreeHost(ptr); }

rl_status Synchronize(rl_device* device) {
  if (rl_status s = FromCuda(cudaSetDevice(device->index), "cudaSetDevice"); s != RL_OK) return s;
  return FromCuda(cudaDeviceSynchronize(), "synchronize");
}

const char* LastError() { return last_error.c_str(); }

rl_status UploadAsync(rl_device*, rl_buffer* dst, uint64_t offset, const void* src,
                      uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes); s != RL_OK) return s;
  if (bytes == 0) return RL_OK;
  return FromCuda(cudaMemcpyAsync(static_cast<char*>(dst->ptr) + offset, src, bytes,
                                  cudaMemcpyHostToDevice, cudaStreamLegacy),
                  "upload_async");
}

}  // namespace

struct rl_event {
  cudaEvent_t event = nullptr;
};

namespace {

rl_status EventCreate(rl_device* device, rl_event** out) {
  if (rl_status s = FromCuda(cudaSetDevice(device->index), "cudaSetDevice"); s != RL_OK) return s;
  auto* e = new rl_event;
  if (rl_status s =
          FromCuda(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "cudaEventCreate");
      s != RL_OK) {
    delete e;
    return s;
  }
  *out = e;
  return RL_OK;
}

void EventDestroy(rl_device*, rl_event* event) {
  if (event == nullptr) return;
  cudaEventDestroy(event->event);
  delete event;
}

rl_status EventRecord(rl_device*, rl_event* event) {
  return FromCuda(cudaEventRecord(event->event, cudaStreamLegacy), "cudaEventRecord");
}

rl_status EventSynchronize(rl_device*, rl_event* event) {
  return FromCuda(cudaEventSynchronize(event->event), "cudaEventSynchronize");
}

constexpr rl_device_api kApi = {
    RL_DEVICE_ABI_VERSION, "cuda", &DeviceCount, &OpenDevice, &CloseDevice, &DeviceInfo, &AllocSize,
    &BufferAlloc, &BufferFree, &BufferHostPtr, &Upload, &Download, &Fill, &HostAlloc, &HostFree,
    &Synchronize, &LastError,
    // The forward-pass ops: not yet.
    nullptr,  // matmul_supported
    nullptr,  // matmul
    nullptr,  // add_row_bias
    nullptr,  // embedding
    nullptr,  // rms_norm
    nullptr,  // rope
    nullptr,  // add
    nullptr,  // silu_gate
    nullptr,  // kv_write
    nullptr,  // attention
    nullptr,  // argmax
    &UploadAsync, &EventCreate, &EventDestroy, &EventRecord, &EventSynchronize,
    nullptr,  // transform_scratch_bytes
    nullptr,  // transform_in_place
};

}  // namespace

extern "C" {

RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void) { return RL_DEVICE_ABI_VERSION; }

// One point per usable device; 0 when the driver or every device is missing,
// which is the answer on CPU-only hosts.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void) { return DeviceCount(); }

RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void) { return &kApi; }

}  // extern "C"
