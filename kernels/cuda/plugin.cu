// The CUDA backend's device table (kernels/device_abi.h, version 4): devices,
// memory, staging, asynchronous uploads and events, every op of a Llama
// layer's forward pass, in-place layout transforms and step graphs, over the
// CUDA runtime (linked statically: the plugin needs only the driver) and
// cuBLASLt. Every CUDA or cuBLASLt error becomes a status code and a message
// for last_error; nothing aborts.
//
// Streams. One stream per device, created blocking (not
// cudaStreamNonBlocking): every copy, fill, op and event is issued to it, so
// they run in issue order. The synchronous entries (upload, download,
// argmax's result) are cudaMemcpyAsync on it plus a stream synchronize.
//
// Memory. Buffers and the plugin's own workspaces come from a caching
// allocator (host/caching_allocator.h): sizes rounded (512 B classes up to
// 1 MiB, then 2 MiB), freed blocks kept per size and reused, the cache
// released and the request retried once when cudaMalloc fails. alloc_size is
// the rounded size, so the engine's ledger counts what the device holds;
// device_info's free_bytes counts the cached bytes as free.
// rl_cuda_memory_stats (exported, below) reports the allocator's books.
//
// Metadata. An op's per-call host arrays (token ids, positions, attention
// spans and their block tables) are checked on the host
// (host/metadata.h), laid out in a MetadataArena (host/step_recorder.h) and
// copied to a device arena with one cudaMemcpyAsync before the op's
// kernels, which read them there. Outside a step the bytes go through a
// pinned staging ring (host/staging_ring.h) so the host never waits for a
// copy it issued moments ago.
//
// Step graphs (step_begin / step_end). Inside a step an op is checked at
// once (its errors are its own), its metadata written into the step's
// arena, and its launch recorded as a closure; nothing is launched. At
// step_end the step's signature (host/step_recorder.h: the ops, operand
// addresses, sizes, metadata-derived bounds, metadata layout) picks a cached
// cudaGraphExec_t, whose first node copies the pinned step arena into the
// device step arena, so a replay reads this step's metadata; a new signature
// is captured (cudaStreamBeginCapture on the device's stream, thread-local
// mode, every closure issued, instantiated, cached, LRU-bounded) and
// launched. The pinned step arena is rewritten only after the previous
// step's graph completed (an event). Everything a graph bakes in (workspace,
// arena addresses) is grown before a capture, and growing one drops every
// cached graph. A capture that fails (an API the driver refuses in capture)
// runs the step eagerly and is retried at most kMaxCaptureFailures times per
// signature. RELAYOUT_CUDA_GRAPHS=0 turns graphs off: ops inside a step then
// run eagerly, as outside. rl_cuda_step_stats (exported) counts steps,
// captures, replays and eager steps.
//
// Ops call the kernel headers' host entries (kernels/cuda/kernels/*.cuh)
// with CudaLauncher on the device's stream. Matmul dispatch:
//   - quantized weights (Q8_0/Q4_0/Q4_1 native or quant row group G = 8;
//     Q5_0/Q5_1/IQ4_NL and the K-quants Q2_K..Q6_K native only),
//     tokens <= kGemvMaxTokens (8): QuantMatmul (x quantized to Q8 blocks, the
//     CPU's numerics);
//   - quantized, more tokens: the weight dequantized to BF16 a chunk of rows
//     at a time (at most kDequantChunkBytes) and x rounded to BF16, one
//     cuBLASLt BF16 GEMM per chunk (F32 accumulation);
//   - BF16 weights, more tokens: cuBLASLt twice, x split into hi + lo BF16
//     halves (|x - hi - lo| <= 2^-16 |x|), the second GEMM accumulating
//     (beta = 1), which meets the F16/BF16 contract of matmul.h;
//   - otherwise FloatMatmul (F32 in double, F16, BF16 GEMV).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/cuda_launch.h"
#include "kernels/cuda/host/caching_allocator.h"
#include "kernels/cuda/host/metadata.h"
#include "kernels/cuda/host/op_plan.h"
#include "kernels/cuda/host/staging_ring.h"
#include "kernels/cuda/host/step_recorder.h"
#include "kernels/cuda/kernels/attention.cuh"
#include "kernels/cuda/kernels/float_matmul.cuh"
#include "kernels/cuda/kernels/layer_ops.cuh"
#include "kernels/cuda/kernels/quant_matmul.cuh"
#include "kernels/cuda/kernels/relayout.cuh"
#include "kernels/device_abi.h"

namespace {

namespace rc = relayout::cuda;

// Tokens up to which a quantized matmul is a GEMV over Q8 activations (the
// decode step's batch); above, dequantized BF16 through cuBLASLt. The
// environment's RELAYOUT_CUDA_QUANT_GEMV_MAX_TOKENS (read when a device
// opens) moves the threshold: a large value keeps every quantized matmul on
// the Q8 path, bit for bit the CPU's activations at any batch (the BF16
// path meets matmul.h's bound against exact arithmetic, |dx|, |dw| <= 2^-9
// relative, but not the CPU's exact rounding).
constexpr int64_t kGemvMaxTokens = 8;
// The bound of one dequantized weight chunk (BF16 rows) of the GEMM path.
constexpr uint64_t kDequantChunkBytes = uint64_t{32} << 20;
// The largest tokens (rows) count an op takes: grids are sized in unsigned
// ints of rows or tokens.
constexpr int64_t kMaxRows = int64_t{1} << 30;
// The eager metadata staging ring: segments x bytes of pinned memory.
constexpr int kRingSegments = 8;
constexpr uint64_t kRingSegmentBytes = uint64_t{256} << 10;
// Cached step graphs per device; a decode stream needs one per batch size
// and context bucket.
constexpr size_t kGraphCacheEntries = 64;
constexpr int kMaxCaptureFailures = 3;
// Workspaces and arenas grow in powers of two from kMinScratchBytes up to
// kPow2ScratchLimit (see ScratchSize); the pinned step arena likewise.
constexpr uint64_t kMinScratchBytes = uint64_t{1} << 20;
constexpr uint64_t kPow2ScratchLimit = uint64_t{64} << 20;

thread_local std::string last_error;
// The error of the last failed cudaMalloc on this thread, for the message.
thread_local cudaError_t last_alloc_error = cudaSuccess;

rl_status Fail(rl_status code, const std::string& message) {
  last_error = "cuda: " + message;
  return code;
}

rl_status CudaFail(cudaError_t error, const std::string& what) {
  // Clears a non-sticky error so that the next call does not report it.
  (void)cudaGetLastError();
  rl_status code = RL_INTERNAL;
  switch (error) {
    case cudaErrorMemoryAllocation:
      code = RL_RESOURCE_EXHAUSTED;
      break;
    case cudaErrorInvalidValue:
      code = RL_INVALID_ARGUMENT;
      break;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable:
    case cudaErrorDeviceUninitialized:
      code = RL_UNAVAILABLE;
      break;
    default:
      break;
  }
  return Fail(code, what + ": " + cudaGetErrorString(error));
}

rl_status Check(cudaError_t error, const char* what) {
  return error == cudaSuccess ? RL_OK : CudaFail(error, what);
}

#define RL_TRY(expr)                                   \
  do {                                                 \
    if (rl_status s_ = (expr); s_ != RL_OK) return s_; \
  } while (0)

// cudaMalloc and cudaFree for the caching allocator, on the device's
// ordinal (buffer_alloc may come from any thread).
class CudaBackend final : public rc::AllocatorBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  void* Alloc(uint64_t bytes) override {
    void* p = nullptr;
    cudaError_t e = cudaSetDevice(device_);
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      last_alloc_error = e;
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  // Runs when the cache is released (or the device closed): the block's
  // last users were issued to the stream, so the device is drained first
  // (cudaFree's own implicit synchronization is not a documented promise).
  void Free(void* ptr) override {
    (void)cudaSetDevice(device_);
    (void)cudaDeviceSynchronize();
    (void)cudaFree(ptr);
    (void)cudaGetLastError();
  }

 private:
  int device_;
};

// A plugin-internal device allocation that grows on demand.
struct Scratch {
  void* ptr = nullptr;
  uint64_t bytes = 0;
};

// A cached step graph; exec null while its captures failed.
struct StepGraph {
  cudaGraphExec_t exec = nullptr;
  int failures = 0;
};

void DestroyGraph(StepGraph& g) {
  if (g.exec != nullptr) (void)cudaGraphExecDestroy(g.exec);
  g.exec = nullptr;
}

}  // namespace

