// The host-reference device plugin (librelayout_hostref.so): a device whose
// memory is host memory this plugin owns, loaded through the same dlopen
// path as the CUDA backend, so that CI exercises the loader, the device
// ledger and the staging path without a GPU.
//
// Every allocation is laid out as
//   [front guard: kGuardBytes of 0xFD][payload, rounded up to kAlignment][back guard]
// with the payload poisoned with 0xCD when allocated (so a reader of memory
// nobody wrote sees garbage, not zeros) and 0xDD when freed. buffer_free
// checks both guards and answers RL_DATA_LOSS, naming the side, when
// something wrote outside the buffer.
//
// Asynchronous uploads are deferred: upload_async queues the copy, and it
// runs only when a later entry touches device memory or an event is
// synchronized (see rl_device::pending).
//
// Steps are deferred as a graph-capturing device defers them: between
// step_begin and step_end every op is validated when called but runs at
// step_end (its host arrays copied, as a GPU plugin copies them into its
// metadata arena), and every entry but the ops answers
// RL_FAILED_PRECONDITION. Each step's shape signature (the ops, their
// operands and sizes, the attention's context bucket) is counted as a
// capture when new and a replay when seen before: the exported
// rl_hostref_step_stats tells the tests whether an engine's decode steps
// would replay one CUDA graph.
//
// Fault injection, read from the environment when a device is opened:
//   RELAYOUT_HOSTREF_FAIL_ALLOC_AT=N   the Nth buffer_alloc (1-based) fails
//                                      with RL_RESOURCE_EXHAUSTED
//   RELAYOUT_HOSTREF_FAIL_UPLOAD_AT=N  the Nth upload fails with RL_INTERNAL
//   RELAYOUT_HOSTREF_MEMORY_BYTES=B    the device's capacity (default 16 GiB);
//                                      allocations past it fail as a real
//                                      device's would
// Counting starts at open_device, per device.
//
// Ops are the portable C++ kernels of kernels/cpu (this plugin's own copy,
// linked in with its symbols hidden), forced to their scalar paths: the
// reference algorithm, bit for bit what every ISA gives for quantized
// weights and equal to float rounding for float ones, so a model run here
// matches the CPU device's logits while every operand goes through this
// ABI and is range-checked against its buffer. They run on the device's
// own thread pool.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "kernels/cpu/attention/kv_write.h"
#include "kernels/cpu/attention/paged_attention.h"
#include "kernels/cpu/attention/paged_attention_testing.h"
#include "kernels/cpu/layout/bf16_kpair.h"
#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/layout/row_group_interleave.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_testing.h"
#include "kernels/cpu/ops/add.h"
#include "kernels/cpu/ops/argmax.h"
#include "kernels/cpu/ops/embedding.h"
#include "kernels/cpu/ops/rmsnorm.h"
#include "kernels/cpu/ops/rope.h"
#include "kernels/cpu/ops/silu_gate.h"
#include "kernels/cpu/runtime/thread_pool.h"
#include "kernels/device_abi.h"

namespace {

constexpr uint64_t kAlignment = 64;
constexpr uint64_t kGuardBytes = 64;
constexpr uint8_t kGuardByte = 0xFD;
constexpr uint8_t kFreshByte = 0xCD;
constexpr uint8_t kFreedByte = 0xDD;
constexpr uint64_t kDefaultCapacity = uint64_t{16} << 30;

thread_local std::string last_error;

rl_status Fail(rl_status code, std::string message) {
  last_error = std::move(message);
  return code;
}

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long parsed = std::strtoull(v, &end, 10);
  return end != nullptr && *end == '\0' ? parsed : fallback;
}

