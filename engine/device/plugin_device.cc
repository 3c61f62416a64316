#include "engine/device/plugin_device.h"

#include <dlfcn.h>

#include <cstring>
#include <utility>

namespace relayout {
namespace {

using VersionFn = int32_t (*)();
using ScoreFn = int32_t (*)();
using InitFn = const rl_device_api* (*)();

Status Refused(const std::string& path, std::string_view why) {
  return Status::FailedPrecondition(path, why);
}

}  // namespace

Result<std::shared_ptr<const PluginLibrary>> PluginLibrary::Load(const std::string& path) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    return Refused(path, StrCat("cannot load: ", why != nullptr ? why : "dlopen failed"));
  }
  // RTLD_NODELETE keeps the code mapped after dlclose; the handle itself is
  // not needed past the lookups.
  struct Close {
    void* h;
    ~Close() { dlclose(h); }
  } close{handle};
  const auto version = reinterpret_cast<VersionFn>(dlsym(handle, "rl_plugin_api_version"));
  const auto score = reinterpret_cast<ScoreFn>(dlsym(handle, "rl_plugin_score"));
  const auto init = reinterpret_cast<InitFn>(dlsym(handle, "rl_plugin_init"));
  if (version == nullptr || score == nullptr || init == nullptr) {
    return Refused(path,
                   "not a relayoutd device plugin (rl_plugin_api_version, "
                   "rl_plugin_score or rl_plugin_init missing)");
  }
  if (const int32_t v = version(); v != RL_DEVICE_ABI_VERSION) {
    return Refused(
        path, StrCat("device ABI version ", v, ", this relayoutd speaks ", RL_DEVICE_ABI_VERSION));
  }
  const int32_t s = score();
  if (s <= 0) return Refused(path, "cannot run on this machine (score 0: no driver or no device)");
  const rl_device_api* api = init();
  if (api == nullptr || api->api_version != RL_DEVICE_ABI_VERSION || api->name == nullptr ||
      api->last_error == nullptr) {
    return Refused(path, "rl_plugin_init gave no table of this ABI version");
  }
  return std::shared_ptr<const PluginLibrary>(new PluginLibrary(path, api, s));
}

Result<std::unique_ptr<PluginDevice>> PluginDevice::Open(
    std::shared_ptr<const PluginLibrary> library, int32_t index) {
  const rl_device_api& api = library->api();
  const std::string spec = StrCat(api.name, ":", index);
  rl_device* device = nullptr;
  if (const rl_status s = api.open_device(index, &device); s != RL_OK) {
    return Status::FromCode(static_cast<StatusCode>(s), spec, api.last_error());
  }
  rl_device_info raw{};
  if (const rl_status s = api.device_info(device, &raw); s != RL_OK) {
    const Status error = Status::FromCode(static_cast<StatusCode>(s), spec, api.last_error());
    api.close_device(device);
    return error;
  }
  DeviceInfo info{std::string(raw.name, strnlen(raw.name, sizeof raw.name)),
                  raw.total_bytes,
                  raw.free_bytes,
                  raw.alignment,
                  raw.host_addressable != 0,
                  raw.compute_major,
                  raw.compute_minor};
  return std::unique_ptr<PluginDevice>(
      new PluginDevice(std::move(library), device, spec, std::move(info)));
}

PluginDevice::PluginDevice(std::shared_ptr<const PluginLibrary> library, rl_device* device,
                           std::string spec, DeviceInfo info)
    : Device(std::move(spec), std::move(info)),
      library_(std::move(library)),
      api_(library_->api()),
      device_(device) {}

PluginDevice::~PluginDevice() { api_.close_device(device_); }

Status PluginDevice::Check(rl_status code, std::string_view what) const {
  if (code == RL_OK) return Status::OK();
  return Status::FromCode(static_cast<StatusCode>(code), StrCat(spec(), ": ", what),
                          api_.last_error());
}

uint64_t PluginDevice::AllocSize(uint64_t bytes) const { return api_.alloc_size(device_, bytes); }

Status PluginDevice::Synchronize() { return Check(api_.synchronize(device_), "synchronize"); }

Result<Device::Allocation> PluginDevice::DoAllocate(uint64_t bytes) {
  rl_buffer* buffer = nullptr;
  RETURN_IF_ERROR(Check(api_.buffer_alloc(device_, bytes, &buffer), "allocate"));
  return Allocation{buffer, static_cast<std::byte*>(api_.buffer_host_ptr(buffer))};
}

Status PluginDevice::DoFree(void* handle) {
  return Check(api_.buffer_free(device_, static_cast<rl_buffer*>(handle)), "free");
}

Status PluginDevice::DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) {
  return Check(api_.upload(device_, static_cast<rl_buffer*>(handle), offset, src, bytes), "upload");
}

Status PluginDevice::DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) {
  return Check(api_.download(device_, static_cast<const rl_buffer*>(handle), offset, dst, bytes),
               "download");
}

Status PluginDevice::DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) {
  return Check(api_.fill(device_, static_cast<rl_buffer*>(handle), offset, value, bytes), "fill");
}

}  // namespace relayout
