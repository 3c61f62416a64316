// Entry points of the CUDA backend plugin (see kernels/device_abi.h).
#include <cuda_runtime.h>

#include "kernels/device_abi.h"

extern "C" {

RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void) { return RL_DEVICE_ABI_VERSION; }

// One point per usable device; 0 when the driver or every device is missing,
// which is the answer on CPU-only hosts.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count > 0 ? count : 0;
}

}  // extern "C"