struct rl_device {
  explicit rl_device(int i) : index(i), backend(i), alloc(&backend) {}

  int index = 0;
  cudaStream_t stream = nullptr;
  CudaBackend backend;
  rc::CachingAllocator alloc;
  int64_t quant_gemv_max_tokens = kGemvMaxTokens;
  size_t max_shared_optin = 48 * 1024;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
  int sm_count = 1;

  // Eager metadata: laid out in eager_meta, staged through the pinned ring,
  // copied into device_meta.
  rc::MetadataArena eager_meta;
  unsigned char* ring_host = nullptr;
  rc::StagingRing ring{kRingSegmentBytes, kRingSegments};
  cudaEvent_t ring_fences[kRingSegments] = {};
  Scratch device_meta;

  // Steps.
  bool in_step = false;
  bool graphs_enabled = true;
  rc::StepRecorder recorder;
  unsigned char* step_host = nullptr;  // pinned, step_host_bytes
  uint64_t step_host_bytes = 0;
  Scratch step_meta;                // the device copy graphs read
  cudaEvent_t step_done = nullptr;  // after the last step's work
  rc::GraphCache<StepGraph> graphs{kGraphCacheEntries, &DestroyGraph};
  uint64_t steps = 0, captures = 0, replays = 0, eager_steps = 0;

  std::vector<unsigned char> span_blob;  // attention metadata being laid out

  // Workspaces by purpose (rc::Workspace), and cuBLASLt's.
  Scratch ws[rc::kWorkspaceCount];
  void* blas_ws = nullptr;
  rc::BlasLt blas;
};

struct rl_buffer {
  void* ptr = nullptr;  // null for 0 bytes
  uint64_t bytes = 0;   // as asked
};

struct rl_event {
  cudaEvent_t event = nullptr;
};

namespace {

// ---- Devices ----

int32_t DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

rl_status SetDevice(rl_device* d) { return Check(cudaSetDevice(d->index), "cudaSetDevice"); }

// Drops every cached graph; they may reference a workspace or arena about to
// move. Waits for the stream first: a graph may be running.
rl_status InvalidateGraphs(rl_device* d) {
  if (d->graphs.size() == 0) return RL_OK;
  RL_TRY(Check(cudaStreamSynchronize(d->stream), "synchronize before dropping graphs"));
  d->graphs.Clear();
  return RL_OK;
}

// Workspace growth (host/op_plan.h): powers of two up to kPow2ScratchLimit,
// so that a decode stream's creeping needs rarely drop the cached graphs.
uint64_t ScratchSize(uint64_t bytes) {
  return rc::ScratchSize(bytes, kMinScratchBytes, kPow2ScratchLimit);
}

// Grows `s` to at least `bytes`. `baked`: graphs hold its address, so they
// are dropped first.
rl_status EnsureScratch(rl_device* d, Scratch* s, uint64_t bytes, bool baked, const char* what) {
  if (s->bytes >= bytes) return RL_OK;
  const uint64_t size = ScratchSize(bytes);
  if (baked) RL_TRY(InvalidateGraphs(d));
  // Every use of the old block is on the stream, before any use of the
  // block that replaces it: freeing first is safe and frees memory first.
  d->alloc.Deallocate(s->ptr);
  *s = Scratch{};
  last_alloc_error = cudaSuccess;
  void* p = d->alloc.Allocate(size);
  if (p == nullptr) {
    return Fail(RL_RESOURCE_EXHAUSTED, std::string("cannot allocate ") + std::to_string(size) +
                                           " bytes of " + what + " workspace (" +
                                           cudaGetErrorString(last_alloc_error) + ")");
  }
  *s = Scratch{p, size};
  return RL_OK;
}

const char* const kWorkspaceNames[rc::kWorkspaceCount] = {
    "quantized activations", "attention", "dequantized weight", "BF16 activations", "argmax"};

rl_status EnsureWorkspaces(rl_device* d, const rc::WorkspaceNeeds& needs) {
  for (int i = 0; i < rc::kWorkspaceCount; ++i) {
    // Argmax runs outside steps: no graph holds its workspace.
    const bool baked = i != static_cast<int>(rc::Workspace::kArgmax);
    RL_TRY(EnsureScratch(d, &d->ws[i], needs[i], baked, kWorkspaceNames[i]));
  }
  return RL_OK;
}

void* Ws(rl_device* d, rc::Workspace w) { return d->ws[static_cast<int>(w)].ptr; }

void FreeHost(unsigned char*& p) {
  if (p != nullptr) (void)cudaFreeHost(p);
  p = nullptr;
}

void Teardown(rl_device* d) {
  if (d->stream != nullptr) (void)cudaStreamSynchronize(d->stream);
  d->recorder.Abandon();
  d->graphs.Clear();
  for (Scratch& s : d->ws) {
    d->alloc.Deallocate(s.ptr);
    s = Scratch{};
  }
  d->alloc.Deallocate(d->device_meta.ptr);
  d->alloc.Deallocate(d->step_meta.ptr);
  d->alloc.Deallocate(d->blas_ws);
  d->device_meta = d->step_meta = Scratch{};
  d->blas_ws = nullptr;
  for (cudaEvent_t& e : d->ring_fences) {
    if (e != nullptr) (void)cudaEventDestroy(e);
    e = nullptr;
  }
  if (d->step_done != nullptr) (void)cudaEventDestroy(d->step_done);
  d->step_done = nullptr;
  FreeHost(d->ring_host);
  FreeHost(d->step_host);
  if (d->stream != nullptr) (void)cudaStreamDestroy(d->stream);
  d->stream = nullptr;
}

rl_status OpenDeviceOn(rl_device* d) {
  RL_TRY(SetDevice(d));
  int optin = 0;
  RL_TRY(Check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, d->index),
               "shared memory opt-in"));
  d->max_shared_optin = static_cast<size_t>(std::max(optin, 48 * 1024));
  RL_TRY(Check(cudaDeviceGetAttribute(&d->sm_count, cudaDevAttrMultiProcessorCount, d->index),
               "multiprocessor count"));
  d->sm_count = std::max(d->sm_count, 1);
  // Blocking (the default flags): ordered with the legacy stream as well.
  RL_TRY(Check(cudaStreamCreate(&d->stream), "cudaStreamCreate"));
  for (cudaEvent_t& e : d->ring_fences) {
    RL_TRY(Check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"));
  }
  RL_TRY(Check(cudaEventCreateWithFlags(&d->step_done, cudaEventDisableTiming), "cudaEventCreate"));
  void* ring = nullptr;
  RL_TRY(Check(cudaMallocHost(&ring, d->ring.capacity()), "pinned metadata ring"));
  d->ring_host = static_cast<unsigned char*>(ring);
  d->blas_ws = d->alloc.Allocate(rc::BlasLt::kWorkspaceBytes);
  if (d->blas_ws == nullptr) {
    return Fail(RL_RESOURCE_EXHAUSTED, "cannot allocate cuBLASLt's workspace");
  }
  if (std::string e = d->blas.Init(d->blas_ws, rc::BlasLt::kWorkspaceBytes); !e.empty()) {
    return Fail(RL_INTERNAL, e);
  }
  d->graphs_enabled = rc::GraphsEnabledByEnv(std::getenv("RELAYOUT_CUDA_GRAPHS"));
  if (const char* v = std::getenv("RELAYOUT_CUDA_QUANT_GEMV_MAX_TOKENS"); v != nullptr) {
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (end != v && *end == '\0' && n >= 1) d->quant_gemv_max_tokens = n;
  }
  return RL_OK;
}

rl_status OpenDevice(int32_t index, rl_device** out) {
  if (index < 0 || index >= DeviceCount()) {
    return Fail(RL_NOT_FOUND, "no device " + std::to_string(index));
  }
  auto* d = new (std::nothrow) rl_device(index);
  if (d == nullptr) return Fail(RL_RESOURCE_EXHAUSTED, "cannot allocate the device");
  if (rl_status s = OpenDeviceOn(d); s != RL_OK) {
    const std::string message = last_error;
    Teardown(d);
    delete d;
    last_error = message;
    return s;
  }
  *out = d;
  return RL_OK;
}

void CloseDevice(rl_device* device) {
  if (device == nullptr) return;
  (void)SetDevice(device);
  Teardown(device);
  delete device;  // the allocator returns every block still held
}

