// The C ABI between the engine and a device plugin (the CUDA backend).
//
// A plugin is a shared library exporting rl_plugin_api_version() and
// rl_plugin_score(). Version 1 is only that handshake: no loader in the
// engine calls it yet, and the engine runs on the CPU kernels alone. The
// loader it is meant for dlopens the plugin with RTLD_LOCAL and refuses it
// (saying why) when the version differs or the score is 0. No entry may
// abort: every failure is a return code.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_DEVICE_ABI_VERSION 1

#if defined(__GNUC__)
#define RL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define RL_PLUGIN_EXPORT
#endif

// RL_DEVICE_ABI_VERSION the plugin was built against.
RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void);
// 0: cannot run here (no driver, no device); higher is better.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void);

#ifdef __cplusplus
}
#endif
