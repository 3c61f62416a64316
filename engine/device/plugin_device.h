// PluginLibrary and PluginDevice: a device plugin (kernels/device_abi.h)
// loaded with dlopen, and one of its devices as a Device.
//
// Loading is defensive, as ggml-backend's load_backend: dlopen with
// RTLD_LOCAL (the plugin's CUDA or other libraries stay out of the
// process's global namespace), then rl_plugin_api_version must equal
// RL_DEVICE_ABI_VERSION, rl_plugin_score must be above 0, and
// rl_plugin_init must return a table of that version. Each refusal is an
// error naming the library and why, for the loader to log or return. A
// library is never unloaded (RTLD_NODELETE): a CUDA runtime does not
// survive dlclose well, and a process loads at most a few.
//
// Thread safety: as Device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/base/status.h"
#include "engine/device/device.h"
#include "kernels/device_abi.h"

namespace relayout {

class PluginLibrary {
 public:
  // Loads `path`. FailedPrecondition naming the path when it cannot be
  // opened (missing, another architecture, unresolved symbols), misses a
  // symbol, has another ABI version, scores 0 or gives no table.
  static Result<std::shared_ptr<const PluginLibrary>> Load(const std::string& path);

  const std::string& path() const { return path_; }
  const rl_device_api& api() const { return *api_; }
  int32_t score() const { return score_; }

 private:
  PluginLibrary(std::string path, const rl_device_api* api, int32_t score)
      : path_(std::move(path)), api_(api), score_(score) {}
  std::string path_;
  const rl_device_api* api_;
  int32_t score_;
};

class PluginDevice final : public Device {
 public:
  // Opens device `index` of the library. Errors carry the plugin's
  // last_error.
  static Result<std::unique_ptr<PluginDevice>> Open(std::shared_ptr<const PluginLibrary> library,
                                                    int32_t index);
  ~PluginDevice() override;

  uint64_t AllocSize(uint64_t bytes) const override;
  Status Synchronize() override;

 private:
  PluginDevice(std::shared_ptr<const PluginLibrary> library, rl_device* device, std::string spec,
               DeviceInfo info);
  Result<Allocation> DoAllocate(uint64_t bytes) override;
  Status DoFree(void* handle) override;
  Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) override;
  Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) override;
  Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) override;
  // A Status from a plugin's code and its last_error.
  Status Check(rl_status code, std::string_view what) const;

  std::shared_ptr<const PluginLibrary> library_;
  const rl_device_api& api_;
  rl_device* device_;
};

}  // namespace relayout
