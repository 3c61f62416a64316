#include "engine/device/cpu_device.h"

#include <cstring>
#include <functional>
#include <memory>

#include "engine/memory/host_buffer.h"
#include "kernels/cpu/attention/kv_write.h"
#include "kernels/cpu/ops/add.h"
#include "kernels/cpu/ops/argmax.h"
#include "kernels/cpu/ops/embedding.h"
#include "kernels/cpu/ops/rmsnorm.h"
#include "kernels/cpu/ops/silu_gate.h"

namespace relayout {
namespace {

DeviceInfo CpuInfo(uint64_t capacity_bytes) {
  return DeviceInfo{"CPU", capacity_bytes, capacity_bytes, HostBuffer::kSmallAlignment, true, 0, 0};
}

// Runs fn(first_row, rows) over [0, rows) in chunks across the pool: the
// elementwise steps (norms, RoPE, SiLU, residuals) would otherwise run on one
// core while the matmuls use all of them, which caps a prefill's speed-up.
void ForRows(kernels::ThreadPool* pool, int64_t rows,
             const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr || rows < 2) {
    fn(0, rows);
    return;
  }
  pool->RunRanges(rows, 1, [&](int64_t begin, int64_t end) { fn(begin, end - begin); });
}

Status Refused(std::string_view op) {
  return Status::Internal("cpu", StrCat(op, " refused its arguments"));
}

}  // namespace

CpuDevice::CpuDevice(uint64_t capacity_bytes)
    : Device("cpu", CpuInfo(capacity_bytes)), backing_ledger_(std::make_unique<MemoryLedger>()) {}

CpuDevice::CpuDevice(MemoryLedger* shared_ledger, kernels::ThreadPool* pool)
    : Device("cpu", CpuInfo(shared_ledger->capacity()), shared_ledger),
      backing_ledger_(std::make_unique<MemoryLedger>()),
      pool_(pool) {}

CpuDevice::~CpuDevice() = default;

Result<Device::Allocation> CpuDevice::DoAllocate(uint64_t bytes) {
  ASSIGN_OR_RETURN(HostBuffer buffer,
                   HostBuffer::Allocate(backing_ledger_.get(), MemoryCategory::kWeights, bytes));
  // The handle owns the buffer until DoFree adopts it back.
  auto owned = std::make_unique<HostBuffer>(std::move(buffer));
  std::byte* data = owned->data();
  return Allocation{owned.release(), data};
}

Status CpuDevice::DoFree(void* handle) {
  std::unique_ptr<HostBuffer>(static_cast<HostBuffer*>(handle)).reset();
  return Status::OK();
}

Status CpuDevice::DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) {
  if (bytes > 0) std::memcpy(static_cast<HostBuffer*>(handle)->data() + offset, src, bytes);
  return Status::OK();
}

Status CpuDevice::DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) {
  if (bytes > 0) std::memcpy(dst, static_cast<HostBuffer*>(handle)->data() + offset, bytes);
  return Status::OK();
}

Status CpuDevice::DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) {
  if (bytes > 0) std::memset(static_cast<HostBuffer*>(handle)->data() + offset, value, bytes);
  return Status::OK();
}

bool CpuDevice::MatmulSupported(const DeviceMatmulWeight& w) const {
  return kernels::MatmulSupported(w.OnHost());
}

Status CpuDevice::Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t tokens, DeviceRef y) {
  if (!kernels::Matmul(w.OnHost(), x.floats(), tokens, y.floats(), pool_)) {
    return Status::Internal("cpu", StrCat("matmul refused a ", w.rows, "x", w.cols, " weight"));
  }
  return Status::OK();
}

Status CpuDevice::AddRowBias(DeviceRef bias, int64_t rows, int64_t cols, DeviceRef y) {
  kernels::AddRowBias(bias.floats(), rows, cols, y.floats());
  return Status::OK();
}