uint64_t RoundUp(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

struct rl_device {
  uint64_t capacity = kDefaultCapacity;
  uint64_t fail_alloc_at = 0;  // 0: never
  uint64_t fail_upload_at = 0;
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> uploads{0};
  std::mutex mu;
  uint64_t in_use = 0;                 // guarded by mu: alloc_size of live buffers
  relayout::kernels::ThreadPool pool;  // the ops'
  // upload_async's copies, deferred until something needs their result
  // (any later entry that touches device memory, an event's synchronize):
  // an engine that reuses a staging buffer before its event completed
  // uploads the wrong bytes here, as it would on a GPU.
  struct PendingCopy {
    rl_buffer* dst;
    uint64_t offset;
    const void* src;
    uint64_t bytes;
  };
  std::mutex pending_mu;             // buffer_free may run on any thread
  std::vector<PendingCopy> pending;  // guarded by pending_mu
  // The step being recorded (the device's one user thread only).
  bool in_step = false;
  std::vector<std::function<void()>> step_ops;
  std::string step_signature;
  std::set<std::string> step_shapes;  // the "captured graphs"
};

namespace {
// Every device's steps, for rl_hostref_step_stats.
std::atomic<uint64_t> steps_ended{0};
std::atomic<uint64_t> step_captures{0};
std::atomic<uint64_t> step_replays{0};
}  // namespace

struct rl_event {
  bool recorded = false;
};

struct rl_buffer {
  unsigned char* block = nullptr;  // front guard starts here
  uint64_t bytes = 0;              // as asked
  uint64_t payload = 0;            // bytes rounded up
  unsigned char* data() const { return block + kGuardBytes; }
};

namespace {

int32_t DeviceCount() { return 1; }

rl_status OpenDevice(int32_t index, rl_device** out) {
  if (index != 0) return Fail(RL_NOT_FOUND, "hostref: only device 0 exists");
  auto* d = new (std::nothrow) rl_device;
  if (d == nullptr) return Fail(RL_RESOURCE_EXHAUSTED, "hostref: cannot allocate the device");
  d->capacity = EnvU64("RELAYOUT_HOSTREF_MEMORY_BYTES", kDefaultCapacity);
  d->fail_alloc_at = EnvU64("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", 0);
  d->fail_upload_at = EnvU64("RELAYOUT_HOSTREF_FAIL_UPLOAD_AT", 0);
  *out = d;
  return RL_OK;
}

void CloseDevice(rl_device* device) { delete device; }

// Saturates instead of wrapping; BufferAlloc refuses such sizes.
uint64_t AllocSize(rl_device*, uint64_t bytes) {
  return bytes > UINT64_MAX - 2 * kGuardBytes - kAlignment ? UINT64_MAX
                                                           : RoundUp(bytes) + 2 * kGuardBytes;
}

rl_status DeviceInfo(rl_device* device, rl_device_info* out) {
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "host reference");
  std::lock_guard<std::mutex> lock(device->mu);
  out->total_bytes = device->capacity;
  out->free_bytes = device->capacity - device->in_use;
  out->alignment = kAlignment;
  out->host_addressable = 1;
  return RL_OK;
}

// Sizes past this would wrap when padded and guarded.
constexpr uint64_t kMaxBytes = UINT64_MAX - 2 * kGuardBytes - kAlignment;

rl_status BufferAlloc(rl_device* device, uint64_t bytes, rl_buffer** out) {
  if (bytes > kMaxBytes) {
    return Fail(RL_RESOURCE_EXHAUSTED, "hostref: " + std::to_string(bytes) + " bytes asked");
  }
  const uint64_t n = device->allocs.fetch_add(1) + 1;
  if (device->fail_alloc_at != 0 && n == device->fail_alloc_at) {
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: allocation " + std::to_string(n) + " failed (fault injection)");
  }
  const uint64_t size = AllocSize(device, bytes);
  {
    std::lock_guard<std::mutex> lock(device->mu);
    if (size > device->capacity - device->in_use) {
      return Fail(RL_RESOURCE_EXHAUSTED, "hostref: out of device memory: " + std::to_string(size) +
                                             " bytes asked, " +
                                             std::to_string(device->capacity - device->in_use) +
                                             " free of " + std::to_string(device->capacity));
    }
    device->in_use += size;
  }
  auto* b = new (std::nothrow) rl_buffer;
  void* block = nullptr;
  if (b == nullptr || posix_memalign(&block, kAlignment, size) != 0) {
    delete b;
    std::lock_guard<std::mutex> lock(device->mu);
    device->in_use -= size;
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: the host refused " + std::to_string(size) + " bytes");
  }
  b->block = static_cast<unsigned char*>(block);
  b->bytes = bytes;
  b->payload = RoundUp(bytes);
  std::memset(b->block, kGuardByte, kGuardBytes);
  std::memset(b->data(), kFreshByte, b->payload);
  std::memset(b->data() + b->payload, kGuardByte, kGuardBytes);
  *out = b;
  return RL_OK;
}

bool GuardIntact(const unsigned char* p) {
  for (uint64_t i = 0; i < kGuardBytes; ++i) {
    if (p[i] != kGuardByte) return false;
  }
  return true;
}

rl_status BufferFree(rl_device* device, rl_buffer* buffer) {
  if (buffer == nullptr) return RL_OK;
  const bool front = GuardIntact(buffer->block);
  // The padding up to the payload's rounded size belongs to the buffer's
  // slack, not to the guard: only the guard proper is checked.
  const bool back = GuardIntact(buffer->data() + buffer->payload);
  std::memset(buffer->data(), kFreedByte, buffer->payload);
  const uint64_t size = AllocSize(device, buffer->bytes);
  std::free(buffer->block);
  delete buffer;
  {
    std::lock_guard<std::mutex> lock(device->mu);
    device->in_use -= size;
  }
  if (!front || !back) {
    return Fail(RL_DATA_LOSS, std::string("hostref: a write outside the buffer overwrote its ") +
                                  (!front ? "front" : "back") + " guard");
  }
  return RL_OK;
}

void* BufferHostPtr(rl_buffer* buffer) { return buffer != nullptr ? buffer->data() : nullptr; }

rl_status CheckRange(const rl_buffer* b, uint64_t offset, uint64_t bytes, const char* what) {
  if (b == nullptr)
    return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + what + ": null buffer");
  if (offset > b->bytes || bytes > b->bytes - offset) {
    return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + what + ": bytes [" +
                                         std::to_string(offset) + ", " +
                                         std::to_string(offset + bytes) + ") outside a buffer of " +
                                         std::to_string(b->bytes));
  }
  return RL_OK;
}