rl_status DeviceInfo(rl_device* device, rl_device_info* out) {
  std::memset(out, 0, sizeof(*out));
  RL_TRY(SetDevice(device));
  cudaDeviceProp prop;
  RL_TRY(Check(cudaGetDeviceProperties(&prop, device->index), "properties"));
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  RL_TRY(Check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  // prop.name is 256 chars; the ABI's name 64, NUL-terminated (zeroed above).
  std::memcpy(out->name, prop.name, std::min(sizeof(out->name) - 1, std::strlen(prop.name)));
  out->total_bytes = total_bytes;
  // Cached blocks are free to the engine: the next allocation reuses them
  // or releases them.
  out->free_bytes = std::min<uint64_t>(total_bytes, free_bytes + device->alloc.Stats().cached);
  out->alignment = 256;  // cudaMalloc's, and every rounded size is a multiple of 512
  out->host_addressable = 0;
  out->compute_major = prop.major;
  out->compute_minor = prop.minor;
  return RL_OK;
}

// ---- Memory ----

uint64_t AllocSize(rl_device*, uint64_t bytes) { return rc::CachingAllocator::RoundSize(bytes); }

rl_status BufferAlloc(rl_device* device, uint64_t bytes, rl_buffer** out) {
  if (bytes > rc::CachingAllocator::kMaxRequest) {
    return Fail(RL_RESOURCE_EXHAUSTED, std::to_string(bytes) + " bytes asked");
  }
  auto* b = new (std::nothrow) rl_buffer;
  if (b == nullptr) return Fail(RL_RESOURCE_EXHAUSTED, "cannot allocate a buffer record");
  b->bytes = bytes;
  if (bytes > 0) {
    last_alloc_error = cudaSuccess;
    b->ptr = device->alloc.Allocate(bytes);
    if (b->ptr == nullptr) {
      delete b;
      const rc::AllocatorStats s = device->alloc.Stats();
      return Fail(RL_RESOURCE_EXHAUSTED,
                  "out of device memory: " + std::to_string(AllocSize(device, bytes)) +
                      " bytes asked, " + std::to_string(s.in_use) + " in use (" +
                      cudaGetErrorString(last_alloc_error) + ")");
    }
  }
  *out = b;
  return RL_OK;
}

rl_status BufferFree(rl_device* device, rl_buffer* buffer) {
  if (buffer == nullptr) return RL_OK;
  const bool known = device->alloc.Deallocate(buffer->ptr);
  delete buffer;
  if (!known) return Fail(RL_INTERNAL, "buffer_free of a block this device did not allocate");
  return RL_OK;
}

void* BufferHostPtr(rl_buffer*) { return nullptr; }

rl_status CheckRange(const rl_buffer* b, uint64_t offset, uint64_t bytes, const char* what) {
  if (b == nullptr) return Fail(RL_INVALID_ARGUMENT, std::string(what) + ": null buffer");
  if (offset > b->bytes || bytes > b->bytes - offset) {
    return Fail(RL_INVALID_ARGUMENT, std::string(what) + ": bytes [" + std::to_string(offset) +
                                         ", " + std::to_string(offset + bytes) +
                                         ") outside a buffer of " + std::to_string(b->bytes));
  }
  return RL_OK;
}

unsigned char* At(const rl_buffer* b, uint64_t offset) {
  return static_cast<unsigned char*>(b->ptr) + offset;
}

rl_status Upload(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                 uint64_t bytes) {
  RL_TRY(CheckRange(dst, offset, bytes, "upload"));
  if (bytes == 0) return RL_OK;
  RL_TRY(Check(cudaMemcpyAsync(At(dst, offset), src, bytes, cudaMemcpyHostToDevice, device->stream),
               "upload"));
  return Check(cudaStreamSynchronize(device->stream), "upload");
}

rl_status Download(rl_device* device, const rl_buffer* src, uint64_t offset, void* dst,
                   uint64_t bytes) {
  RL_TRY(CheckRange(src, offset, bytes, "download"));
  if (bytes == 0) return RL_OK;
  RL_TRY(Check(cudaMemcpyAsync(dst, At(src, offset), bytes, cudaMemcpyDeviceToHost, device->stream),
               "download"));
  return Check(cudaStreamSynchronize(device->stream), "download");
}

// Ordered on the stream like everything else; a later download or
// synchronize sees it.
rl_status Fill(rl_device* device, rl_buffer* dst, uint64_t offset, uint8_t value, uint64_t bytes) {
  RL_TRY(CheckRange(dst, offset, bytes, "fill"));
  if (bytes == 0) return RL_OK;
  return Check(cudaMemsetAsync(At(dst, offset), value, bytes, device->stream), "fill");
}

rl_status HostAlloc(rl_device*, uint64_t bytes, void** out) {
  return Check(cudaMallocHost(out, bytes == 0 ? 1 : bytes), "cudaMallocHost");
}

void HostFree(rl_device*, void* ptr) {
  if (ptr != nullptr) (void)cudaFreeHost(ptr);
}

rl_status Synchronize(rl_device* device) {
  return Check(cudaStreamSynchronize(device->stream), "synchronize");
}

const char* LastError() { return last_error.c_str(); }

rl_status UploadAsync(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                      uint64_t bytes) {
  RL_TRY(CheckRange(dst, offset, bytes, "upload_async"));
  if (bytes == 0) return RL_OK;
  return Check(cudaMemcpyAsync(At(dst, offset), src, bytes, cudaMemcpyHostToDevice, device->stream),
               "upload_async");
}

rl_status EventCreate(rl_device*, rl_event** out) {
  auto* e = new (std::nothrow) rl_event;
  if (e == nullptr) return Fail(RL_RESOURCE_EXHAUSTED, "no memory for an event");
  if (rl_status s =
          Check(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "cudaEventCreate");
      s != RL_OK) {
    delete e;
    return s;
  }
  *out = e;
  return RL_OK;
}

void EventDestroy(rl_device*, rl_event* event) {
  if (event == nullptr) return;
  (void)cudaEventDestroy(event->event);
  delete event;
}

rl_status EventRecord(rl_device* device, rl_event* event) {
  return Check(cudaEventRecord(event->event, device->stream), "cudaEventRecord");
}

// A never-recorded event completes at once (cudaEventSynchronize's rule).
rl_status EventSynchronize(rl_device*, rl_event* event) {
  return Check(cudaEventSynchronize(event->event), "cudaEventSynchronize");
}

// ---- Entry wrappers ----

bool Recording(const rl_device* d) { return d->in_step && d->graphs_enabled; }

// Every entry that issues CUDA work first makes the device current on the
// calling thread.
template <auto Fn>
struct OnDevice;
template <typename R, typename... A, R (*Fn)(rl_device*, A...)>
struct OnDevice<Fn> {
  static R Call(rl_device* device, A... args) {
    RL_TRY(SetDevice(device));
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
      return Fail(RL_FAILED_PRECONDITION, "only ops may be issued inside a step");
    }
    return OnDevice<Fn>::Call(device, args...);
  }
};

// An op: a refused op inside a recorded step leaves the step incomplete
// (it still runs at step_end, eagerly, never captured).
template <auto Fn>
struct OpEntry;
template <typename... A, rl_status (*Fn)(rl_device*, A...)>
struct OpEntry<Fn> {
  static rl_status Call(rl_device* device, A... args) {
    const rl_status s = OnDevice<Fn>::Call(device, args...);
    if (s != RL_OK && Recording(device)) device->recorder.MarkIncomplete();
    return s;
  }
};

// ---- Metadata and issue ----

// Op kinds, the first word of each op in a step's signature.
enum OpKind : uint32_t {
  kOpMatmul = 1,
  kOpAddRowBias,
  kOpEmbedding,
  kOpRmsNorm,
  kOpRope,
  kOpAdd,
  kOpSiluGate,
  kOpKvWrite,
  kOpAttention,
};

// Tags of metadata arrays shared between the ops of a step.
enum MetaTag : uint32_t { kTagTokens = 1, kTagPositions, kTagSpans };

// The arena an op lays its metadata out in: the step's while recording,
// else the device's eager one, emptied for this op.
rc::MetadataArena& OpMetadata(rl_device* d) {
  if (Recording(d)) return d->recorder.metadata();
  d->eager_meta.Clear();
  return d->eager_meta;
}

