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
#include <vector>

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

  bool runs_forward_pass() const override;
  DeviceInfo QueryInfo() const override;
  bool MatmulSupported(const DeviceMatmulWeight& w) const override;
  Status Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t tokens, DeviceRef y) override;
  Status AddRowBias(DeviceRef bias, int64_t rows, int64_t cols, DeviceRef y) override;
  Status Embedding(DeviceRef table, kernels::WeightType type, int64_t vocab, int64_t dim,
                   std::span<const int32_t> tokens, DeviceRef out) override;
  Status RmsNorm(DeviceRef x, DeviceRef weight, int64_t rows, int64_t dim, float eps,
                 DeviceRef out) override;
  Status Rope(DeviceRef x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rope_dim,
              std::span<const int32_t> positions, DeviceRef inv_freq,
              kernels::RopePairing pairing) override;
  Status Add(DeviceRef src, int64_t n, DeviceRef dst) override;
  Status SiluGate(DeviceRef gate, DeviceRef up, int64_t n, DeviceRef out) override;
  Status KvWrite(const kernels::PagedAttentionParams& p, int64_t pool_blocks, DeviceRef k,
                 DeviceRef v, std::span<const kernels::AttentionSpan> spans, DeviceRef k_pool,
                 DeviceRef v_pool) override;
  Status Attention(const kernels::PagedAttentionParams& p, int64_t pool_blocks, DeviceRef q,
                   std::span<const kernels::AttentionSpan> spans, DeviceRef k_pool,
                   DeviceRef v_pool, DeviceRef out) override;
  Status Argmax(DeviceRef x, int64_t rows, int64_t cols, std::span<int32_t> out) override;
  std::optional<uint64_t> TransformScratchBytes(const DeviceMatmulWeight& w) const override;
  Status TransformInPlace(const DeviceMatmulWeight& w, DeviceRef scratch) override;
  Status StepBegin() override;
  Status StepEnd() override;

 private:
  PluginDevice(std::shared_ptr<const PluginLibrary> library, rl_device* device, std::string spec,
               DeviceInfo info);
  Result<Allocation> DoAllocate(uint64_t bytes) override;
  Status DoFree(void* handle) override;
  Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) override;
  Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) override;
  Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) override;
  Status DoUploadAsync(void* handle, uint64_t offset, const std::byte* src,
                       uint64_t bytes) override;
  Result<void*> DoCreateEvent() override;
  void DoDestroyEvent(void* event) override;
  Status DoRecord(void* event) override;
  Status DoWait(void* event) override;
  bool has_async() const;
  Result<std::byte*> DoHostAlloc(uint64_t bytes) override;
  void DoHostFree(std::byte* data) override;
  // A Status from a plugin's code and its last_error.
  Status Check(rl_status code, std::string_view what) const;
  // The operand as the plugin names it; InvalidArgument for memory that is
  // not one of this device's buffers.
  Result<rl_ref> Ref(const DeviceRef& r, std::string_view op) const;
  Status Missing(std::string_view op) const;
  // The spans as the ABI takes them, in spans_.
  std::span<const rl_attention_span> RawSpans(std::span<const kernels::AttentionSpan> spans);

  std::shared_ptr<const PluginLibrary> library_;
  const rl_device_api& api_;
  rl_device* device_;
  std::vector<rl_attention_span> spans_;  // reused per call
};

}  // namespace relayout