// The checks every upload makes, synchronous or not: the range, and the
// injected failure of the Nth one.
rl_status StartUpload(rl_device* device, const rl_buffer* dst, uint64_t offset, uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes, "upload"); s != RL_OK) return s;
  const uint64_t n = device->uploads.fetch_add(1) + 1;
  if (device->fail_upload_at != 0 && n == device->fail_upload_at) {
    return Fail(RL_INTERNAL, "hostref: upload " + std::to_string(n) + " failed (fault injection)");
  }
  return RL_OK;
}

rl_status Upload(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                 uint64_t bytes) {
  if (rl_status s = StartUpload(device, dst, offset, bytes); s != RL_OK) return s;
  if (bytes > 0) std::memcpy(dst->data() + offset, src, bytes);
  return RL_OK;
}

rl_status Download(rl_device*, const rl_buffer* src, uint64_t offset, void* dst, uint64_t bytes) {
  if (rl_status s = CheckRange(src, offset, bytes, "download"); s != RL_OK) return s;
  if (bytes > 0) std::memcpy(dst, src->data() + offset, bytes);
  return RL_OK;
}

rl_status Fill(rl_device*, rl_buffer* dst, uint64_t offset, uint8_t value, uint64_t bytes) {
  if (rl_status s = CheckRange(dst, offset, bytes, "fill"); s != RL_OK) return s;
  if (bytes > 0) std::memset(dst->data() + offset, value, bytes);
  return RL_OK;
}

rl_status HostAlloc(rl_device*, uint64_t bytes, void** out) {
  if (bytes > kMaxBytes) {
    return Fail(RL_RESOURCE_EXHAUSTED, "hostref: " + std::to_string(bytes) + " bytes of staging");
  }
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, bytes == 0 ? kAlignment : RoundUp(bytes)) != 0) {
    return Fail(RL_RESOURCE_EXHAUSTED,
                "hostref: cannot allocate " + std::to_string(bytes) + " bytes of staging");
  }
  *out = p;
  return RL_OK;
}

void HostFree(rl_device*, void* ptr) { std::free(ptr); }

// Runs the deferred copies, in issue order.
void Flush(rl_device* device) {
  std::lock_guard<std::mutex> lock(device->pending_mu);
  for (const rl_device::PendingCopy& c : device->pending) {
    if (c.bytes > 0) std::memcpy(c.dst->data() + c.offset, c.src, c.bytes);
  }
  device->pending.clear();
}

rl_status Synchronize(rl_device*) { return RL_OK; }

rl_status UploadAsync(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                      uint64_t bytes) {
  if (rl_status s = StartUpload(device, dst, offset, bytes); s != RL_OK) return s;
  std::lock_guard<std::mutex> lock(device->pending_mu);
  device->pending.push_back({dst, offset, src, bytes});
  return RL_OK;
}

rl_status EventCreate(rl_device*, rl_event** out) {
  *out = new (std::nothrow) rl_event;
  return *out != nullptr ? RL_OK : Fail(RL_RESOURCE_EXHAUSTED, "hostref: no memory for an event");
}

void EventDestroy(rl_device*, rl_event* event) { delete event; }

rl_status EventRecord(rl_device*, rl_event* event) {
  event->recorded = true;
  return RL_OK;
}

// Everything issued is before any record, so waiting runs all of it.
rl_status EventSynchronize(rl_device*, rl_event*) { return RL_OK; }

// An entry that first runs the deferred copies (every entry that reads or
// writes device memory, or waits for it).
template <auto Fn>
struct Flushing;
template <typename R, typename... A, R (*Fn)(rl_device*, A...)>
struct Flushing<Fn> {
  static R Call(rl_device* device, A... args) {
    Flush(device);
    return Fn(device, args...);
  }
};

// An entry that is not an op: refused between step_begin and step_end.
template <auto Fn>
struct OutsideStep;
template <typename R, typename... A, R (*Fn)(rl_device*, A...)>
struct OutsideStep<Fn> {
  static R Call(rl_device* device, A... args) {
    if (device->in_step) {
      return Fail(RL_FAILED_PRECONDITION, "hostref: only ops may be issued inside a step");
    }
    return Fn(device, args...);
  }
};

// ---- Steps ----

