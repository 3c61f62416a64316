// CpuDevice: host memory as a Device, and the ops of kernels/cpu. Buffers
// are HostBuffers (64-byte aligned; mapped, and given back to the OS when
// freed, from 2 MiB), so the kernels read them in place: an op is the same
// kernel call the model made before the device seam, on the same thread
// pool, with no copy and no speed lost.
//
// Its ops also take plain host memory (DeviceRef::Host), as the weights a
// host conversion leaves in HostBuffers.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/device/device.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {

class CpuDevice final : public Device {
 public:
  // `capacity_bytes`: what the ledger allows (the memory limit or the
  // memory available); MemoryLedger::kUnlimited for none.
  explicit CpuDevice(uint64_t capacity_bytes = MemoryLedger::kUnlimited);
  // Counts its buffers in `shared_ledger` (not owned; outlives the device)
  // and runs its ops on `pool` (not owned, may be null: the calling thread).
  CpuDevice(MemoryLedger* shared_ledger, kernels::ThreadPool* pool);
  ~CpuDevice() override;

  uint64_t AllocSize(uint64_t bytes) const override { return bytes; }
  bool accepts_host_memory() const override { return true; }
  bool runs_forward_pass() const override { return true; }

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

 private:
  Result<Allocation> DoAllocate(uint64_t bytes) override;
  Status DoFree(void* handle) override;
  Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) override;
  Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) override;
  Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) override;

  // HostBuffer asks a ledger before it allocates; the device's own ledger
  // already counted the bytes, so its buffers draw on this unlimited one.
  std::unique_ptr<MemoryLedger> backing_ledger_;
  kernels::ThreadPool* pool_ = nullptr;
};

}  // namespace relayout