// Copies the eager arena to the device through the pinned ring; *out is
// the device address of its byte 0.
rl_status StageEagerMetadata(rl_device* d, const unsigned char** out) {
  const uint64_t n = d->eager_meta.size();
  *out = nullptr;
  if (n == 0) return RL_OK;
  RL_TRY(EnsureScratch(d, &d->device_meta, n, false, "metadata"));
  rc::StagingRing::Slot slot;
  if (!d->ring.Acquire(n, 256, &slot)) {
    // A segment too small for this op's metadata: a bigger ring, once
    // nothing reads the old one.
    uint64_t segment = d->ring.segment_bytes();
    while (segment < n) segment *= 2;
    RL_TRY(Check(cudaStreamSynchronize(d->stream), "synchronize before growing the ring"));
    FreeHost(d->ring_host);
    void* ring = nullptr;
    RL_TRY(Check(cudaMallocHost(&ring, segment * kRingSegments), "pinned metadata ring"));
    d->ring_host = static_cast<unsigned char*>(ring);
    d->ring.Reset(segment, kRingSegments);
    if (!d->ring.Acquire(n, 256, &slot)) return Fail(RL_INTERNAL, "metadata ring");
  }
  if (slot.fence_segment >= 0) {
    RL_TRY(Check(cudaEventRecord(d->ring_fences[slot.fence_segment], d->stream),
                 "metadata ring fence"));
  }
  if (slot.wait_segment >= 0) {
    RL_TRY(Check(cudaEventSynchronize(d->ring_fences[slot.wait_segment]), "metadata ring wait"));
  }
  std::memcpy(d->ring_host + slot.offset, d->eager_meta.data(), n);
  RL_TRY(Check(cudaMemcpyAsync(d->device_meta.ptr, d->ring_host + slot.offset, n,
                               cudaMemcpyHostToDevice, d->stream),
               "metadata copy"));
  *out = static_cast<const unsigned char*>(d->device_meta.ptr);
  return RL_OK;
}

// One op, ready to issue: its signature words, workspace needs and the
// closure that launches it.
struct OpWork {
  uint32_t kind = 0;
  rc::StepSignature shape;
  rc::WorkspaceNeeds needs{};
  rc::IssueFn issue;
};

// Records the op inside a step, else issues it now.
rl_status Submit(rl_device* d, OpWork work) {
  if (Recording(d)) {
    d->recorder.Record(work.kind, work.shape, work.needs, std::move(work.issue));
    return RL_OK;
  }
  RL_TRY(EnsureWorkspaces(d, work.needs));
  const unsigned char* meta = nullptr;
  const rl_status staged = StageEagerMetadata(d, &meta);
  d->eager_meta.Clear();
  RL_TRY(staged);
  return work.issue(meta);
}

rl_status Launched(const rc::CudaLauncher& launch, const char* op) {
  return launch.error() == cudaSuccess ? RL_OK
                                       : CudaFail(launch.error(), std::string(op) + " launch");
}

// ---- Steps ----

rl_status StepBegin(rl_device* device) {
  if (device->in_step) return Fail(RL_FAILED_PRECONDITION, "step_begin inside a step");
  device->in_step = true;
  if (device->graphs_enabled) device->recorder.Begin();
  return RL_OK;
}

// Issues the step's ops on the stream (captured or not) after the copy of
// its metadata into the device step arena.
rl_status IssueStep(rl_device* d, const rc::RecordedStep& step, uint64_t meta_bytes) {
  if (meta_bytes > 0) {
    RL_TRY(Check(cudaMemcpyAsync(d->step_meta.ptr, d->step_host, meta_bytes, cudaMemcpyHostToDevice,
                                 d->stream),
                 "step metadata copy"));
  }
  const auto* meta = static_cast<const unsigned char*>(d->step_meta.ptr);
  for (const rc::IssueFn& op : step.ops) RL_TRY(op(meta));
  return RL_OK;
}

rl_status RunStepEagerly(rl_device* d, const rc::RecordedStep& step, uint64_t meta_bytes) {
  ++d->eager_steps;
  const rl_status issued = IssueStep(d, step, meta_bytes);
  // Recorded even after a failed op: the next step waits on it before it
  // rewrites the pinned arena the copy above reads.
  const rl_status recorded = Check(cudaEventRecord(d->step_done, d->stream), "step event");
  return issued != RL_OK ? issued : recorded;
}

// Captures the step into a graph; *exec null (and the stream usable) when
// the driver refused the capture. Op errors (an op's own launch failing)
// are returned as such.
rl_status CaptureStep(rl_device* d, const rc::RecordedStep& step, uint64_t meta_bytes,
                      cudaGraphExec_t* exec) {
  *exec = nullptr;
  cudaError_t e = cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return RL_OK;
  }
  const rl_status issued = IssueStep(d, step, meta_bytes);
  const std::string issue_error = last_error;
  cudaGraph_t graph = nullptr;
  e = cudaStreamEndCapture(d->stream, &graph);
  if (issued != RL_OK) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    last_error = issue_error;
    // A capture invalidated by an API the driver refuses there looks like a
    // failed launch from inside: let the caller run the step eagerly.
    return e == cudaSuccess ? issued : RL_OK;
  }
  if (e != cudaSuccess || graph == nullptr) {
    (void)cudaGetLastError();
    return RL_OK;
  }
  e = cudaGraphInstantiate(exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *exec = nullptr;
  }
  return RL_OK;
}

rl_status StepEnd(rl_device* d) {
  if (!d->in_step) return Fail(RL_FAILED_PRECONDITION, "step_end outside a step");
  d->in_step = false;
  ++d->steps;
  if (!d->graphs_enabled) {  // the ops ran when they were called
    ++d->eager_steps;
    return RL_OK;
  }
  rc::RecordedStep step;
  d->recorder.End(&step);
  if (step.ops.empty()) return RL_OK;
  // Everything the graph bakes in is in place before the lookup: growing
  // any of it drops the cached graphs.
  RL_TRY(EnsureWorkspaces(d, step.needs));
  const uint64_t meta_bytes = d->recorder.metadata().size();
  RL_TRY(EnsureScratch(d, &d->step_meta, meta_bytes, true, "step metadata"));
  // The previous step's graph may still be copying out of the pinned arena.
  RL_TRY(Check(cudaEventSynchronize(d->step_done), "waiting for the previous step"));
  if (d->step_host_bytes < meta_bytes) {
    RL_TRY(InvalidateGraphs(d));
    FreeHost(d->step_host);
    d->step_host_bytes = 0;
    const uint64_t size = ScratchSize(meta_bytes);
    void* p = nullptr;
    RL_TRY(Check(cudaMallocHost(&p, size), "pinned step arena"));
    d->step_host = static_cast<unsigned char*>(p);
    d->step_host_bytes = size;
  }
  if (meta_bytes > 0) std::memcpy(d->step_host, d->recorder.metadata().data(), meta_bytes);

  if (step.incomplete) return RunStepEagerly(d, step, meta_bytes);
  StepGraph* graph = d->graphs.Find(step.signature);
  if (graph != nullptr && graph->exec != nullptr) {
    ++d->replays;
    RL_TRY(Check(cudaGraphLaunch(graph->exec, d->stream), "graph launch"));
    return Check(cudaEventRecord(d->step_done, d->stream), "step event");
  }
  if (graph != nullptr && graph->failures >= kMaxCaptureFailures) {
    return RunStepEagerly(d, step, meta_bytes);
  }
  cudaGraphExec_t exec = nullptr;
  RL_TRY(CaptureStep(d, step, meta_bytes, &exec));
  if (exec == nullptr) {
    const int failures = graph != nullptr ? graph->failures + 1 : 1;
    d->graphs.Insert(step.signature, StepGraph{nullptr, failures});
    return RunStepEagerly(d, step, meta_bytes);
  }
  d->graphs.Insert(step.signature, StepGraph{exec, 0});
  ++d->captures;
  RL_TRY(Check(cudaGraphLaunch(exec, d->stream), "graph launch"));
  return Check(cudaEventRecord(d->step_done, d->stream), "step event");
}

// ---- Operands ----

rl_status Refused(const char* op, const std::string& why) {
  return Fail(RL_INVALID_ARGUMENT, std::string(op) + ": " + why);
}

// count * size, or false on overflow or a negative count.
bool Bytes(int64_t count, uint64_t size, uint64_t* out) {
  if (count < 0) return false;
  return !__builtin_mul_overflow(static_cast<uint64_t>(count), size, out);
}

// a * b for non-negative sizes, false on overflow.
bool Mul(int64_t a, int64_t b, int64_t* out) {
  return a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, out);
}

// The operand's device address, when [offset, offset + bytes) lies in its
// buffer.
rl_status Operand(rl_ref ref, uint64_t bytes, const char* what, unsigned char** out) {
  RL_TRY(CheckRange(ref.buffer, ref.offset, bytes, what));
  *out = At(ref.buffer, ref.offset);
  return RL_OK;
}