// Appends the values that make up an op's shape to a step's signature.
void Sign(std::string*) {}
template <typename T, typename... Rest>
void Sign(std::string* out, const T& first, const Rest&... rest) {
  if constexpr (std::is_same_v<T, rl_ref>) {
    *out += std::to_string(reinterpret_cast<uintptr_t>(first.buffer)) + "+" +
            std::to_string(first.offset);
  } else if constexpr (std::is_convertible_v<const T&, const char*>) {
    *out += first;  // the op's name
  } else {
    *out += std::to_string(first);
  }
  *out += ',';
  Sign(out, rest...);
}

// Runs an op's work now, or at step_end inside a step.
template <typename... Shape>
rl_status Issue(rl_device* device, std::function<void()> work, const Shape&... shape) {
  if (!device->in_step) {
    work();
    return RL_OK;
  }
  Sign(&device->step_signature, shape...);
  device->step_signature += ';';
  device->step_ops.push_back(std::move(work));
  return RL_OK;
}

rl_status StepBegin(rl_device* device) {
  if (device->in_step) return Fail(RL_FAILED_PRECONDITION, "hostref: step_begin inside a step");
  Flush(device);
  device->in_step = true;
  device->step_ops.clear();
  device->step_signature.clear();
  return RL_OK;
}

rl_status StepEnd(rl_device* device) {
  if (!device->in_step) return Fail(RL_FAILED_PRECONDITION, "hostref: step_end outside a step");
  device->in_step = false;
  ++steps_ended;
  ++(device->step_shapes.insert(device->step_signature).second ? step_captures : step_replays);
  for (std::function<void()>& op : device->step_ops) op();
  device->step_ops.clear();
  return RL_OK;
}

// ---- Ops ----

namespace k = relayout::kernels;

// The operand's bytes, when [offset, offset + bytes) lies in its buffer.
rl_status Operand(rl_ref ref, uint64_t bytes, const char* what, unsigned char** out) {
  if (rl_status s = CheckRange(ref.buffer, ref.offset, bytes, what); s != RL_OK) return s;
  *out = ref.buffer->data() + ref.offset;
  return RL_OK;
}

template <typename T>
rl_status Operand(rl_ref ref, int64_t count, const char* what, T** out) {
  if (count < 0)
    return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + what + ": negative size");
  unsigned char* p = nullptr;
  if (rl_status s = Operand(ref, static_cast<uint64_t>(count) * sizeof(T), what, &p); s != RL_OK) {
    return s;
  }
  *out = reinterpret_cast<T*>(p);
  return RL_OK;
}

#define HOSTREF_OPERAND(ref, count, what, out) \
  if (rl_status s_ = Operand(ref, count, what, out); s_ != RL_OK) return s_

// The ABI numbers its dtypes in the kernels' WeightType order, so the
// mapping is a range check (the asserts keep the two in step).
constexpr bool SameCode(k::WeightType t, int32_t dtype) { return static_cast<int32_t>(t) == dtype; }
static_assert(SameCode(k::WeightType::kF32, RL_DTYPE_F32) &&
              SameCode(k::WeightType::kF16, RL_DTYPE_F16) &&
              SameCode(k::WeightType::kBF16, RL_DTYPE_BF16) &&
              SameCode(k::WeightType::kQ8_0, RL_DTYPE_Q8_0) &&
              SameCode(k::WeightType::kQ4_0, RL_DTYPE_Q4_0) &&
              SameCode(k::WeightType::kQ4_1, RL_DTYPE_Q4_1) &&
              SameCode(k::WeightType::kQ5_0, RL_DTYPE_Q5_0) &&
              SameCode(k::WeightType::kQ5_1, RL_DTYPE_Q5_1) &&
              SameCode(k::WeightType::kIQ4_NL, RL_DTYPE_IQ4_NL) &&
              SameCode(k::WeightType::kQ2_K, RL_DTYPE_Q2_K) &&
              SameCode(k::WeightType::kQ3_K, RL_DTYPE_Q3_K) &&
              SameCode(k::WeightType::kQ4_K, RL_DTYPE_Q4_K) &&
              SameCode(k::WeightType::kQ5_K, RL_DTYPE_Q5_K) &&
              SameCode(k::WeightType::kQ6_K, RL_DTYPE_Q6_K));
bool WeightType(int32_t dtype, k::WeightType* out) {
  if (dtype < RL_DTYPE_F32 || dtype > RL_DTYPE_Q6_K) return false;
  *out = static_cast<k::WeightType>(dtype);
  return true;
}

bool HostWeight(const rl_matmul_weight* w, k::MatmulWeight* out) {
  if (w == nullptr || !WeightType(w->dtype, &out->type)) return false;
  switch (w->layout) {
    case RL_LAYOUT_ROW_MAJOR:
      out->layout = k::WeightLayout::kRowMajor;
      break;
    case RL_LAYOUT_ROW_GROUP:
      out->layout = k::WeightLayout::kRowGroup;
      break;
    case RL_LAYOUT_QUANT_ROW_GROUP:
      out->layout = k::WeightLayout::kQuantRowGroup;
      break;
    case RL_LAYOUT_BF16_KPAIR:
      out->layout = k::WeightLayout::kBf16KPair;
      break;
    default:
      return false;
  }
  out->rows = w->rows;
  out->cols = w->cols;
  out->group_rows = w->group_rows;
  out->k_block = w->k_block;
  return k::MatmulShapeSupported(*out);
}

