// What a kernel source file includes first, so that the same .cuh compiles
// twice: with nvcc into the CUDA backend, and with the host C++ compiler into
// the tests, where simt_host.h runs each block's threads as host threads.
//
// Under nvcc this is the CUDA runtime's own vocabulary. Under a host compiler
// simt_host.h supplies the subset the kernels use: __global__ / __device__ /
// __shared__, threadIdx and friends, __syncthreads, warp shuffles and votes,
// atomics, __dp4a, vector types. Beyond that subset a kernel writes:
//   RL_HD                    on a function called from kernels and host code
//                            (index maps, dequantization, split sizes);
//   RL_DYNAMIC_SHARED(T, p)  for `extern __shared__` memory (T* p);
//   RL_UNROLL, RL_UNROLL_N(n) for `#pragma unroll` (the host compiler warns
//                            on the pragma, so it sees nothing);
//   relayout::cuda::Min/Max  rather than bare min/max (host has no global ones);
//   HalfToFloat & co below   for f16/bf16 bit patterns (uint16_t), so no
//                            __half type crosses the host compiler.
// Tensor-core instructions (mma, wgmma) have no host form: such paths stay
// behind cuBLASLt (see kernels/cuda/README.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define RL_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)  // the device pass; nvcc's host pass hands pragmas to g++
#define RL_UNROLL _Pragma("unroll")
#define RL_PRAGMA_(x) _Pragma(#x)
#define RL_UNROLL_N(n) RL_PRAGMA_(unroll n)
#else
#define RL_UNROLL
#define RL_UNROLL_N(n)
#endif
// One name for every kernel's dynamic shared memory, 16-byte aligned.
#define RL_DYNAMIC_SHARED(T, name)                              \
  extern __shared__ __align__(16) unsigned char rl_smem_raw_[]; \
  T* name = reinterpret_cast<T*>(rl_smem_raw_)
#else
#include "kernels/cuda/simt/simt_host.h"
#define RL_HD inline
#define RL_UNROLL
#define RL_UNROLL_N(n)
#define RL_DYNAMIC_SHARED(T, name) T* name = ::relayout::simt::DynamicShared<T>()
#endif

namespace relayout::cuda {

template <class T>
RL_HD T Min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
RL_HD T Max(T a, T b) {
  return a < b ? b : a;
}
template <class T>
RL_HD T CeilDiv(T a, T b) {
  return (a + b - 1) / b;
}

RL_HD float BitsToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

RL_HD uint32_t FloatToBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// IEEE half bits -> float, exact for every value (subnormals, inf, NaN).
RL_HD float HalfToFloat(uint16_t h) {
#if defined(__CUDA_ARCH__)
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return BitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24, exact in float.
  const float magnitude = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign != 0 ? -magnitude : magnitude;
#endif
}

// float -> IEEE half bits, round to nearest even (as __float2half_rn).
RL_HD uint16_t FloatToHalf(float f) {
#if defined(__CUDA_ARCH__)
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#else
  const uint32_t x = FloatToBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (NaN keeps a quiet payload bit)
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < half the smallest subnormal
    const uint32_t shift = 126 - (abs >> 23);                   // 14 .. 24
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
#endif
}

RL_HD float Bf16ToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

// float -> bfloat16 bits, round to nearest even; NaN stays NaN.
RL_HD uint16_t FloatToBf16(float f) {
  const uint32_t x = FloatToBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// 8- and 16-byte vector accesses. The device faults on a misaligned one but
// the host harness would not notice, so host builds check every one and
// abort naming it: a wrong alignment split fails the tests.
template <class V>
__device__ __forceinline__ void CheckAligned(const void* p) {
#if defined(__CUDACC__)
  (void)p;
#else
  if (reinterpret_cast<uintptr_t>(p) % alignof(V) != 0) {
    std::fprintf(stderr, "misaligned %zu-byte vector access at %p\n", sizeof(V), p);
    std::abort();
  }
#endif
}
// A load of data no thread writes during the kernel (read-only path).
template <class V>
__device__ __forceinline__ V VecLoadRO(const void* p) {
  CheckAligned<V>(p);
  return __ldg(static_cast<const V*>(p));
}
// A load of data the kernel may write (in-place ops).
template <class V>
__device__ __forceinline__ V VecLoad(const void* p) {
  CheckAligned<V>(p);
  return *static_cast<const V*>(p);
}
template <class V>
__device__ __forceinline__ void VecStore(void* p, V v) {
  CheckAligned<V>(p);
  *static_cast<V*>(p) = v;
}

}  // namespace relayout::cuda