template <typename T>
rl_status Operand(rl_ref ref, int64_t count, const char* what, T** out) {
  uint64_t bytes = 0;
  if (!Bytes(count, sizeof(T), &bytes)) {
    return Fail(RL_INVALID_ARGUMENT, std::string(what) + ": size " + std::to_string(count));
  }
  unsigned char* p = nullptr;
  RL_TRY(Operand(ref, bytes, what, &p));
  *out = reinterpret_cast<T*>(p);
  return RL_OK;
}

// Float operands need their natural alignment (rl_ref offsets are bytes).
template <typename T>
rl_status Aligned(const T* p, uint64_t align, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % align != 0) {
    return Fail(RL_INVALID_ARGUMENT,
                std::string(what) + ": not " + std::to_string(align) + "-byte aligned");
  }
  return RL_OK;
}

// Checks count (a product of sizes) and resolves the operand.
#define CUDA_OPERAND(ref, count, what, out) RL_TRY(Operand(ref, count, what, out))

// ---- Matmul ----

// REQUIRES: rc::IsQuantDtype(dtype) (MatmulShapeSupported checked it).
rc::QuantType QuantTypeOf(int32_t dtype) {
  rc::QuantType t = rc::QuantType::kQ8_0;
  rc::QuantTypeOfDtype(dtype, &t);
  return t;
}

// host/op_plan.h's constants are the kernels'.
static_assert(rc::kPlanGroupRows == rc::kGpuQuantGroupRows);

bool MatmulShapeOk(const rl_matmul_weight* w) {
  return w != nullptr && rc::MatmulShapeSupported(*w);
}

int32_t MatmulSupportedOp(rl_device*, const rl_matmul_weight* w) {
  return MatmulShapeOk(w) && rc::WeightBytes(w->dtype, w->rows, w->cols) != 0 ? 1 : 0;
}

uint64_t AlignUp256(uint64_t n) { return (n + 255) / 256 * 256; }

rl_status MatmulOp(rl_device* device, const rl_matmul_weight* w, rl_ref x, int64_t tokens,
                   rl_ref y) {
  if (!MatmulShapeOk(w)) return Refused("matmul", "weight type, layout or shape not supported");
  if (tokens < 1 || tokens > kMaxRows) {
    return Refused("matmul", "tokens " + std::to_string(tokens) + " outside [1, 2^30]");
  }
  const uint64_t wbytes = rc::WeightBytes(w->dtype, w->rows, w->cols);
  if (wbytes == 0) return Refused("matmul", "weight size overflows");
  unsigned char* wd = nullptr;
  RL_TRY(Operand(w->data, wbytes, "matmul weight", &wd));
  int64_t x_count = 0, y_count = 0;
  if (!Mul(tokens, w->cols, &x_count) || !Mul(tokens, w->rows, &y_count)) {
    return Refused("matmul", "sizes overflow");
  }
  float* xs = nullptr;
  float* ys = nullptr;
  CUDA_OPERAND(x, x_count, "matmul x", &xs);
  CUDA_OPERAND(y, y_count, "matmul y", &ys);
  RL_TRY(Aligned(xs, 4, "matmul x"));
  RL_TRY(Aligned(ys, 4, "matmul y"));
  const int64_t rows = w->rows, cols = w->cols;
  const int32_t dtype = w->dtype;
  const rc::MatmulPath path =
      rc::ChooseMatmulPath(dtype, tokens, device->quant_gemv_max_tokens, rc::kFloatGemvMaxTokens);
  if (rc::IsQuantDtype(dtype)) {
    // The quantized kernels' 16-byte loads (quant_matmul.cuh): the weight
    // always, x where QuantizeActivations reads it.
    RL_TRY(Aligned(wd, 16, "matmul weight"));
    if (path == rc::MatmulPath::kQuantGemv) RL_TRY(Aligned(xs, 16, "matmul x"));
  } else {
    RL_TRY(Aligned(wd, dtype == RL_DTYPE_F32 ? 4 : 2, "matmul weight"));
  }

  OpWork work;
  work.kind = kOpMatmul;
  for (int64_t v : {int64_t{dtype}, int64_t{w->layout}, rows, cols, tokens}) {
    work.shape.AddSigned(v);
  }
  work.shape.AddPointer(wd);
  work.shape.AddPointer(xs);
  work.shape.AddPointer(ys);

  if (path == rc::MatmulPath::kQuantGemv) {
    const rc::QuantType type = QuantTypeOf(dtype);
    const bool group = w->layout == RL_LAYOUT_QUANT_ROW_GROUP;
    work.needs[static_cast<int>(rc::Workspace::kQuantActivations)] =
        static_cast<uint64_t>(rc::QuantMatmulWorkspaceBytes(tokens, cols));
    work.issue = [=](const unsigned char*) {
      rc::CudaLauncher launch(device->stream);
      rc::QuantMatmul(launch, type, group, wd, rows, cols, xs, tokens, ys,
                      Ws(device, rc::Workspace::kQuantActivations));
      return Launched(launch, "matmul");
    };
  } else if (path == rc::MatmulPath::kQuantDequantGemm) {
    const rc::QuantType type = QuantTypeOf(dtype);
    const bool group = w->layout == RL_LAYOUT_QUANT_ROW_GROUP;
    const int64_t chunk = rc::DequantChunkRows(rows, cols, kDequantChunkBytes);
    work.needs[static_cast<int>(rc::Workspace::kDequant)] =
        static_cast<uint64_t>(chunk) * static_cast<uint64_t>(cols) * 2;
    work.needs[static_cast<int>(rc::Workspace::kActivationBf16)] =
        static_cast<uint64_t>(x_count) * 2;
    work.issue = [=](const unsigned char*) {
      rc::CudaLauncher launch(device->stream);
      auto* xb = static_cast<uint16_t*>(Ws(device, rc::Workspace::kActivationBf16));
      auto* wb = static_cast<uint16_t*>(Ws(device, rc::Workspace::kDequant));
      rc::ToBf16(launch, xs, x_count, xb);
      RL_TRY(Launched(launch, "matmul (x to BF16)"));
      for (int64_t first = 0; first < rows; first += chunk) {
        const int64_t n = std::min(chunk, rows - first);
        rc::DequantizeToBf16(launch, type, group, wd, rows, cols, first, n, wb);
        RL_TRY(Launched(launch, "matmul (dequantize)"));
        if (std::string e = device->blas.GemmBf16(device->stream, wb, n, cols, xb, tokens,
                                                  ys + first, rows, 1.0f, 0.0f);
            !e.empty()) {
          return Fail(RL_INTERNAL, "matmul: " + e);
        }
      }
      return RL_OK;
    };
  } else if (path == rc::MatmulPath::kBf16PairGemm) {
    const uint64_t half = AlignUp256(static_cast<uint64_t>(x_count) * 2);
    work.needs[static_cast<int>(rc::Workspace::kActivationBf16)] = 2 * half;
    const auto* wb = reinterpret_cast<const uint16_t*>(wd);
    work.issue = [=](const unsigned char*) {
      rc::CudaLauncher launch(device->stream);
      auto* hi = static_cast<uint16_t*>(Ws(device, rc::Workspace::kActivationBf16));
      auto* lo = reinterpret_cast<uint16_t*>(reinterpret_cast<unsigned char*>(hi) + half);
      rc::SplitBf16Pair(launch, xs, x_count, hi, lo);
      RL_TRY(Launched(launch, "matmul (x to a BF16 pair)"));
      // y = W hi, then y += W lo: the float activations' product to 2^-16.
      for (int pass = 0; pass < 2; ++pass) {
        if (std::string e =
                device->blas.GemmBf16(device->stream, wb, rows, cols, pass == 0 ? hi : lo, tokens,
                                      ys, rows, 1.0f, pass == 0 ? 0.0f : 1.0f);
            !e.empty()) {
          // No cuBLASLt algorithm for this shape (an odd K, a misaligned
          // operand): the SIMT GEMM writes all of y instead.
          if (!rc::FloatMatmul(launch, dtype, wd, rows, cols, xs, tokens, ys)) {
            return Fail(RL_INTERNAL, "matmul: " + e);
          }
          return Launched(launch, "matmul (after cuBLASLt refused)");
        }
      }
      return RL_OK;
    };
  } else {
    work.issue = [=](const unsigned char*) {
      rc::CudaLauncher launch(device->stream);
      if (!rc::FloatMatmul(launch, dtype, wd, rows, cols, xs, tokens, ys)) {
        return Fail(RL_INTERNAL, "matmul: the float kernel refused its arguments");
      }
      return Launched(launch, "matmul");
    };
  }
  return Submit(device, std::move(work));
}

