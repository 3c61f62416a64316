// OpenDevice: from a --device spec to an opened Device, and why that one.
//
//   auto        the CUDA plugin's device 0 when librelayout_cuda.so loads and
//               scores above 0, else the CPU (the refusal logged, one line);
//   cpu         the CPU;
//   cuda[:N]    the CUDA plugin's device N; an error when it cannot be had;
//   hostref[:N] the host-reference plugin (CI's stand-in for a GPU).
//
// Plugins are files librelayout_<name>.so, looked for in order in the
// directories of $RELAYOUT_PLUGIN_DIR (':'-separated), <directory of the
// executable>/../lib/relayoutd (the build tree and an installed tree alike)
// and /usr/local/lib/relayoutd (the GPU image).
//
// Thread safety: free functions; a call loads libraries, so callers do it
// once at start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/device/device.h"

namespace relayout {

struct DeviceRequest {
  std::string spec = "auto";
  // The CPU's ledger capacity: the memory limit or what is available.
  uint64_t cpu_capacity_bytes = MemoryLedger::kUnlimited;
  // Where plugins are looked for; empty: DefaultPluginDirs().
  std::vector<std::string> plugin_dirs;
};

struct OpenedDevice {
  std::unique_ptr<Device> device;
  // Why this device: "asked for", "librelayout_cuda.so scores 1", "no GPU
  // plugin: <the refusal>".
  std::string why;
};

// Errors: InvalidArgument for a malformed spec; for an explicit plugin
// device, NotFound when no plugin file exists and FailedPrecondition (the
// loader's refusal, naming the library) or the plugin's own error.
// `log` gets one line per plugin refused under "auto".
Result<OpenedDevice> OpenDevice(const DeviceRequest& request,
                                const std::function<void(const std::string&)>& log = {});

std::vector<std::string> DefaultPluginDirs();

}  // namespace relayout
