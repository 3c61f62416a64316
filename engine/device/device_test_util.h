// Test helpers for code that runs on a device: the host-reference plugin
// from the build tree, and environment variables (its fault injection) set
// for one scope.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "engine/device/device_loader.h"

namespace relayout::testing {

// The host-reference device of this build (RELAYOUT_PLUGIN_BUILD_DIR);
// null, with a test failure, when it does not open.
inline std::unique_ptr<Device> OpenHostref() {
  DeviceRequest request;
  request.spec = "hostref";
  request.plugin_dirs = {RELAYOUT_PLUGIN_BUILD_DIR};
  Result<OpenedDevice> opened = OpenDevice(request);
  EXPECT_TRUE(opened.ok()) << opened.status();
  return opened.ok() ? std::move(opened->device) : nullptr;
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

}  // namespace relayout::testing