// ---- Layer ops ----

rl_status AddRowBiasOp(rl_device* device, rl_ref bias, int64_t rows, int64_t cols, rl_ref y) {
  int64_t count = 0;
  if (!Mul(rows, cols, &count)) return Refused("add_row_bias", "sizes negative or overflowing");
  float* b = nullptr;
  float* ys = nullptr;
  CUDA_OPERAND(bias, cols, "add_row_bias bias", &b);
  CUDA_OPERAND(y, count, "add_row_bias y", &ys);
  RL_TRY(Aligned(b, 4, "add_row_bias bias"));
  RL_TRY(Aligned(ys, 4, "add_row_bias y"));
  OpWork work;
  work.kind = kOpAddRowBias;
  work.shape.AddPointer(b);
  work.shape.AddSigned(rows);
  work.shape.AddSigned(cols);
  work.shape.AddPointer(ys);
  work.issue = [=](const unsigned char*) {
    rc::CudaLauncher launch(device->stream);
    rc::AddRowBias(launch, b, rows, cols, ys);
    return Launched(launch, "add_row_bias");
  };
  return Submit(device, std::move(work));
}

rl_status EmbeddingOp(rl_device* device, rl_ref table, int32_t dtype, int64_t vocab, int64_t dim,
                      const int32_t* tokens, int64_t n, rl_ref out) {
  if (!rc::EmbeddingSupported(dtype, dim) || vocab < 1 || vocab > INT32_MAX) {
    return Refused("embedding", "dtype " + std::to_string(dtype) + ", vocab " +
                                    std::to_string(vocab) + ", dim " + std::to_string(dim) +
                                    " not supported");
  }
  if (n < 0 || n > kMaxRows) return Refused("embedding", "token count " + std::to_string(n));
  const uint64_t tbytes = rc::WeightBytes(dtype, vocab, dim);
  if (tbytes == 0) return Refused("embedding", "table size overflows");
  unsigned char* t = nullptr;
  RL_TRY(Operand(table, tbytes, "embedding table", &t));
  int64_t count = 0;
  if (!Mul(n, dim, &count)) return Refused("embedding", "sizes overflow");
  float* o = nullptr;
  CUDA_OPERAND(out, count, "embedding out", &o);
  RL_TRY(Aligned(o, 4, "embedding out"));
  RL_TRY(Aligned(t, dtype == RL_DTYPE_F32 ? 4 : 2, "embedding table"));
  if (std::string e = rc::CheckTokens(tokens, n, vocab); !e.empty()) {
    return Refused("embedding", e);
  }
  rc::MetadataArena& meta = OpMetadata(device);
  const uint64_t off = meta.AppendShared(kTagTokens, tokens, static_cast<uint64_t>(n) * 4);
  OpWork work;
  work.kind = kOpEmbedding;
  work.shape.AddPointer(t);
  for (int64_t v : {int64_t{dtype}, vocab, dim, n}) work.shape.AddSigned(v);
  work.shape.AddPointer(o);
  work.shape.Add(off);
  work.issue = [=](const unsigned char* m) {
    rc::CudaLauncher launch(device->stream);
    if (!rc::Embedding(launch, t, dtype, vocab, dim, reinterpret_cast<const int32_t*>(m + off), n,
                       o)) {
      return Fail(RL_INTERNAL, "embedding: the kernel refused its arguments");
    }
    return Launched(launch, "embedding");
  };
  return Submit(device, std::move(work));
}

rl_status RmsNormOp(rl_device* device, rl_ref x, rl_ref weight, int64_t rows, int64_t dim,
                    float eps, rl_ref out) {
  int64_t count = 0;
  if (!Mul(rows, dim, &count) || rows > kMaxRows) {
    return Refused("rms_norm", "rows " + std::to_string(rows) + ", dim " + std::to_string(dim));
  }
  float* xs = nullptr;
  float* w = nullptr;
  float* o = nullptr;
  CUDA_OPERAND(x, count, "rms_norm x", &xs);
  CUDA_OPERAND(weight, dim, "rms_norm weight", &w);
  CUDA_OPERAND(out, count, "rms_norm out", &o);
  RL_TRY(Aligned(xs, 4, "rms_norm x"));
  RL_TRY(Aligned(w, 4, "rms_norm weight"));
  RL_TRY(Aligned(o, 4, "rms_norm out"));
  OpWork work;
  work.kind = kOpRmsNorm;
  work.shape.AddPointer(xs);
  work.shape.AddPointer(w);
  work.shape.AddSigned(rows);
  work.shape.AddSigned(dim);
  work.shape.AddFloat(eps);
  work.shape.AddPointer(o);
  work.issue = [=](const unsigned char*) {
    rc::CudaLauncher launch(device->stream);
    rc::RmsNorm(launch, xs, w, rows, dim, eps, o);
    return Launched(launch, "rms_norm");
  };
  return Submit(device, std::move(work));
}

rl_status RopeOp(rl_device* device, rl_ref x, int64_t rows, int32_t heads, int32_t head_dim,
                 int32_t rope_dim, const int32_t* positions, rl_ref inv_freq, int32_t pairing) {
  if (heads < 1 || head_dim < 1 || rope_dim < 0 || rope_dim > head_dim || rope_dim % 2 != 0 ||
      positions == nullptr || (pairing != RL_ROPE_HALVES && pairing != RL_ROPE_INTERLEAVED) ||
      rows < 0 || rows > kMaxRows) {
    return Refused("rope", "rows " + std::to_string(rows) + ", heads " + std::to_string(heads) +
                               ", head_dim " + std::to_string(head_dim) + ", rope_dim " +
                               std::to_string(rope_dim) + ", pairing " + std::to_string(pairing));
  }
  int64_t count = 0;
  if (!Mul(rows, int64_t{heads} * head_dim, &count)) return Refused("rope", "sizes overflow");
  float* xs = nullptr;
  float* f = nullptr;
  CUDA_OPERAND(x, count, "rope x", &xs);
  CUDA_OPERAND(inv_freq, rope_dim / 2, "rope inv_freq", &f);
  RL_TRY(Aligned(xs, 4, "rope x"));
  RL_TRY(Aligned(f, 4, "rope inv_freq"));
  if (std::string e = rc::CheckPositions(positions, rows); !e.empty()) return Refused("rope", e);
  if (rope_dim == 0 || rows == 0) return RL_OK;  // nothing rotates
  rc::MetadataArena& meta = OpMetadata(device);
  const uint64_t off = meta.AppendShared(kTagPositions, positions, static_cast<uint64_t>(rows) * 4);
  OpWork work;
  work.kind = kOpRope;
  work.shape.AddPointer(xs);
  for (int64_t v : {rows, int64_t{heads}, int64_t{head_dim}, int64_t{rope_dim}, int64_t{pairing}}) {
    work.shape.AddSigned(v);
  }
  work.shape.AddPointer(f);
  work.shape.Add(off);
  work.issue = [=](const unsigned char* m) {
    rc::CudaLauncher launch(device->stream);
    rc::Rope(launch, xs, rows, heads, head_dim, rope_dim, reinterpret_cast<const int32_t*>(m + off),
             f, pairing);
    return Launched(launch, "rope");
  };
  return Submit(device, std::move(work));
}

rl_status AddOp(rl_device* device, rl_ref src, int64_t n, rl_ref dst) {
  float* s = nullptr;
  float* d = nullptr;
  CUDA_OPERAND(src, n, "add src", &s);
  CUDA_OPERAND(dst, n, "add dst", &d);
  RL_TRY(Aligned(s, 4, "add src"));
  RL_TRY(Aligned(d, 4, "add dst"));
  OpWork work;
  work.kind = kOpAdd;
  work.shape.AddPointer(s);
  work.shape.AddSigned(n);
  work.shape.AddPointer(d);
  work.issue = [=](const unsigned char*) {
    rc::CudaLauncher launch(device->stream);
    rc::Add(launch, s, n, d);
    return Launched(launch, "add");
  };
  return Submit(device, std::move(work));
}

