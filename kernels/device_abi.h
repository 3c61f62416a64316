// The C ABI between the engine and a device plugin (the CUDA backend, the
// host-reference plugin), shaped like ggml-backend's but without aborts.
//
// A plugin is a shared library that exports three C symbols:
//   rl_plugin_api_version()  RL_DEVICE_ABI_VERSION it was built against;
//   rl_plugin_score()        0: cannot run on this machine (no driver, no
//                            device); higher is better;
//   rl_plugin_init()         its function table, rl_device_api.
// The engine's loader (engine/device/plugin_loader.h) dlopens it with
// RTLD_LOCAL, checks the version and the score before calling init, and
// refuses it with one logged line naming the library and why.
//
// Contracts shared by every entry:
//   - No entry aborts or throws; every one that can fail returns an
//     rl_status (gRPC's code numbering, as the engine's Status) and leaves
//     its message for rl_device_api.last_error on the calling thread.
//   - Pointers passed in are not retained past the call unless stated.
//   - A device is used from one thread at a time, except buffer_alloc and
//     buffer_free, which may be called concurrently (the executor's waves
//     allocate from parallel threads).
//   - Sizes are bytes. Offsets and sizes of copies must lie within the
//     buffer (RL_INVALID_ARGUMENT otherwise, nothing copied).
//
// Version 2 (this one) covers devices, memory and staging; the ops a Llama
// layer needs join the table in a later version, as optional entries whose
// absence means "run it on the host".
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_DEVICE_ABI_VERSION 2

#if defined(__GNUC__)
#define RL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define RL_PLUGIN_EXPORT
#endif

// gRPC's canonical codes, the subset a device returns.
typedef int32_t rl_status;
#define RL_OK 0
#define RL_INVALID_ARGUMENT 3
#define RL_NOT_FOUND 5
#define RL_RESOURCE_EXHAUSTED 8  // out of device or pinned host memory
#define RL_FAILED_PRECONDITION 9
#define RL_DATA_LOSS 15  // a buffer's guard bytes were overwritten
#define RL_UNIMPLEMENTED 12
#define RL_INTERNAL 13
#define RL_UNAVAILABLE 14  // the device or its driver went away

typedef struct rl_device rl_device;  // opaque: one opened device
typedef struct rl_buffer rl_buffer;  // opaque: one allocation on a device

typedef struct rl_device_info {
  char name[64];             // "NVIDIA H200", "host reference"
  uint64_t total_bytes;      // device memory
  uint64_t free_bytes;       // as the driver reports it now
  uint64_t alignment;        // of every buffer's start, a power of two
  int32_t host_addressable;  // 1: rl_buffer_host_ptr gives a host pointer
  int32_t compute_major;     // compute capability (CUDA), else 0
  int32_t compute_minor;
} rl_device_info;

typedef struct rl_device_api {
  int32_t api_version;  // RL_DEVICE_ABI_VERSION
  const char* name;     // short plugin name: "cuda", "hostref"

  // Devices this plugin sees (>= 0).
  int32_t (*device_count)(void);
  // Opens device `index`; *out is closed with close_device.
  rl_status (*open_device)(int32_t index, rl_device** out);
  void (*close_device)(rl_device* device);
  rl_status (*device_info)(rl_device* device, rl_device_info* out);

  // The bytes an allocation of `bytes` takes (padding and guards included):
  // what the engine's ledger counts.
  uint64_t (*alloc_size)(rl_device* device, uint64_t bytes);
  // A buffer of `bytes` (0 allowed). RL_RESOURCE_EXHAUSTED when it does not
  // fit; contents undefined.
  rl_status (*buffer_alloc)(rl_device* device, uint64_t bytes, rl_buffer** out);
  // Frees the buffer. RL_DATA_LOSS when the plugin detected that something
  // wrote outside it (the memory is freed all the same).
  rl_status (*buffer_free)(rl_device* device, rl_buffer* buffer);
  // A host pointer to the buffer's bytes, or NULL unless host_addressable.
  void* (*buffer_host_ptr)(rl_buffer* buffer);

  // Synchronous copies between host memory and a buffer, and a fill.
  rl_status (*upload)(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                      uint64_t bytes);
  rl_status (*download)(rl_device* device, const rl_buffer* src, uint64_t offset, void* dst,
                        uint64_t bytes);
  rl_status (*fill)(rl_device* device, rl_buffer* dst, uint64_t offset, uint8_t value,
                    uint64_t bytes);

  // Host memory the device copies from fastest (pinned). *out freed with
  // host_free. (optional: NULL means the engine uses ordinary host memory.)
  rl_status (*host_alloc)(rl_device* device, uint64_t bytes, void** out);
  void (*host_free)(rl_device* device, void* ptr);

  // Waits for all work issued to the device (copies above are synchronous;
  // ops of later versions are not).
  rl_status (*synchronize)(rl_device* device);

  // The message of the last failure on the calling thread ("" if none);
  // valid until the next call on that thread.
  const char* (*last_error)(void);
} rl_device_api;

// The three symbols a plugin exports.
RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void);
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void);
RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void);

#ifdef __cplusplus
}
#endif
