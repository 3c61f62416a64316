// The SIMT harness: CUDA kernel source executed on the CPU, for the tests.
//
// A kernel written for nvcc (kernels/cuda/kernels/*.cuh, through
// cuda_compat.h) compiles here with a host compiler and runs by
// relayout::simt::Launch:
//   - every block of the grid runs in turn, one block at a time; each CUDA
//     thread of the block is one host thread (blockDim threads per launch,
//     reused from block to block), so a data race between a block's threads
//     is a real race that ThreadSanitizer reports;
//   - __syncthreads is a barrier of the block's threads, __syncwarp and the
//     shuffles and votes are barriers of the 32 (or fewer, in a last partial
//     warp) threads of a warp exchanging their values;
//   - __shared__ variables are function statics (one copy, safe because
//     blocks run one at a time); dynamic shared memory is per launch and
//     refilled with 0xff bytes (float NaN, int -1) before every block, so a
//     read of shared memory no thread of this block wrote shows up;
//   - atomics are std::atomic_ref operations, __dp4a and the bit casts
//     plain functions.
// Divergent __syncthreads deadlocks here as it is undefined on the device;
// CTest's per-test timeout names the test. What this cannot run: tensor-core
// instructions, inline PTX (guard it with __CUDA_ARCH__), cooperative groups.
//
// Launch throws std::invalid_argument for a configuration the device would
// refuse (no threads, more than 1024 threads, more than 227 KiB of dynamic
// shared memory): this header is test code.
#pragma once

#if defined(__CUDACC__)
#error "simt_host.h executes CUDA kernels on the host; nvcc uses the CUDA runtime itself"
#endif

#include <math.h>

#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- The CUDA keywords, as host C++ ----
#define __global__ inline
#define __device__ inline
#define __host__
#define __forceinline__
#define __noinline__
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// The vector types the kernels load and store (same sizes and alignment as
// CUDA's).
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(8) float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }

inline constexpr int warpSize = 32;

namespace relayout::simt {

// The threads of one warp: a barrier and one exchange slot per lane.
class Warp {
 public:
  explicit Warp(unsigned lanes) : lanes_(lanes), barrier_(lanes) {}

  unsigned lanes() const { return lanes_; }
  void Sync() { barrier_.arrive_and_wait(); }

  // Every lane offers `value` and receives the value lane `source` offered
  // (its own when `source` is not a lane of this warp).
  template <class T>
  T Exchange(unsigned lane, T value, unsigned source) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t) * 2,
                  "shuffle of a type wider than 16 bytes");
    std::memcpy(&slots_[lane], &value, sizeof(T));
    barrier_.arrive_and_wait();
    T out;
    std::memcpy(&out, &slots_[source < lanes_ ? source : lane], sizeof(T));
    barrier_.arrive_and_wait();
    return out;
  }

 private:
  struct Slot {
    uint64_t bits[2];
  };
  unsigned lanes_;
  std::barrier<> barrier_;
  Slot slots_[32] = {};
};

// One launch's block: its threads' barrier, warps and dynamic shared memory.
class Block {
 public:
  Block(unsigned threads, size_t shared_bytes)
      : threads_(threads),
        barrier_(threads),
        shared_bytes_(shared_bytes),
        shared_(new (std::align_val_t(64)) unsigned char[shared_bytes == 0 ? 1 : shared_bytes]) {
    for (unsigned first = 0; first < threads; first += 32) {
      warps_.push_back(std::make_unique<Warp>(threads - first < 32 ? threads - first : 32));
    }
  }
  ~Block() { ::operator delete[](shared_, std::align_val_t(64)); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  void Sync() { barrier_.arrive_and_wait(); }
  Warp& warp(unsigned linear_thread) { return *warps_[linear_thread / 32]; }
  unsigned char* shared() { return shared_; }
  void PoisonShared() { std::memset(shared_, 0xff, shared_bytes_); }
  unsigned threads() const { return threads_; }

 private:
  unsigned threads_;
  std::barrier<> barrier_;
  size_t shared_bytes_;
  unsigned char* shared_;
  std::vector<std::unique_ptr<Warp>> warps_;
};

struct ThreadState {
  dim3 thread_idx;
  dim3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  unsigned linear = 0;  // threadIdx as one number, x fastest
  Block* block = nullptr;
};

inline thread_local ThreadState current_thread;
inline ThreadState& Current() { return current_thread; }

template <class T>
T* DynamicShared() {
  return reinterpret_cast<T*>(Current().block->shared());
}

inline unsigned Lane() { return Current().linear % 32; }
inline Warp& CurrentWarp() { return Current().block->warp(Current().linear); }

// Dynamic shared memory the device allows one block (sm_90's opt-in maximum).
inline constexpr size_t kMaxDynamicSharedBytes = 227 * 1024;

// Runs kernel<<<grid, block, shared_bytes>>>(args...) on the host and
// returns when every block is done.
template <class... P, class... A>
void Launch(dim3 grid, dim3 block, size_t shared_bytes, void (*kernel)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel called with the wrong number of arguments");
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024) {
    throw std::invalid_argument("simt: a block of " + std::to_string(threads) + " threads");
  }
  if (shared_bytes > kMaxDynamicSharedBytes) {
    throw std::invalid_argument("simt: " + std::to_string(shared_bytes) +
                                " bytes of dynamic shared memory");
  }
  if (uint64_t{grid.x} * grid.y * grid.z == 0) return;  // the device launches nothing either
  const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  Block shared_block(static_cast<unsigned>(threads), shared_bytes);
  auto run = [&](unsigned linear) {
    ThreadState& t = Current();
    t.block_dim = block;
    t.grid_dim = grid;
    t.linear = linear;
    t.thread_idx = dim3(linear % block.x, linear / block.x % block.y, linear / (block.x * block.y));
    t.block = &shared_block;
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          if (linear == 0) shared_block.PoisonShared();
          shared_block.Sync();
          t.block_idx = dim3(x, y, z);
          std::apply(kernel, params);
          shared_block.Sync();  // the block is done before shared memory is reused
        }
      }
    }
    t = ThreadState{};
  };
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  for (unsigned i = 1; i < threads; ++i) workers.emplace_back(run, i);
  run(0);
  for (std::thread& w : workers) w.join();
}