rl_status SiluGateOp(rl_device* device, rl_ref gate, rl_ref up, int64_t n, rl_ref out) {
  float* g = nullptr;
  float* u = nullptr;
  float* o = nullptr;
  CUDA_OPERAND(gate, n, "silu_gate gate", &g);
  CUDA_OPERAND(up, n, "silu_gate up", &u);
  CUDA_OPERAND(out, n, "silu_gate out", &o);
  RL_TRY(Aligned(g, 4, "silu_gate gate"));
  RL_TRY(Aligned(u, 4, "silu_gate up"));
  RL_TRY(Aligned(o, 4, "silu_gate out"));
  OpWork work;
  work.kind = kOpSiluGate;
  work.shape.AddPointer(g);
  work.shape.AddPointer(u);
  work.shape.AddSigned(n);
  work.shape.AddPointer(o);
  work.issue = [=](const unsigned char*) {
    rc::CudaLauncher launch(device->stream);
    rc::SiluGate(launch, g, u, n, o);
    return Launched(launch, "silu_gate");
  };
  return Submit(device, std::move(work));
}

// ---- KV write and attention ----

// What kv_write and attention share: the shape, the spans (checked against
// the pool on the host), both pools, and the spans' metadata laid out as
// DeviceAttentionSpan records followed by the flat block tables.
struct PagedOperands {
  rc::SpanSummary summary;
  int64_t bucket = 0;  // the context bound grids are sized by
  int64_t stride = 0;  // block table entries per span in the flat array
  unsigned char* k_pool = nullptr;
  unsigned char* v_pool = nullptr;
  uint64_t spans_offset = 0;  // in the op's metadata arena
  uint64_t tables_offset = 0;
};

rl_status ResolvePaged(const char* op, const rl_attention_params* p, const rl_attention_span* spans,
                       int64_t num_spans, rl_ref k_pool, rl_ref v_pool, PagedOperands* out) {
  if (std::string e = rc::CheckAttentionParams(p); !e.empty()) return Refused(op, e);
  if (std::string e = rc::CheckSpans(p, spans, num_spans, &out->summary); !e.empty()) {
    return Refused(op, e);
  }
  if (num_spans > 65535) return Refused(op, std::to_string(num_spans) + " spans (at most 65535)");
  if (out->summary.rows > kMaxRows) return Refused(op, "rows past 2^30");
  uint64_t pool = 0;
  const uint64_t elem = p->kv_dtype == RL_KV_F16 ? 2 : 4;
  if (__builtin_mul_overflow(static_cast<uint64_t>(p->pool_blocks),
                             static_cast<uint64_t>(p->block_size), &pool) ||
      __builtin_mul_overflow(
          pool, static_cast<uint64_t>(p->num_kv_heads) * static_cast<uint64_t>(p->head_dim) * elem,
          &pool)) {
    return Refused(op, "pool size overflows");
  }
  RL_TRY(Operand(k_pool, pool, op, &out->k_pool));
  RL_TRY(Operand(v_pool, pool, op, &out->v_pool));
  RL_TRY(Aligned(out->k_pool, elem, op));
  RL_TRY(Aligned(out->v_pool, elem, op));
  // A power-of-two bucket of at least 256 positions: a decode stream keeps
  // its graph until its longest context doubles. Eager calls use the same
  // bound, so a step gives the same results with graphs on or off.
  out->bucket = rc::ContextBucket(out->summary.longest_context);
  out->stride = std::max<int64_t>(1, (out->bucket + p->block_size - 1) / p->block_size);
  return RL_OK;
}

// Lays the spans out in the op's metadata arena (after every check passed,
// so a refused op leaves the arena as it was).
void LayOutSpans(rl_device* d, const rl_attention_params* p, const rl_attention_span* spans,
                 int64_t num_spans, PagedOperands* out) {
  // One blob: the records, then num_spans x stride table entries (padded
  // with block 0); shared by every kv_write and attention of a step that
  // passes the same spans.
  std::vector<unsigned char>& blob = d->span_blob;
  const uint64_t records =
      AlignUp256(static_cast<uint64_t>(num_spans) * sizeof(rc::DeviceAttentionSpan));
  const uint64_t entries = static_cast<uint64_t>(num_spans) * static_cast<uint64_t>(out->stride);
  blob.assign(records + entries * 4, 0);
  auto* recs = reinterpret_cast<rc::DeviceAttentionSpan*>(blob.data());
  for (int64_t i = 0; i < num_spans; ++i) {
    recs[i] = rc::DeviceAttentionSpan{spans[i].first_row, spans[i].rows, spans[i].start_position,
                                      i * out->stride};
  }
  rc::FlattenBlockTables(spans, num_spans, p->block_size, out->stride,
                         reinterpret_cast<int32_t*>(blob.data() + records));
  rc::MetadataArena& meta = OpMetadata(d);
  out->spans_offset = meta.AppendShared(kTagSpans, blob.data(), blob.size(), 256);
  out->tables_offset = out->spans_offset + records;
}

void SignAttentionParams(const rl_attention_params* p, rc::StepSignature* s) {
  for (int64_t v : {int64_t{p->num_heads}, int64_t{p->num_kv_heads}, int64_t{p->head_dim},
                    int64_t{p->block_size}, int64_t{p->kv_dtype}, p->pool_blocks}) {
    s->AddSigned(v);
  }
  s->AddFloat(p->scale);
}

void SignPaged(const PagedOperands& o, int64_t num_spans, rc::StepSignature* s) {
  for (int64_t v : {num_spans, o.summary.rows, o.summary.max_span_rows, o.bucket, o.stride}) {
    s->AddSigned(v);
  }
  s->AddPointer(o.k_pool);
  s->AddPointer(o.v_pool);
  s->Add(o.spans_offset);
}

rl_status KvWriteOp(rl_device* device, const rl_attention_params* p, rl_ref k_rows, rl_ref v_rows,
                    const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                    rl_ref v_pool) {
  PagedOperands o;
  RL_TRY(ResolvePaged("kv_write", p, spans, num_spans, k_pool, v_pool, &o));
  const int64_t kv_dim = int64_t{p->num_kv_heads} * p->head_dim;
  int64_t count = 0;
  if (!Mul(o.summary.rows, kv_dim, &count)) return Refused("kv_write", "sizes overflow");
  float* kr = nullptr;
  float* vr = nullptr;
  CUDA_OPERAND(k_rows, count, "kv_write k", &kr);
  CUDA_OPERAND(v_rows, count, "kv_write v", &vr);
  RL_TRY(Aligned(kr, 4, "kv_write k"));
  RL_TRY(Aligned(vr, 4, "kv_write v"));
  if (o.summary.rows == 0) return RL_OK;  // no span has a row
  LayOutSpans(device, p, spans, num_spans, &o);
  const rl_attention_params params = *p;
  OpWork work;
  work.kind = kOpKvWrite;
  SignAttentionParams(p, &work.shape);
  SignPaged(o, num_spans, &work.shape);
  work.shape.AddPointer(kr);
  work.shape.AddPointer(vr);
  work.issue = [=](const unsigned char* m) {
    rc::CudaLauncher launch(device->stream);
    if (!rc::KvWrite(launch, params, kr, vr,
                     reinterpret_cast<const rc::DeviceAttentionSpan*>(m + o.spans_offset),
                     num_spans, o.summary.rows,
                     reinterpret_cast<const int32_t*>(m + o.tables_offset), o.k_pool, o.v_pool)) {
      return Fail(RL_INTERNAL, "kv_write: the kernel refused its arguments");
    }
    return Launched(launch, "kv_write");
  };
  return Submit(device, std::move(work));
}