int32_t MatmulSupportedOp(rl_device*, const rl_matmul_weight* w) {
  k::MatmulWeight hw;
  return HostWeight(w, &hw) ? 1 : 0;
}

rl_status Refused(const char* op) {
  return Fail(RL_INVALID_ARGUMENT, std::string("hostref: ") + op + " refused its arguments");
}

rl_status MatmulOp(rl_device* device, const rl_matmul_weight* w, rl_ref x, int64_t tokens,
                   rl_ref y) {
  k::MatmulWeight hw;
  if (!HostWeight(w, &hw) || tokens < 1) return Refused("matmul");
  unsigned char* data = nullptr;
  HOSTREF_OPERAND(w->data, static_cast<uint64_t>(k::MatmulWeightBytes(hw)), "matmul weight", &data);
  hw.data = data;
  float* xs = nullptr;
  float* ys = nullptr;
  HOSTREF_OPERAND(x, tokens * w->cols, "matmul x", &xs);
  HOSTREF_OPERAND(y, tokens * w->rows, "matmul y", &ys);
  return Issue(
      device, [=] { (void)k::Matmul(hw, xs, tokens, ys, &device->pool); }, "matmul", w->data,
      w->dtype, w->layout, w->rows, w->cols, x, tokens, y);
}

rl_status AddRowBiasOp(rl_device* device, rl_ref bias, int64_t rows, int64_t cols, rl_ref y) {
  float* b = nullptr;
  float* ys = nullptr;
  HOSTREF_OPERAND(bias, cols, "add_row_bias bias", &b);
  HOSTREF_OPERAND(y, rows * cols, "add_row_bias y", &ys);
  return Issue(
      device, [=] { k::AddRowBias(b, rows, cols, ys); }, "add_row_bias", bias, rows, cols, y);
}

rl_status EmbeddingOp(rl_device* device, rl_ref table, int32_t dtype, int64_t vocab, int64_t dim,
                      const int32_t* tokens, int64_t n, rl_ref out) {
  k::WeightType type;
  if (!WeightType(dtype, &type) || vocab < 1 || dim < 1 || n < 0 || tokens == nullptr) {
    return Refused("embedding");
  }
  unsigned char* t = nullptr;
  float* o = nullptr;
  HOSTREF_OPERAND(table, static_cast<uint64_t>(k::EmbeddingRowBytes(type, dim) * vocab),
                  "embedding table", &t);
  HOSTREF_OPERAND(out, n * dim, "embedding out", &o);
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) return Refused("embedding");
  }
  std::vector<int32_t> ids(tokens, tokens + n);
  return Issue(
      device,
      [=, ids = std::move(ids)] { (void)k::EmbeddingRows(t, type, vocab, dim, ids.data(), n, o); },
      "embedding", table, dtype, vocab, dim, n, out);
}

rl_status RmsNormOp(rl_device* device, rl_ref x, rl_ref weight, int64_t rows, int64_t dim,
                    float eps, rl_ref out) {
  float* xs = nullptr;
  float* w = nullptr;
  float* o = nullptr;
  HOSTREF_OPERAND(x, rows * dim, "rms_norm x", &xs);
  HOSTREF_OPERAND(weight, dim, "rms_norm weight", &w);
  HOSTREF_OPERAND(out, rows * dim, "rms_norm out", &o);
  return Issue(
      device, [=] { k::RmsNorm(xs, w, rows, dim, eps, o); }, "rms_norm", x, weight, rows, dim, out);
}

rl_status RopeOp(rl_device* device, rl_ref x, int64_t rows, int32_t heads, int32_t head_dim,
                 int32_t rope_dim, const int32_t* positions, rl_ref inv_freq, int32_t pairing) {
  if (heads < 1 || head_dim < 1 || rope_dim < 0 || rope_dim > head_dim || rope_dim % 2 != 0 ||
      positions == nullptr || (pairing != RL_ROPE_HALVES && pairing != RL_ROPE_INTERLEAVED)) {
    return Refused("rope");
  }
  float* xs = nullptr;
  float* f = nullptr;
  HOSTREF_OPERAND(x, rows * heads * head_dim, "rope x", &xs);
  HOSTREF_OPERAND(inv_freq, rope_dim / 2, "rope inv_freq", &f);
  std::vector<int32_t> pos(positions, positions + std::max<int64_t>(rows, 0));
  const k::RopePairing order =
      pairing == RL_ROPE_HALVES ? k::RopePairing::kHalves : k::RopePairing::kInterleaved;
  return Issue(
      device,
      [=, pos = std::move(pos)] {
        k::ApplyRope(xs, rows, heads, head_dim, rope_dim, pos.data(), f, order);
      },
      "rope", x, rows, heads, head_dim, rope_dim, inv_freq, pairing);
}