// The launcher the ops' host-side templates take (kernels/cuda/cuda_launch.h
// has the device's): launch(grid, block, shared_bytes, kernel, args...).
struct HostLauncher {
  template <class... P, class... A>
  void operator()(dim3 grid, dim3 block, size_t shared_bytes, void (*kernel)(P...),
                  A&&... args) const {
    Launch(grid, block, shared_bytes, kernel, std::forward<A>(args)...);
  }
  // The device needs an opt-in past 48 KiB of dynamic shared memory; the
  // host does not.
  template <class... P>
  void AllowSharedBytes(void (*)(P...), size_t) const {}
};

}  // namespace relayout::simt

// ---- threadIdx and friends ----
#define threadIdx (::relayout::simt::Current().thread_idx)
#define blockIdx (::relayout::simt::Current().block_idx)
#define blockDim (::relayout::simt::Current().block_dim)
#define gridDim (::relayout::simt::Current().grid_dim)

inline void __syncthreads() { ::relayout::simt::Current().block->Sync(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::relayout::simt::CurrentWarp().Sync(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- Warp shuffles and votes (the mask is not checked: full warps) ----
template <class T>
T __shfl_sync(unsigned, T var, int src_lane, int width = 32) {
  const unsigned lane = ::relayout::simt::Lane();
  const unsigned base = lane / width * width;
  const unsigned source = base + static_cast<unsigned>(src_lane) % width;
  return ::relayout::simt::CurrentWarp().Exchange(lane, var, source);
}
template <class T>
T __shfl_xor_sync(unsigned, T var, int lane_mask, int width = 32) {
  const unsigned lane = ::relayout::simt::Lane();
  unsigned source = lane ^ static_cast<unsigned>(lane_mask);
  if (source >= (lane / width + 1) * width) source = lane;  // a later group: own value
  return ::relayout::simt::CurrentWarp().Exchange(lane, var, source);
}
template <class T>
T __shfl_down_sync(unsigned, T var, unsigned delta, int width = 32) {
  const unsigned lane = ::relayout::simt::Lane();
  const unsigned source = lane % width + delta < static_cast<unsigned>(width) ? lane + delta : lane;
  return ::relayout::simt::CurrentWarp().Exchange(lane, var, source);
}
template <class T>
T __shfl_up_sync(unsigned, T var, unsigned delta, int width = 32) {
  const unsigned lane = ::relayout::simt::Lane();
  const unsigned source = lane % width >= delta ? lane - delta : lane;
  return ::relayout::simt::CurrentWarp().Exchange(lane, var, source);
}
inline unsigned __ballot_sync(unsigned, int predicate) {
  ::relayout::simt::Warp& warp = ::relayout::simt::CurrentWarp();
  const unsigned lane = ::relayout::simt::Lane();
  unsigned bits = 0;
  for (unsigned i = 0; i < warp.lanes(); ++i) {
    bits |= static_cast<unsigned>(warp.Exchange(lane, predicate != 0 ? 1 : 0, i)) << i;
  }
  return bits;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  const unsigned lanes = ::relayout::simt::CurrentWarp().lanes();
  const unsigned full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  return __ballot_sync(mask, predicate) == full;
}
inline unsigned __activemask() {
  const unsigned lanes = ::relayout::simt::CurrentWarp().lanes();
  return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
}

// ---- Atomics (the value's type is taken from the address) ----
template <class T>
T atomicAdd(T* address, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T>
T atomicSub(T* address, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(*address).fetch_sub(value);
}
template <class T>
T atomicExch(T* address, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(*address).exchange(value);
}
template <class T>
T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
  return compare;
}
template <class T>
T atomicMax(T* address, std::type_identity_t<T> value) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (old < value && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <class T>
T atomicMin(T* address, std::type_identity_t<T> value) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (value < old && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}

// ---- Integer and float intrinsics ----
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) {
    c += static_cast<int>(static_cast<int8_t>(a >> (8 * i))) *
         static_cast<int>(static_cast<int8_t>(b >> (8 * i)));
  }
  return c;
}
inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  for (int i = 0; i < 4; ++i) c += ((a >> (8 * i)) & 0xffu) * ((b >> (8 * i)) & 0xffu);
  return c;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline int __float2int_rn(float f) { return static_cast<int>(nearbyintf(f)); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
template <class T>
T __ldg(const T* address) {
  return *address;
}