Status CpuDevice::Embedding(DeviceRef table, kernels::WeightType type, int64_t vocab, int64_t dim,
                            std::span<const int32_t> tokens, DeviceRef out) {
  if (!kernels::EmbeddingRows(table.bytes(), type, vocab, dim, tokens.data(),
                              static_cast<int64_t>(tokens.size()), out.floats())) {
    return Refused("embedding");
  }
  return Status::OK();
}

Status CpuDevice::RmsNorm(DeviceRef x, DeviceRef weight, int64_t rows, int64_t dim, float eps,
                          DeviceRef out) {
  const float* in = x.floats();
  const float* w = weight.floats();
  float* y = out.floats();
  ForRows(pool_, rows, [&](int64_t r, int64_t n) {
    kernels::RmsNorm(in + r * dim, w, n, dim, eps, y + r * dim);
  });
  return Status::OK();
}

Status CpuDevice::Rope(DeviceRef x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rope_dim,
                       std::span<const int32_t> positions, DeviceRef inv_freq,
                       kernels::RopePairing pairing) {
  float* data = x.floats();
  const float* freq = inv_freq.floats();
  const int64_t stride = heads * head_dim;
  ForRows(pool_, rows, [&](int64_t r, int64_t n) {
    kernels::ApplyRope(data + r * stride, n, heads, head_dim, rope_dim, positions.data() + r, freq,
                       pairing);
  });
  return Status::OK();
}

Status CpuDevice::Add(DeviceRef src, int64_t n, DeviceRef dst) {
  const float* x = src.floats();
  float* y = dst.floats();
  // Rows of 1024 floats: enough work per task to be worth a thread.
  constexpr int64_t kChunk = 1024;
  ForRows(pool_, (n + kChunk - 1) / kChunk, [&](int64_t c, int64_t count) {
    const int64_t begin = c * kChunk;
    kernels::Add(x + begin, std::min(n, (c + count) * kChunk) - begin, y + begin);
  });
  return Status::OK();
}

Status CpuDevice::SiluGate(DeviceRef gate, DeviceRef up, int64_t n, DeviceRef out) {
  const float* g = gate.floats();
  const float* u = up.floats();
  float* y = out.floats();
  constexpr int64_t kChunk = 1024;
  ForRows(pool_, (n + kChunk - 1) / kChunk, [&](int64_t c, int64_t count) {
    const int64_t begin = c * kChunk;
    kernels::SiluGate(g + begin, u + begin, std::min(n, (c + count) * kChunk) - begin, y + begin);
  });
  return Status::OK();
}

Status CpuDevice::KvWrite(const kernels::PagedAttentionParams& p, int64_t pool_blocks, DeviceRef k,
                          DeviceRef v, std::span<const kernels::AttentionSpan> spans,
                          DeviceRef k_pool, DeviceRef v_pool) {
  if (!kernels::KvWrite(p.n_kv_heads * p.head_dim, p.block_size, pool_blocks, p.kv_elem, k.floats(),
                        v.floats(), spans.data(), static_cast<int64_t>(spans.size()),
                        k_pool.bytes(), v_pool.bytes())) {
    return Refused("kv_write");
  }
  return Status::OK();
}

Status CpuDevice::Attention(const kernels::PagedAttentionParams& p, int64_t /*pool_blocks*/,
                            DeviceRef q, std::span<const kernels::AttentionSpan> spans,
                            DeviceRef k_pool, DeviceRef v_pool, DeviceRef out) {
  if (!kernels::PagedAttention(p, q.floats(), spans.data(), static_cast<int64_t>(spans.size()),
                               k_pool.bytes(), v_pool.bytes(), out.floats(), pool_)) {
    return Refused("attention");
  }
  return Status::OK();
}

Status CpuDevice::Argmax(DeviceRef x, int64_t rows, int64_t cols, std::span<int32_t> out) {
  if (rows < 0 || cols < 1 || out.size() < static_cast<size_t>(rows)) return Refused("argmax");
  kernels::ArgmaxRows(x.floats(), rows, cols, out.data());
  return Status::OK();
}

}  // namespace relayout