rl_status AddOp(rl_device* device, rl_ref src, int64_t n, rl_ref dst) {
  float* s = nullptr;
  float* d = nullptr;
  HOSTREF_OPERAND(src, n, "add src", &s);
  HOSTREF_OPERAND(dst, n, "add dst", &d);
  return Issue(
      device, [=] { k::Add(s, n, d); }, "add", src, n, dst);
}

rl_status SiluGateOp(rl_device* device, rl_ref gate, rl_ref up, int64_t n, rl_ref out) {
  float* g = nullptr;
  float* u = nullptr;
  float* o = nullptr;
  HOSTREF_OPERAND(gate, n, "silu_gate gate", &g);
  HOSTREF_OPERAND(up, n, "silu_gate up", &u);
  HOSTREF_OPERAND(out, n, "silu_gate out", &o);
  return Issue(
      device, [=] { k::SiluGate(g, u, n, o); }, "silu_gate", gate, up, n, out);
}

// The kernels' view of the attention shape; false when it is not one.
bool AttentionShape(const rl_attention_params* p, k::PagedAttentionParams* out) {
  if (p == nullptr || p->num_heads < 1 || p->num_kv_heads < 1 || p->head_dim < 1 ||
      p->block_size < 1 || p->pool_blocks < 1 || p->num_heads % p->num_kv_heads != 0 ||
      (p->kv_dtype != RL_KV_F32 && p->kv_dtype != RL_KV_F16)) {
    return false;
  }
  *out = k::PagedAttentionParams{
      p->num_heads,  p->num_kv_heads, p->head_dim,
      p->block_size, p->scale,        p->kv_dtype == RL_KV_F16 ? k::KvElem::kF16 : k::KvElem::kF32};
  return true;
}

// The spans as the kernels take them, and the rows they cover; false when a
// span is malformed or names a block outside the pool.
bool Spans(const rl_attention_params* p, const rl_attention_span* spans, int64_t n,
           std::vector<k::AttentionSpan>* out, int64_t* rows) {
  if (n < 0 || (n > 0 && spans == nullptr)) return false;
  out->clear();
  *rows = 0;
  for (int64_t i = 0; i < n; ++i) {
    const rl_attention_span& s = spans[i];
    if (s.rows < 0 || s.first_row < 0 || s.start_position < 0 ||
        (s.rows > 0 && s.block_table == nullptr)) {
      return false;
    }
    if (s.rows == 0) {  // nothing to read or write: its table is not looked at
      out->push_back({s.first_row, 0, s.start_position, s.block_table});
      continue;
    }
    const int64_t blocks = (s.start_position + s.rows + p->block_size - 1) / p->block_size;
    for (int64_t b = 0; b < blocks; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= p->pool_blocks) return false;
    }
    *rows = std::max(*rows, s.first_row + s.rows);
    out->push_back({s.first_row, s.rows, s.start_position, s.block_table});
  }
  return true;
}

uint64_t PoolBytes(const rl_attention_params* p) {
  return static_cast<uint64_t>(p->pool_blocks) * p->block_size * p->num_kv_heads * p->head_dim *
         (p->kv_dtype == RL_KV_F16 ? 2 : 4);
}

// What kv_write and attention share: the shape, the spans (checked against
// the pool) and both pools' bytes.
struct PagedOperands {
  k::PagedAttentionParams shape;
  std::vector<k::AttentionSpan> spans;
  int64_t rows = 0;  // the batch rows the spans cover
  unsigned char* k_pool = nullptr;
  unsigned char* v_pool = nullptr;
  std::vector<std::vector<int32_t>> tables;  // copies of the spans' block tables

  // Copies the block tables the spans point at (the caller's memory), so
  // the operands outlive the call.
  void Own() {
    tables.clear();
    tables.reserve(spans.size());
    for (k::AttentionSpan& s : spans) {
      const int64_t blocks =
          s.rows == 0 ? 0 : (s.start_position + s.rows + shape.block_size - 1) / shape.block_size;
      tables.emplace_back(s.block_table, s.block_table + blocks);
      s.block_table = tables.back().data();
    }
  }
  // The bound a graph would be sized by: the longest context, rounded up
  // to a power of two of at least 256 positions.
  int64_t ContextBucket() const {
    int64_t longest = 0;
    for (const k::AttentionSpan& s : spans) longest = std::max(longest, s.start_position + s.rows);
    int64_t bucket = 256;
    while (bucket < longest) bucket *= 2;
    return bucket;
  }
};

