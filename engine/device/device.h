// Device and DeviceBuffer: the engine's one view of a place where tensors
// live and kernels run, whether the CPU (CpuDevice) or a plugin loaded
// through kernels/device_abi.h (PluginDevice: the CUDA backend, the
// host-reference plugin). The model, the KV cache, the executor and the
// serving scheduler talk to a Device and never name one.
//
// Every device keeps its own MemoryLedger (capacity: the device's memory):
// a buffer is reserved in it before the device allocates, with the bytes the
// device really takes (AllocSize: padding and guards), and released when the
// buffer is freed. So a device's measured peak is the ledger's, and a
// request over capacity is refused before anything is touched.
//
// Errors are Status values naming what was being allocated or copied;
// nothing aborts. A failed allocation leaves the ledger unchanged.
//
// Thread safety: Allocate and buffer destruction may run concurrently (the
// executor's waves); copies on distinct buffers may too. A DeviceBuffer is
// a move-only owner. The Device must outlive every buffer it made.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/memory/host_buffer.h"
#include "engine/memory/memory_ledger.h"
#include "kernels/cpu/attention/paged_attention.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/ops/rope.h"

namespace relayout {

class Device;

// A place in a device's memory that an op reads or writes: a buffer (its
// device handle, and its host address when the host can address it) and a
// byte offset. The CPU device also takes plain host memory (handle null),
// e.g. weights the conversion left in HostBuffers. Non-owning.
struct DeviceRef {
  const Device* device = nullptr;  // null: plain host memory
  void* handle = nullptr;
  std::byte* host = nullptr;  // address of the buffer's byte 0, or null
  uint64_t offset = 0;
  uint64_t size = 0;  // bytes from offset to the buffer's end

  static DeviceRef Host(const void* data, uint64_t bytes) {
    return {nullptr, nullptr, static_cast<std::byte*>(const_cast<void*>(data)), 0, bytes};
  }
  // The place `bytes` further on (clamped to the end).
  DeviceRef operator+(uint64_t bytes) const {
    DeviceRef r = *this;
    const uint64_t step = bytes < size ? bytes : size;
    r.offset += step;
    r.size -= step;
    return r;
  }
  // Only for memory the host can address: the CPU device's ops.
  float* floats() const { return reinterpret_cast<float*>(host + offset); }
  std::byte* bytes() const { return host + offset; }
};

// A matmul weight on a device: kernels::MatmulWeight with a DeviceRef for
// its bytes.
struct DeviceMatmulWeight {
  DeviceRef data;
  kernels::WeightType type = kernels::WeightType::kF32;
  kernels::WeightLayout layout = kernels::WeightLayout::kRowMajor;
  int64_t rows = 0;
  int64_t cols = 0;
  int32_t group_rows = 1;
  int32_t k_block = 0;

  kernels::MatmulWeight OnHost() const {
    return {data.bytes(), type, layout, rows, cols, group_rows, k_block};
  }
};

struct DeviceInfo {
  std::string name;               // "CPU", "host reference", "NVIDIA H200"
  uint64_t total_bytes = 0;       // memory the device has
  uint64_t free_bytes = 0;        // as its driver reports it when asked
  uint64_t alignment = 0;         // of every buffer's start
  bool host_addressable = false;  // DeviceBuffer::host_data() is usable
  int compute_major = 0;          // CUDA compute capability, else 0
  int compute_minor = 0;
};

class DeviceBuffer {
 public:
  DeviceBuffer() = default;  // empty: no memory, no reservation
  ~DeviceBuffer() { (void)Release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  // Frees the memory and gives back its reservation; the buffer is then
  // empty. DataLoss when the device found that something wrote outside the
  // buffer (the memory is freed all the same). OK on an empty buffer.
  Status Release();

  uint64_t size() const { return size_; }
  bool empty() const { return device_ == nullptr; }
  MemoryCategory category() const { return category_; }
  // The bytes, for devices whose memory the host can address (CPU, hostref);
  // null otherwise and when empty.
  std::byte* host_data() const { return host_data_; }
  void* handle() const { return handle_; }
  // The buffer's bytes from `offset`, for the device's ops.
  DeviceRef ref(uint64_t offset = 0) const {
    return DeviceRef{device_, handle_, host_data_, 0, size_} + offset;
  }

 private:
  friend class Device;
  Device* device_ = nullptr;
  void* handle_ = nullptr;
  std::byte* host_data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t reserved_ = 0;  // in the device's ledger
  MemoryCategory category_ = MemoryCategory::kWeights;
};

// Host memory a device copies from fastest: pinned (page-locked) when the
// device's plugin offers it, else an ordinary HostBuffer. Counted in a host
// ledger (not the device's) as kStaging while it lives. Move-only owner.
class StagingBuffer {
 public:
  StagingBuffer() = default;
  ~StagingBuffer() { Release(); }
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;
  StagingBuffer(StagingBuffer&& other) noexcept;
  StagingBuffer& operator=(StagingBuffer&& other) noexcept;