rl_status AttentionOp(rl_device* device, const rl_attention_params* p, rl_ref q,
                      const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                      rl_ref v_pool, rl_ref out) {
  if (p != nullptr && !rc::AttentionHeadDimSupported(p->head_dim)) {
    return Refused("attention", "head_dim " + std::to_string(p->head_dim) +
                                    " not supported (8, 16, 32, 64, 128 or 256)");
  }
  PagedOperands o;
  RL_TRY(ResolvePaged("attention", p, spans, num_spans, k_pool, v_pool, &o));
  const int64_t q_dim = int64_t{p->num_heads} * p->head_dim;
  int64_t count = 0;
  if (!Mul(o.summary.rows, q_dim, &count)) return Refused("attention", "sizes overflow");
  float* qs = nullptr;
  float* y = nullptr;
  CUDA_OPERAND(q, count, "attention q", &qs);
  CUDA_OPERAND(out, count, "attention out", &y);
  // The kernels' 16-byte loads and stores.
  RL_TRY(Aligned(qs, 16, "attention q"));
  RL_TRY(Aligned(y, 16, "attention out"));
  RL_TRY(Aligned(o.k_pool, 16, "attention k_pool"));
  RL_TRY(Aligned(o.v_pool, 16, "attention v_pool"));
  if (o.summary.rows == 0) return RL_OK;
  const rc::AttentionBounds bounds{num_spans, o.summary.rows, o.summary.max_span_rows, o.bucket};
  const int32_t partition =
      rc::ChooseDecodePartitionTokens(num_spans, p->num_kv_heads, o.bucket, device->sm_count);
  if (rc::DecodeSplits(o.bucket, partition) > 65535) {
    return Refused("attention", "context " + std::to_string(o.bucket) + " too long");
  }
  const uint64_t ws_bytes = rc::AttentionWorkspaceBytes(*p, bounds, partition);
  LayOutSpans(device, p, spans, num_spans, &o);
  const rl_attention_params params = *p;
  OpWork work;
  work.kind = kOpAttention;
  SignAttentionParams(p, &work.shape);
  SignPaged(o, num_spans, &work.shape);
  work.shape.AddPointer(qs);
  work.shape.AddPointer(y);
  work.shape.AddSigned(partition);
  work.needs[static_cast<int>(rc::Workspace::kAttention)] = ws_bytes;
  work.issue = [=](const unsigned char* m) {
    rc::CudaLauncher launch(device->stream);
    if (!rc::Attention(launch, params, qs,
                       reinterpret_cast<const rc::DeviceAttentionSpan*>(m + o.spans_offset),
                       reinterpret_cast<const int32_t*>(m + o.tables_offset), bounds, o.k_pool,
                       o.v_pool, y, Ws(device, rc::Workspace::kAttention), ws_bytes, partition)) {
      return Fail(RL_INTERNAL, "attention: the kernel refused its arguments");
    }
    return Launched(launch, "attention");
  };
  return Submit(device, std::move(work));
}

// ---- Argmax (outside steps: its result is read on the host) ----

rl_status ArgmaxOp(rl_device* device, rl_ref x, int64_t rows, int64_t cols, int32_t* out_host) {
  if (rows < 0 || rows > kMaxRows || cols < 1 || cols >= INT32_MAX || out_host == nullptr) {
    return Refused("argmax", "rows " + std::to_string(rows) + ", cols " + std::to_string(cols));
  }
  int64_t count = 0;
  if (!Mul(rows, cols, &count)) return Refused("argmax", "sizes overflow");
  float* xs = nullptr;
  CUDA_OPERAND(x, count, "argmax x", &xs);
  RL_TRY(Aligned(xs, 4, "argmax x"));
  if (rows == 0) return RL_OK;
  rc::WorkspaceNeeds needs{};
  needs[static_cast<int>(rc::Workspace::kArgmax)] = static_cast<uint64_t>(rows) * 4;
  RL_TRY(EnsureWorkspaces(device, needs));
  auto* result = static_cast<int32_t*>(Ws(device, rc::Workspace::kArgmax));
  rc::CudaLauncher launch(device->stream);
  rc::Argmax(launch, xs, rows, cols, result);
  RL_TRY(Launched(launch, "argmax"));
  RL_TRY(Check(cudaMemcpyAsync(out_host, result, static_cast<size_t>(rows) * 4,
                               cudaMemcpyDeviceToHost, device->stream),
               "argmax result"));
  return Check(cudaStreamSynchronize(device->stream), "argmax");
}

// ---- Layout transforms: quant row group G = 8 in place (relayout.cuh) ----

// Scratch of the in-place transform into w's layout: 0 for row-major (there
// is nothing to do), relayout.cuh's bytes for the quant row group G = 8 (0
// when a group fits the shared memory opt-in limit, else one group per SM),
// UINT64_MAX for anything else.
uint64_t TransformScratchBytes(rl_device* device, const rl_matmul_weight* w) {
  if (!MatmulShapeOk(w) || rc::WeightBytes(w->dtype, w->rows, w->cols) == 0) return UINT64_MAX;
  if (w->layout == RL_LAYOUT_ROW_MAJOR) return 0;
  return rc::RelayoutScratchBytes(QuantTypeOf(w->dtype), w->rows, w->cols, w->group_rows,
                                  device->max_shared_optin, device->sm_count);
}

rl_status TransformInPlaceOp(rl_device* device, const rl_matmul_weight* w, rl_ref scratch) {
  const uint64_t need = TransformScratchBytes(device, w);
  if (need == UINT64_MAX) {
    return Refused("transform_in_place", "no in-place transform into this layout");
  }
  unsigned char* data = nullptr;
  RL_TRY(Operand(w->data, rc::WeightBytes(w->dtype, w->rows, w->cols), "transform data", &data));
  if (w->layout == RL_LAYOUT_ROW_MAJOR) return RL_OK;
  unsigned char* tmp = nullptr;
  if (need > 0) RL_TRY(Operand(scratch, need, "transform scratch", &tmp));
  rc::CudaLauncher launch(device->stream);
  if (!rc::QuantRowGroupTransform(launch, QuantTypeOf(w->dtype), true, data, w->rows, w->cols,
                                  w->group_rows, tmp, need, device->max_shared_optin,
                                  device->sm_count)) {
    return Refused("transform_in_place", "the transform refused its arguments");
  }
  return Launched(launch, "transform_in_place");
}

constexpr rl_device_api kApi = {
    RL_DEVICE_ABI_VERSION,
    "cuda",
    &DeviceCount,
    &OpenDevice,
    &CloseDevice,
    &DeviceInfo,
    &AllocSize,
    &BufferAlloc,
    &BufferFree,
    &BufferHostPtr,
    &OutsideStep<&Upload>::Call,
    &OutsideStep<&Download>::Call,
    &OutsideStep<&Fill>::Call,
    &OnDevice<&HostAlloc>::Call,
    &HostFree,
    &OutsideStep<&Synchronize>::Call,
    &LastError,
    &MatmulSupportedOp,
    &OpEntry<&MatmulOp>::Call,
    &OpEntry<&AddRowBiasOp>::Call,
    &OpEntry<&EmbeddingOp>::Call,
    &OpEntry<&RmsNormOp>::Call,
    &OpEntry<&RopeOp>::Call,
    &OpEntry<&AddOp>::Call,
    &OpEntry<&SiluGateOp>::Call,
    &OpEntry<&KvWriteOp>::Call,
    &OpEntry<&AttentionOp>::Call,
    &OutsideStep<&ArgmaxOp>::Call,
    &OutsideStep<&UploadAsync>::Call,
    &OnDevice<&EventCreate>::Call,
    &EventDestroy,
    &OutsideStep<&EventRecord>::Call,
    &OutsideStep<&EventSynchronize>::Call,
    &TransformScratchBytes,
    &OutsideStep<&TransformInPlaceOp>::Call,
    &OnDevice<&StepBegin>::Call,
    &OnDevice<&StepEnd>::Call,
};

}  // namespace

extern "C" {

RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void) { return RL_DEVICE_ABI_VERSION; }

// One point per usable device; 0 when the driver or every device is missing,
// which is the answer on CPU-only hosts.
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void) { return DeviceCount(); }

RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void) { return &kApi; }

// Debug hook (tools/gpu_check): out[0] bytes in use (live buffers and the
// plugin's workspaces, rounded), out[1] bytes cached (freed, kept for
// reuse), out[2] bytes held from cudaMalloc (in use + cached), out[3] the
// device's used bytes as cudaMemGetInfo reports them (total - free; the
// CUDA context and other processes included, so >= out[2]). out[3] is 0
// when cudaMemGetInfo fails.
RL_PLUGIN_EXPORT void rl_cuda_memory_stats(rl_device* device, uint64_t out[4]) {
  const rc::AllocatorStats s = device->alloc.Stats();
  out[0] = s.in_use;
  out[1] = s.cached;
  out[2] = s.backend_bytes;
  out[3] = 0;
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaSetDevice(device->index) == cudaSuccess &&
      cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    out[3] = total_bytes - free_bytes;
  } else {
    (void)cudaGetLastError();
  }
}

// Debug hook: out[0] steps ended, out[1] graphs captured, out[2] steps
// replayed from a cached graph, out[3] steps run eagerly (graphs off, a
// refused op inside the step, or a failed capture). With graphs on, a decode
// stream shows captures for each new shape and replays after.
RL_PLUGIN_EXPORT void rl_cuda_step_stats(rl_device* device, uint64_t out[4]) {
  out[0] = device->steps;
  out[1] = device->captures;
  out[2] = device->replays;
  out[3] = device->eager_steps;
}

}  // extern "C"