rl_status ResolvePaged(const char* op, const rl_attention_params* p, const rl_attention_span* spans,
                       int64_t num_spans, rl_ref k_pool, rl_ref v_pool, PagedOperands* out) {
  if (!AttentionShape(p, &out->shape) || !Spans(p, spans, num_spans, &out->spans, &out->rows)) {
    return Refused(op);
  }
  HOSTREF_OPERAND(k_pool, PoolBytes(p), op, &out->k_pool);
  HOSTREF_OPERAND(v_pool, PoolBytes(p), op, &out->v_pool);
  return RL_OK;
}

rl_status KvWriteOp(rl_device* device, const rl_attention_params* p, rl_ref k_rows, rl_ref v_rows,
                    const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                    rl_ref v_pool) {
  PagedOperands o;
  if (rl_status s = ResolvePaged("kv_write", p, spans, num_spans, k_pool, v_pool, &o); s != RL_OK) {
    return s;
  }
  const int64_t kv_dim = int64_t{p->num_kv_heads} * p->head_dim;
  float* kr = nullptr;
  float* vr = nullptr;
  HOSTREF_OPERAND(k_rows, o.rows * kv_dim, "kv_write k", &kr);
  HOSTREF_OPERAND(v_rows, o.rows * kv_dim, "kv_write v", &vr);
  o.Own();
  const int64_t bucket = o.ContextBucket();
  return Issue(
      device,
      [=, o = std::move(o), block_size = int64_t{p->block_size}, pool_blocks = p->pool_blocks] {
        (void)k::KvWrite(kv_dim, block_size, pool_blocks, o.shape.kv_elem, kr, vr, o.spans.data(),
                         num_spans, o.k_pool, o.v_pool);
      },
      "kv_write", k_rows, v_rows, num_spans, o.rows, bucket, k_pool, v_pool);
}

rl_status AttentionOp(rl_device* device, const rl_attention_params* p, rl_ref q,
                      const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                      rl_ref v_pool, rl_ref out) {
  PagedOperands o;
  if (rl_status s = ResolvePaged("attention", p, spans, num_spans, k_pool, v_pool, &o);
      s != RL_OK) {
    return s;
  }
  const int64_t q_dim = int64_t{p->num_heads} * p->head_dim;
  float* qs = nullptr;
  float* y = nullptr;
  HOSTREF_OPERAND(q, o.rows * q_dim, "attention q", &qs);
  HOSTREF_OPERAND(out, o.rows * q_dim, "attention out", &y);
  o.Own();
  const int64_t bucket = o.ContextBucket();
  return Issue(
      device,
      [=, o = std::move(o)] {
        (void)k::PagedAttention(o.shape, qs, o.spans.data(), num_spans, o.k_pool, o.v_pool, y,
                                &device->pool);
      },
      "attention", q, num_spans, o.rows, bucket, k_pool, v_pool, out);
}

// ---- Layout transforms: the kernels' blocked in-place permutations ----

k::QuantBlockFormat QuantFormat(k::WeightType t) {
  k::QuantBlockFormat f;
  return k::QuantRowGroupFormatOf(t, &f) ? f : k::QuantBlockFormat{};
}

// The scratch of w's in-place transform, or UINT64_MAX.
uint64_t TransformScratchBytes(rl_device*, const rl_matmul_weight* w) {
  k::MatmulWeight hw;
  if (!HostWeight(w, &hw)) return UINT64_MAX;
  const size_t rows = static_cast<size_t>(hw.rows), cols = static_cast<size_t>(hw.cols);
  switch (hw.layout) {
    case k::WeightLayout::kRowGroup:
      return k::RowGroupScratchBytes({rows, cols, hw.type == k::WeightType::kF32 ? 4u : 2u,
                                      static_cast<size_t>(hw.group_rows),
                                      static_cast<size_t>(hw.k_block)});
    case k::WeightLayout::kQuantRowGroup:
      return k::QuantRowGroupScratchBytes(
          {rows, cols / 32, QuantFormat(hw.type), static_cast<size_t>(hw.group_rows)});
    case k::WeightLayout::kBf16KPair:
      return k::Bf16KPairScratchBytes({rows, cols, static_cast<size_t>(hw.group_rows)});
    case k::WeightLayout::kRowMajor:
      return 0;
  }
  return UINT64_MAX;
}