  std::span<std::byte> span() const { return {data_, size_}; }
  bool pinned() const { return pinned_; }
  void Release();

 private:
  friend class Device;
  Device* device_ = nullptr;  // set when pinned: its host_free frees it
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  bool pinned_ = false;
  HostBuffer fallback_;
  MemoryLedger* ledger_ = nullptr;  // the reservation of a pinned buffer
};

// A point in a device's stream of work (kernels/device_abi.h's events).
// Move-only owner. On a device whose copies are all synchronous it is
// empty and always complete.
class DeviceEvent {
 public:
  DeviceEvent() = default;
  ~DeviceEvent();
  DeviceEvent(const DeviceEvent&) = delete;
  DeviceEvent& operator=(const DeviceEvent&) = delete;
  DeviceEvent(DeviceEvent&& other) noexcept;
  DeviceEvent& operator=(DeviceEvent&& other) noexcept;

 private:
  friend class Device;
  Device* device_ = nullptr;
  void* handle_ = nullptr;
};

class Device {
 public:
  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // How the device is named on the command line: "cpu", "hostref:0",
  // "cuda:0".
  const std::string& spec() const { return spec_; }
  const DeviceInfo& info() const { return info_; }
  // The info as the device reports it now (free_bytes changes); info() on
  // failure or for a device that cannot tell.
  virtual DeviceInfo QueryInfo() const { return info_; }
  // Buffers whose free found a write outside them (DataLoss), including
  // those freed by a destructor, which cannot return the error.
  uint64_t corrupted_frees() const { return corrupted_frees_.load(); }
  MemoryLedger& ledger() { return *ledger_; }
  const MemoryLedger& ledger() const { return *ledger_; }

  // The bytes an allocation of `bytes` takes on this device.
  virtual uint64_t AllocSize(uint64_t bytes) const = 0;

  // A buffer of `bytes` counted as `category`. Errors: the ledger's
  // ResourceExhausted when over capacity (nothing allocated), or the
  // device's own (ResourceExhausted, Unavailable), prefixed by `what` (a
  // tensor's or a request's name).
  Result<DeviceBuffer> Allocate(uint64_t bytes, MemoryCategory category, std::string_view what);

  // `bytes` of staging for uploads, counted in host_ledger as kStaging:
  // pinned when the device offers it, else ordinary host memory. Errors:
  // the ledger's ResourceExhausted.
  Result<StagingBuffer> AllocateStaging(uint64_t bytes, MemoryLedger* host_ledger);

  // An upload that may return before it is done, ordered with the device's
  // other work; src (staging from AllocateStaging) must stay untouched until
  // an event recorded after it completes. Synchronous where the device has
  // no asynchronous copies.
  Status UploadAsync(DeviceBuffer& dst, uint64_t offset, std::span<const std::byte> src);
  Result<DeviceEvent> CreateEvent();
  // Marks the stream after everything issued so far.
  Status Record(DeviceEvent& event);
  // Returns when the work before the event's last Record is done.
  Status Wait(DeviceEvent& event);

  // Synchronous copies and a fill; InvalidArgument when the range is
  // outside the buffer (nothing copied).
  Status Upload(DeviceBuffer& dst, uint64_t offset, std::span<const std::byte> src);
  Status Download(const DeviceBuffer& src, uint64_t offset, std::span<std::byte> dst);
  Status Fill(DeviceBuffer& dst, uint64_t offset, uint8_t value, uint64_t bytes);
  virtual Status Synchronize() { return Status::OK(); }

  // ---- The ops of a Llama forward pass (kernels/device_abi.h states each
  // contract). Every operand is on this device; a device that lacks an op
  // answers Unimplemented naming it, and a refused argument is
  // InvalidArgument or Internal (a bug of the caller). float operands are
  // row-major float32. Ops may run asynchronously: Download and
  // Synchronize wait for them.