rl_status TransformInPlaceOp(rl_device* device, const rl_matmul_weight* w, rl_ref scratch) {
  k::MatmulWeight hw;
  const uint64_t need = TransformScratchBytes(device, w);
  if (!HostWeight(w, &hw) || need == UINT64_MAX) return Refused("transform_in_place");
  unsigned char* data = nullptr;
  unsigned char* tmp = nullptr;
  HOSTREF_OPERAND(w->data, static_cast<uint64_t>(k::MatmulWeightBytes(hw)), "transform data",
                  &data);
  if (need > 0) HOSTREF_OPERAND(scratch, need, "transform scratch", &tmp);
  const size_t rows = static_cast<size_t>(hw.rows), cols = static_cast<size_t>(hw.cols);
  bool ok = true;
  switch (hw.layout) {
    case k::WeightLayout::kRowGroup: {
      const k::RowGroupParams p{rows, cols, hw.type == k::WeightType::kF32 ? 4u : 2u,
                                static_cast<size_t>(hw.group_rows),
                                static_cast<size_t>(hw.k_block)};
      ok = k::RowGroupInterleaveForwardInPlace(data, p, 0, k::RowGroupCount(p), tmp, need);
      break;
    }
    case k::WeightLayout::kQuantRowGroup: {
      const k::QuantRowGroupParams p{rows, cols / 32, QuantFormat(hw.type),
                                     static_cast<size_t>(hw.group_rows)};
      ok = k::QuantRowGroupForwardInPlace(data, p, 0, k::QuantRowGroupCount(p), tmp, need);
      break;
    }
    case k::WeightLayout::kBf16KPair: {
      const k::Bf16KPairParams p{rows, cols, static_cast<size_t>(hw.group_rows)};
      ok = k::Bf16KPairForwardInPlace(data, p, 0, k::Bf16KPairGroupCount(p), tmp, need);
      break;
    }
    case k::WeightLayout::kRowMajor:
      break;
  }
  return ok ? RL_OK : Refused("transform_in_place");
}

rl_status ArgmaxOp(rl_device*, rl_ref x, int64_t rows, int64_t cols, int32_t* out_host) {
  if (rows < 0 || cols < 1 || out_host == nullptr) return Refused("argmax");
  float* xs = nullptr;
  HOSTREF_OPERAND(x, rows * cols, "argmax x", &xs);
  k::ArgmaxRows(xs, rows, cols, out_host);
  return RL_OK;
}

const char* LastError() { return last_error.c_str(); }

constexpr rl_device_api kApi = {
    RL_DEVICE_ABI_VERSION,
    "hostref",
    &DeviceCount,
    &OpenDevice,
    &CloseDevice,
    &DeviceInfo,
    &AllocSize,
    &BufferAlloc,
    &Flushing<&BufferFree>::Call,
    &BufferHostPtr,
    &OutsideStep<&Flushing<&Upload>::Call>::Call,
    &OutsideStep<&Flushing<&Download>::Call>::Call,
    &OutsideStep<&Flushing<&Fill>::Call>::Call,
    &HostAlloc,
    &HostFree,
    &OutsideStep<&Flushing<&Synchronize>::Call>::Call,
    &LastError,
    &MatmulSupportedOp,
    &Flushing<&MatmulOp>::Call,
    &Flushing<&AddRowBiasOp>::Call,
    &Flushing<&EmbeddingOp>::Call,
    &Flushing<&RmsNormOp>::Call,
    &Flushing<&RopeOp>::Call,
    &Flushing<&AddOp>::Call,
    &Flushing<&SiluGateOp>::Call,
    &Flushing<&KvWriteOp>::Call,
    &Flushing<&AttentionOp>::Call,
    &OutsideStep<&Flushing<&ArgmaxOp>::Call>::Call,
    &OutsideStep<&UploadAsync>::Call,
    &EventCreate,
    &EventDestroy,
    &OutsideStep<&EventRecord>::Call,
    &OutsideStep<&Flushing<&EventSynchronize>::Call>::Call,
    &TransformScratchBytes,
    &OutsideStep<&Flushing<&TransformInPlaceOp>::Call>::Call,
    &StepBegin,
    &StepEnd,
};

}  // namespace

extern "C" {

RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void) {
#ifdef RELAYOUT_TEST_PLUGIN_VERSION
  return RELAYOUT_TEST_PLUGIN_VERSION;  // a deliberately mismatched copy, for the loader's tests
#else
  return RL_DEVICE_ABI_VERSION;
#endif
}

// Host memory is always there; a low score, so that a real device wins
// under --device auto.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void) {
#ifdef RELAYOUT_TEST_PLUGIN_SCORE
  return RELAYOUT_TEST_PLUGIN_SCORE;
#else
  return 1;
#endif
}

// Test hook, over every device of the process: out[0..2] = steps ended,
// steps of a shape not seen before on their device ("captures"), steps
// whose shape was ("replays").
RL_PLUGIN_EXPORT void rl_hostref_step_stats(uint64_t out[3]) {
  out[0] = steps_ended.load();
  out[1] = step_captures.load();
  out[2] = step_replays.load();
}

#ifndef RELAYOUT_TEST_PLUGIN_NO_INIT
RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void) {
  // The reference paths (this plugin's copy of the kernels' switches).
  k::SetMatmulIsaForTesting(k::MatmulIsa::kScalar);
  k::SetAttentionIsaForTesting(k::AttentionIsa::kPortable);
  return &kApi;
}
#else
// The test copy without rl_plugin_init still has the table, unexported.
[[maybe_unused]] const rl_device_api* UnexportedInit() { return &kApi; }
#endif

}  // extern "C"