  // Whether Matmul runs this weight.
  virtual bool MatmulSupported(const DeviceMatmulWeight& w) const;
  // y[tokens, w.rows] = x[tokens, w.cols] * W^T.
  virtual Status Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t tokens, DeviceRef y);
  // y[r, :] += bias for each of rows rows of cols floats.
  virtual Status AddRowBias(DeviceRef bias, int64_t rows, int64_t cols, DeviceRef y);
  // out[i] = row tokens[i] of table [vocab, dim] of `type`, as floats.
  virtual Status Embedding(DeviceRef table, kernels::WeightType type, int64_t vocab, int64_t dim,
                           std::span<const int32_t> tokens, DeviceRef out);
  virtual Status RmsNorm(DeviceRef x, DeviceRef weight, int64_t rows, int64_t dim, float eps,
                         DeviceRef out);
  // RoPE in place on x [rows, heads * head_dim], row r at positions[r].
  virtual Status Rope(DeviceRef x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rope_dim,
                      std::span<const int32_t> positions, DeviceRef inv_freq,
                      kernels::RopePairing pairing);
  // dst[i] += src[i].
  virtual Status Add(DeviceRef src, int64_t n, DeviceRef dst);
  // out[i] = silu(gate[i]) * up[i].
  virtual Status SiluGate(DeviceRef gate, DeviceRef up, int64_t n, DeviceRef out);
  // The spans' K and V rows into the paged pools of pool_blocks blocks.
  virtual Status KvWrite(const kernels::PagedAttentionParams& p, int64_t pool_blocks, DeviceRef k,
                         DeviceRef v, std::span<const kernels::AttentionSpan> spans,
                         DeviceRef k_pool, DeviceRef v_pool);
  // Causal paged attention of q's rows over the pools into out.
  virtual Status Attention(const kernels::PagedAttentionParams& p, int64_t pool_blocks, DeviceRef q,
                           std::span<const kernels::AttentionSpan> spans, DeviceRef k_pool,
                           DeviceRef v_pool, DeviceRef out);
  // out[r] = the first index of row r's maximum.
  virtual Status Argmax(DeviceRef x, int64_t rows, int64_t cols, std::span<int32_t> out);
  // The device scratch TransformInPlace needs to turn w (uploaded in its
  // common layout) into w's layout; nullopt when the device cannot.
  virtual std::optional<uint64_t> TransformScratchBytes(const DeviceMatmulWeight& w) const;
  // Converts w.data in place into w's layout with `scratch` (at least
  // TransformScratchBytes(w) bytes on this device).
  virtual Status TransformInPlace(const DeviceMatmulWeight& w, DeviceRef scratch);

  // Bracket the ops of one decode step (kernels/device_abi.h, step
  // graphs): between them only ops are issued, and the device may defer
  // them to StepEnd and replay the step as one captured graph. No-ops on a
  // device without step graphs.
  virtual Status StepBegin() { return Status::OK(); }
  virtual Status StepEnd() { return Status::OK(); }

  // Whether every op of the forward pass is there (a plugin may lack some).
  virtual bool runs_forward_pass() const { return false; }
  // Whether the ops also take plain host memory (DeviceRef::Host): the CPU.
  virtual bool accepts_host_memory() const { return false; }
  // Copies bytes from a place on this device (or host memory) to the host.
  Status Download(DeviceRef src, std::span<std::byte> dst);
  // Copies host bytes to a place on this device (or host memory).
  Status Upload(DeviceRef dst, std::span<const std::byte> src);

 protected:
  // `info.total_bytes` becomes the ledger's capacity, unless `shared_ledger`
  // (not owned, outlives the device) is given: then buffers are counted
  // there, with whatever else shares it (the CPU device of a process whose
  // one ledger counts weights, KV cache and activations together).
  Device(std::string spec, DeviceInfo info, MemoryLedger* shared_ledger = nullptr);

  // The device's side of the operations above; ranges are already checked.
  struct Allocation {
    void* handle = nullptr;
    std::byte* host_data = nullptr;
  };
  virtual Result<Allocation> DoAllocate(uint64_t bytes) = 0;
  virtual Status DoFree(void* handle) = 0;
  virtual Status DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) = 0;
  virtual Status DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) = 0;
  virtual Status DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) = 0;
  // Asynchronous uploads and events; the defaults are synchronous (an
  // upload is done when it returns, events are null and complete).
  virtual Status DoUploadAsync(void* handle, uint64_t offset, const std::byte* src,
                               uint64_t bytes) {
    return DoUpload(handle, offset, src, bytes);
  }
  virtual Result<void*> DoCreateEvent() { return nullptr; }
  virtual void DoDestroyEvent(void* /*event*/) {}
  virtual Status DoRecord(void* /*event*/) { return Status::OK(); }
  virtual Status DoWait(void* /*event*/) { return Status::OK(); }
  // Pinned host memory, or null (Unimplemented) when the device has none.
  virtual Result<std::byte*> DoHostAlloc(uint64_t /*bytes*/) {
    return Status::Unimplemented(spec_, "no pinned host memory");
  }
  virtual void DoHostFree(std::byte* /*data*/) {}

 private:
  friend class DeviceBuffer;
  friend class DeviceEvent;
  friend class StagingBuffer;
  Status Free(DeviceBuffer& buffer);
  // InvalidArgument unless [offset, offset + bytes) lies in a buffer of
  // this device.
  Status CheckRange(const DeviceBuffer& b, uint64_t offset, uint64_t bytes,
                    std::string_view what) const;

  const std::string spec_;
  const DeviceInfo info_;
  MemoryLedger own_ledger_;
  MemoryLedger* const ledger_;
  std::atomic<uint64_t> corrupted_frees_{0};
};

}  // namespace relayout
