// The elementwise and per-row ops of a Llama layer for the CUDA backend:
// RmsNorm, Rope, Add, AddRowBias, SiluGate, Embedding and Argmax
// (kernels/device_abi.h states each op; kernels/cpu/ops has the CPU kernels
// these match).
//
// Numerics, op by op, against kernels/cpu:
//   - Add, AddRowBias: one float add per element, bit-identical.
//   - SiluGate: the CPU's formula, v / (1 + ExpNoCall(-v)) * u with its
//     exp polynomial, each operation rounded as the CPU rounds it (no fused
//     multiply-add): bit-identical.
//   - Embedding: the reference row dequantizers' values (exact conversions;
//     d * q (+ m) rounded as the host does), bit-identical.
//   - Argmax: the first index of the row's maximum, NaN never winning (an
//     all-NaN row gives 0), as ArgmaxRows: identical.
//   - RmsNorm: the CPU's formula with the same float operations, products
//     x*x rounded before they are summed in float; only the order of that
//     sum differs (per-thread strided partial sums, then a tree), so |y -
//     y_cpu| <= (dim + 16) 2^-24 |y_cpu|.
//   - Rope: angle = float(pos) * inv_freq[p] as the CPU, cos and sin
//     rounded from double-precision values (RopeCosSin; glibc's cosf/sinf
//     that the CPU calls are within 1 ulp), the rotation's products and sums
//     rounded as the CPU's; so |x' - x'_cpu| <= 2^-21 (|x_a| + |x_b|) for
//     each pair, and bit-identical wherever cos and sin agree (nearly
//     always).
// Device code spells the CPU's float operations with __fmul_rn & co (see
// FMul below) so that nvcc's default contraction into fmaf cannot change a
// rounding, even under --use_fast_math (whose -ftz=true would still flush
// subnormal floats, which the CPU keeps: build without it).
//
// Float operands may sit at any 4-byte aligned address (rl_ref offsets are
// bytes): every op has a float4 path for 16-byte aligned operands and falls
// back to 4-byte accesses otherwise (see each op).
//
// Host entries take the launcher (cuda_launch.h's CudaLauncher on the
// device, simt::HostLauncher in tests) and device pointers; per-call
// metadata (positions, token ids) is read by the kernels from device arrays,
// and no grid depends on its values. No op needs a workspace.
#pragma once

#include <cstdint>
#if !defined(__CUDACC__)
#include <cstdio>
#include <cstdlib>
#endif

#include "kernels/cuda/kernels/quant_blocks.cuh"
#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/device_abi.h"

namespace relayout::cuda {

namespace layer_ops_internal {

// Float operations rounded one at a time, as the host computes them.
RL_HD float FMul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
RL_HD float FAdd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
RL_HD float FSub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
RL_HD float FDiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
RL_HD float FSqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return sqrtf(a);
#endif
}

RL_HD bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Vector loads and stores: kernels/cuda/simt/cuda_compat.h.

// Sum over a warp; every lane gets the total.
__device__ __forceinline__ float WarpSum(float v) {
  RL_UNROLL
  for (int offset = 16; offset >= 1; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the CTA (blockDim.x a multiple of 32); every thread gets the
// total. `partial` is >= 33 floats of shared memory; the call begins and
// ends with the CTA's threads in step, so it may be called again.
__device__ __forceinline__ float BlockSum(float v, float* partial) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int warps = static_cast<int>(blockDim.x / 32);
  v = WarpSum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < warps ? partial[lane] : 0.0f;
    s = WarpSum(s);
    if (lane == 0) partial[32] = s;
  }
  __syncthreads();
  return partial[32];
}

}  // namespace layer_ops_internal

// ============================================================================
// RmsNorm: out[r, :] = w[:] * (inv_r * x[r, :]), inv_r = 1 / sqrt(sum_i
// x[r, i]^2 / dim + eps), exactly the CPU's sequence of float operations.
//
// Rows up to kRmsNormWarpMaxDim go one per warp (4 rows per 128-thread CTA,
// no barrier); longer rows one per CTA, RmsNormThreads(dim) threads reading
// the row with float4 loads, a CTA reduction, then a second pass (the row
// is in L1/L2) writing w * (inv * x). Out may be x: each element is read
// and then written by the same thread, after the reduction's barriers.
// float4 loads when x, w and out are 16-byte aligned and dim % 4 == 0 (then
// every row is); 4-byte loads otherwise.
// ============================================================================

inline constexpr int64_t kRmsNormWarpMaxDim = 512;
inline constexpr int kRmsNormWarpThreads = 128;  // 4 rows per CTA
// Dynamic shared memory of the CTA kernel: 32 warp partials and the total.
inline constexpr size_t kRmsNormSharedBytes = 33 * sizeof(float);

// Threads of the CTA kernel: ~8 elements each (two float4), 64 to 1024.
RL_HD int RmsNormThreads(int64_t dim) {
  const int64_t warps = CeilDiv<int64_t>(CeilDiv<int64_t>(dim, 8), 32);
  return static_cast<int>(Min<int64_t>(Max<int64_t>(warps, 2), 32) * 32);
}

namespace layer_ops_internal {

// The row's sum of squares, strided over `lanes` threads starting at
// `lane`: products rounded, then summed in float.
template <bool kVec>
__device__ __forceinline__ float SumSquares(const float* xr, int64_t dim, int lane, int lanes) {
  float ss = 0.0f;
  if constexpr (kVec) {
    for (int64_t i = lane; i < dim / 4; i += lanes) {
      const float4 v = VecLoad<float4>(xr + 4 * i);
      ss = FAdd(ss, FMul(v.x, v.x));
      ss = FAdd(ss, FMul(v.y, v.y));
      ss = FAdd(ss, FMul(v.z, v.z));
      ss = FAdd(ss, FMul(v.w, v.w));
    }
  } else {
    for (int64_t i = lane; i < dim; i += lanes) ss = FAdd(ss, FMul(xr[i], xr[i]));
  }
  return ss;
}

RL_HD float RmsInverse(float ss, int64_t dim, float eps) {
  return FDiv(1.0f, FSqrt(FAdd(FDiv(ss, static_cast<float>(dim)), eps)));
}

// out = w * (inv * x) over the row, strided as SumSquares.
template <bool kVec>
__device__ __forceinline__ void ScaleRow(const float* xr, const float* w, float inv, int64_t dim,
                                         int lane, int lanes, float* yr) {
  if constexpr (kVec) {
    for (int64_t i = lane; i < dim / 4; i += lanes) {
      const float4 v = VecLoad<float4>(xr + 4 * i);
      const float4 g = VecLoadRO<float4>(w + 4 * i);
      VecStore(yr + 4 * i, make_float4(FMul(g.x, FMul(inv, v.x)), FMul(g.y, FMul(inv, v.y)),
                                       FMul(g.z, FMul(inv, v.z)), FMul(g.w, FMul(inv, v.w))));
    }
  } else {
    for (int64_t i = lane; i < dim; i += lanes) yr[i] = FMul(__ldg(w + i), FMul(inv, xr[i]));
  }
}

}  // namespace layer_ops_internal

// One row per warp; grid CeilDiv(rows, 4), block kRmsNormWarpThreads.
template <bool kVec>
__global__ void __launch_bounds__(kRmsNormWarpThreads)
    RmsNormWarpKernel(const float* x, const float* __restrict__ w, int64_t rows, int64_t dim,
                      float eps, float* out) {
  using namespace layer_ops_internal;
  const int64_t row = int64_t{blockIdx.x} * (kRmsNormWarpThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp
  const int lane = static_cast<int>(threadIdx.x % 32);
  const float* xr = x + row * dim;
  const float ss = WarpSum(SumSquares<kVec>(xr, dim, lane, 32));
  ScaleRow<kVec>(xr, w, RmsInverse(ss, dim, eps), dim, lane, 32, out + row * dim);
}

// One row per CTA; grid rows, block RmsNormThreads(dim), dynamic shared
// memory kRmsNormSharedBytes.
template <bool kVec>
__global__ void __launch_bounds__(1024)
    RmsNormBlockKernel(const float* x, const float* __restrict__ w, int64_t rows, int64_t dim,
                       float eps, float* out) {
  using namespace layer_ops_internal;
  RL_DYNAMIC_SHARED(float, partial);
  const int64_t row = blockIdx.x;
  if (row >= rows) return;  // the whole CTA (grid = rows)
  const int tid = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  const float* xr = x + row * dim;
  const float ss = BlockSum(SumSquares<kVec>(xr, dim, tid, threads), partial);
  ScaleRow<kVec>(xr, w, RmsInverse(ss, dim, eps), dim, tid, threads, out + row * dim);
}

// out[rows, dim] = RmsNorm(x[rows, dim]) * weight[dim]; out may be x
// (otherwise they do not overlap).
template <class Launcher>
void RmsNorm(const Launcher& launch, const float* x, const float* weight, int64_t rows, int64_t dim,
             float eps, float* out) {
  using namespace layer_ops_internal;
  if (rows <= 0 || dim <= 0) return;
  const bool vec = dim % 4 == 0 && Aligned16(x) && Aligned16(weight) && Aligned16(out);
  if (dim <= kRmsNormWarpMaxDim) {
    const dim3 grid(static_cast<unsigned>(CeilDiv<int64_t>(rows, kRmsNormWarpThreads / 32)));
    if (vec) {
      launch(grid, dim3(kRmsNormWarpThreads), 0, RmsNormWarpKernel<true>, x, weight, rows, dim, eps,
             out);
    } else {
      launch(grid, dim3(kRmsNormWarpThreads), 0, RmsNormWarpKernel<false>, x, weight, rows, dim,
             eps, out);
    }
    return;
  }
  const dim3 grid(static_cast<unsigned>(rows));
  const dim3 block(static_cast<unsigned>(RmsNormThreads(dim)));
  if (vec) {
    launch(grid, block, kRmsNormSharedBytes, RmsNormBlockKernel<true>, x, weight, rows, dim, eps,
           out);
  } else {
    launch(grid, block, kRmsNormSharedBytes, RmsNormBlockKernel<false>, x, weight, rows, dim, eps,
           out);
  }
}

// ============================================================================
// Rope, in place on x[rows, heads * head_dim]: pair p of each head's first
// rope_dim dims, (a, b) = (2p, 2p + 1) interleaved or (p, p + rope_dim / 2)
// halves, rotates by angle = float(positions[r]) * inv_freq[p]:
//   x'a = xa cos - xb sin,  x'b = xa sin + xb cos.
// One CTA per row: its threads first compute the row's rope_dim / 2 (cos,
// sin) into shared memory (RopeCosSin once per pair, not per head), then
// sweep the heads x pairs grid, consecutive threads on consecutive pairs:
// interleaved pairs are one float2 (8-byte aligned x and even head_dim) or
// two floats, halves pairs two coalesced floats.
// ============================================================================

// Threads of a Rope CTA: enough for the heads x pairs of a row, 32 to 256.
RL_HD int RopeThreads(int32_t heads, int32_t rope_dim) {
  const int64_t pairs = int64_t{heads} * (rope_dim / 2);
  return static_cast<int>(Min<int64_t>(Max<int64_t>(CeilDiv<int64_t>(pairs, 32), 1), 8) * 32);
}

RL_HD size_t RopeSharedBytes(int32_t rope_dim) {
  return static_cast<size_t>(rope_dim / 2) * 2 * sizeof(float);
}

// cos and sin of a float angle, rounded to float from double-precision
// values: in practice correctly rounded (glibc's cosf/sinf, which the CPU
// calls, are within 1 ulp; CUDA's sincosf within 2). Not sincosf: its
// Payne-Hanek reduction for |angle| > 105615 (positions past ~100k at
// inv_freq[0] = 1) keeps a 28-byte array in local memory, a stack frame in
// this kernel. Instead, all in registers:
//   - k = rint(angle * 2 / pi), r = angle - k pi/2 by two fused
//     multiply-adds with pi/2 = C1 + C2 (C1 pi/2's double, C2 the next 53
//     bits): each fma rounds once, so r's absolute error is ~2^-53 |r| +
//     |k| 2^-107 <= 2^-53 |r| + 2^-67; no float below 2^40 lies closer than
//     2^-28.9 to a multiple of pi/2 (checked exhaustively: 2.19993846e10),
//     so r keeps at least 37 correct bits;
//   - sin r and cos r on |r| <= pi/4 by their Taylor series to r^15 and
//     r^16 (truncation < 7e-17), Horner in double;
//   - the quadrant k mod 4 picks and signs them.
// |angle| >= 2^40 (unreachable: positions < 2^31, inv_freq <= 1 from
// RopeInverseFrequencies unless freq_factors < 2^-9) and NaN give NaN.
RL_HD void RopeCosSin(float angle, float* cos_out, float* sin_out) {
  const double a = static_cast<double>(angle);
  if (!(a > -0x1p40 && a < 0x1p40)) {
    *cos_out = *sin_out = BitsToFloat(0x7fc00000u);
    return;
  }
  constexpr double kTwoOverPi = 0.63661977236758134308;
  constexpr double kPiOver2Hi = 1.5707963267948966;     // 0x1.921fb54442d18p0
  constexpr double kPiOver2Lo = 6.123233995736766e-17;  // 0x1.1a62633145c07p-54
  const double k = rint(a * kTwoOverPi);
  double r = fma(-k, kPiOver2Hi, a);
  r = fma(-k, kPiOver2Lo, r);
  const double r2 = r * r;
  // sin r = r (1 - r^2/3! + r^4/5! - ... - r^14/15!)
  double ps = -1.0 / 1307674368000.0;  // -1/15!
  ps = fma(ps, r2, 1.0 / 6227020800.0);
  ps = fma(ps, r2, -1.0 / 39916800.0);
  ps = fma(ps, r2, 1.0 / 362880.0);
  ps = fma(ps, r2, -1.0 / 5040.0);
  ps = fma(ps, r2, 1.0 / 120.0);
  ps = fma(ps, r2, -1.0 / 6.0);
  const double sin_r = fma(r * r2, ps, r);
  // cos r = 1 - r^2/2! + r^4/4! - ... + r^16/16!
  double pc = 1.0 / 20922789888000.0;  // 1/16!
  pc = fma(pc, r2, -1.0 / 87178291200.0);
  pc = fma(pc, r2, 1.0 / 479001600.0);
  pc = fma(pc, r2, -1.0 / 3628800.0);
  pc = fma(pc, r2, 1.0 / 40320.0);
  pc = fma(pc, r2, -1.0 / 720.0);
  pc = fma(pc, r2, 1.0 / 24.0);
  pc = fma(pc, r2, -0.5);
  const double cos_r = fma(r2, pc, 1.0);
  // angle = r + q pi/2: (cos, sin) = (c, s), (-s, c), (-c, -s), (s, -c).
  const int q = static_cast<int>(static_cast<int64_t>(k) & 3);
  const double c = (q & 1) != 0 ? sin_r : cos_r;
  const double s = (q & 1) != 0 ? cos_r : sin_r;
  *cos_out = static_cast<float>((q == 1 || q == 2) ? -c : c);
  *sin_out = static_cast<float>(q >= 2 ? -s : s);
}

namespace layer_ops_internal {

// (x'a, x'b) as the CPU computes them.
RL_HD void Rotate(float xa, float xb, float c, float s, float* ya, float* yb) {
  *ya = FSub(FMul(xa, c), FMul(xb, s));
  *yb = FAdd(FMul(xa, s), FMul(xb, c));
}

}  // namespace layer_ops_internal

// Grid rows, block RopeThreads(heads, rope_dim), dynamic shared memory
// RopeSharedBytes(rope_dim). kPairing: RL_ROPE_INTERLEAVED or
// RL_ROPE_HALVES; kFloat2: interleaved pairs loaded as float2.
template <int kPairing, bool kFloat2>
__global__ void __launch_bounds__(256)
    RopeKernel(float* x, int64_t rows, int32_t heads, int32_t head_dim, int32_t rope_dim,
               const int32_t* __restrict__ positions, const float* __restrict__ inv_freq) {
  using namespace layer_ops_internal;
  RL_DYNAMIC_SHARED(float, table);  // [pairs][2]: cos, sin
  const int64_t row = blockIdx.x;
  if (row >= rows) return;  // the whole CTA (grid = rows)
  const int tid = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  const int pairs = rope_dim / 2;
  const float pos = static_cast<float>(positions[row]);
  for (int p = tid; p < pairs; p += threads) {
    RopeCosSin(FMul(pos, __ldg(inv_freq + p)), &table[2 * p], &table[2 * p + 1]);
  }
  __syncthreads();
  float* xr = x + row * heads * int64_t{head_dim};
  const int total = heads * pairs;
  for (int i = tid; i < total; i += threads) {
    const int h = i / pairs;
    const int p = i - h * pairs;
    const float c = table[2 * p];
    const float s = table[2 * p + 1];
    float* head = xr + int64_t{h} * head_dim;
    if constexpr (kPairing == RL_ROPE_INTERLEAVED && kFloat2) {
      const float2 v = VecLoad<float2>(head + 2 * p);
      float2 r;
      Rotate(v.x, v.y, c, s, &r.x, &r.y);
      VecStore(head + 2 * p, r);
    } else {
      float* a = head + (kPairing == RL_ROPE_INTERLEAVED ? 2 * p : p);
      float* b = a + (kPairing == RL_ROPE_INTERLEAVED ? 1 : pairs);
      Rotate(*a, *b, c, s, a, b);
    }
  }
}

// Rotates x[rows, heads * head_dim] in place; positions: rows int32 on the
// device; inv_freq: rope_dim / 2 floats on the device (RopeInverseFrequencies'
// values). REQUIRES rope_dim even, 2 <= rope_dim <= head_dim, pairing
// RL_ROPE_INTERLEAVED or RL_ROPE_HALVES (anything else launches nothing).
template <class Launcher>
void Rope(const Launcher& launch, float* x, int64_t rows, int32_t heads, int32_t head_dim,
          int32_t rope_dim, const int32_t* positions, const float* inv_freq, int32_t pairing) {
  if (rows <= 0 || heads <= 0 || rope_dim < 2) return;
  const dim3 grid(static_cast<unsigned>(rows));
  const dim3 block(static_cast<unsigned>(RopeThreads(heads, rope_dim)));
  const size_t shared = RopeSharedBytes(rope_dim);
  if (pairing == RL_ROPE_INTERLEAVED) {
    if ((reinterpret_cast<uintptr_t>(x) & 7) == 0 && head_dim % 2 == 0) {
      launch(grid, block, shared, RopeKernel<RL_ROPE_INTERLEAVED, true>, x, rows, heads, head_dim,
             rope_dim, positions, inv_freq);
    } else {
      launch(grid, block, shared, RopeKernel<RL_ROPE_INTERLEAVED, false>, x, rows, heads, head_dim,
             rope_dim, positions, inv_freq);
    }
  } else if (pairing == RL_ROPE_HALVES) {
    launch(grid, block, shared, RopeKernel<RL_ROPE_HALVES, false>, x, rows, heads, head_dim,
           rope_dim, positions, inv_freq);
  }
}

// ============================================================================
// Elementwise ops over n floats: Add (dst += src) and SiluGate (out =
// silu(gate) * up). The pointers are split into a scalar head up to the
// first 16-byte boundary, float4 groups, and a scalar tail; that needs all
// pointers at the same address mod 16 (the common case: all aligned).
// Otherwise everything is the scalar "head". Grid-stride loops over at most
// kElementwiseMaxBlocks CTAs.
// ============================================================================

inline constexpr int kElementwiseThreads = 256;
inline constexpr int64_t kElementwiseMaxBlocks = 4096;

// How n floats split into head + 4 * groups + tail.
struct Float4Split {
  int64_t head;    // scalar elements before the float4 groups
  int64_t groups;  // float4 groups
};

// Floats from p (4-byte aligned) to the next 16-byte boundary, at most n.
RL_HD int64_t Float4Head(const float* p, int64_t n) {
  return Min<int64_t>(static_cast<int64_t>((16 - (reinterpret_cast<uintptr_t>(p) & 15)) % 16 / 4),
                      n);
}

// The split for float operands at a, b, c (pass one of them twice for two
// operands).
RL_HD Float4Split SplitForFloat4(const float* a, const float* b, const float* c, int64_t n) {
  const uintptr_t ra = reinterpret_cast<uintptr_t>(a) & 15;
  if (ra != (reinterpret_cast<uintptr_t>(b) & 15) || ra != (reinterpret_cast<uintptr_t>(c) & 15) ||
      (ra & 3) != 0) {
    return {n, 0};
  }
  const int64_t head = Float4Head(a, n);
  return {head, (n - head) / 4};
}

RL_HD unsigned ElementwiseBlocks(int64_t items) {
  return static_cast<unsigned>(Max<int64_t>(
      Min<int64_t>(CeilDiv<int64_t>(items, kElementwiseThreads), kElementwiseMaxBlocks), 1));
}

namespace layer_ops_internal {

// The CPU SiluGate's exp (kernels/cpu/ops/silu_gate.cc, ExpNoCall): x
// clamped to [-87, 88], k = round(x / ln 2) by the 1.5 * 2^23 trick, r = x -
// k ln 2 in two parts, the degree-6 Taylor polynomial of exp(r), 2^k written
// into the exponent; each operation rounded as on the host, so equal bit
// for bit.
RL_HD float SiluExp(float x) {
  x = fminf(fmaxf(x, -87.0f), 88.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const float t = FAdd(FMul(x, 1.44269504f), kRound);
  const float k = FSub(t, kRound);
  float r = FSub(x, FMul(k, 0.693145752f));
  r = FSub(r, FMul(k, 1.42860677e-6f));
  float p = 1.0f / 720;
  p = FAdd(FMul(p, r), 1.0f / 120);
  p = FAdd(FMul(p, r), 1.0f / 24);
  p = FAdd(FMul(p, r), 1.0f / 6);
  p = FAdd(FMul(p, r), 0.5f);
  p = FAdd(FMul(p, r), 1.0f);
  p = FAdd(FMul(p, r), 1.0f);
  const uint32_t bits = (FloatToBits(t) - FloatToBits(kRound) + 127u) << 23;
  return FMul(p, BitsToFloat(bits));
}

// g / d rounded to nearest even, as the host's float division, for d in
// [1, 2^128) (d = 1 + exp(-g)). CUDA's IEEE division (__fdiv_rn) calls a
// slow-path subroutine, whose calling convention spills the float4 loop's
// live registers; this stays inline: a float estimate y0 of 1/d (within 2
// ulps, 2^-22; the divisor scaled by 2^-64 as __fdividef returns 0 for
// divisors above 2^126), one Newton step in double (y: 2^-44), q = g y, and
// the residual correction q + (g - d q) y, whose error is ~q 2^-88 plus its
// rounding, 2^-53. The final rounding to float is then the correctly rounded
// quotient: a quotient of two floats is never a midpoint between floats and
// lies at least 2^-49 (relative) from every one.
RL_HD float SiluDivide(float g, float d) {
#if defined(__CUDA_ARCH__)
  const float estimate = __fdividef(1.0f, FMul(d, 0x1p-64f));
#else
  // The host's division is exact to half an ulp; put the estimate 3 ulps
  // off, worse than the device's, so that host tests cover the device.
  const float estimate = BitsToFloat(FloatToBits(1.0f / (d * 0x1p-64f)) + 3);
#endif
  const double dd = static_cast<double>(d);
  double y = static_cast<double>(estimate) * 0x1p-64;
  y = fma(y, fma(-dd, y, 1.0), y);
  const double gd = static_cast<double>(g);
  const double q = gd * y;
  // g zero (keeps its sign, which q + 0 would lose), infinite or NaN.
  if (q == 0.0 || !(q - q == 0.0)) return static_cast<float>(q);
  return static_cast<float>(fma(fma(-dd, q, gd), y, q));
}

// silu(g) * u = g / (1 + exp(-g)) * u, as the CPU.
RL_HD float SiluTimes(float g, float u) { return FMul(SiluDivide(g, FAdd(1.0f, SiluExp(-g))), u); }

}  // namespace layer_ops_internal

// dst[i] += src[i]; grid ElementwiseBlocks(Max(groups, scalars)).
__global__ void __launch_bounds__(kElementwiseThreads)
    AddKernel(const float* src, int64_t n, float* dst, int64_t head, int64_t groups) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  for (int64_t g = first; g < groups; g += stride) {
    const float4 a = VecLoad<float4>(src + head + 4 * g);
    float4 b = VecLoad<float4>(dst + head + 4 * g);
    b.x += a.x;
    b.y += a.y;
    b.z += a.z;
    b.w += a.w;
    VecStore(dst + head + 4 * g, b);
  }
  // The head, then the tail after the groups.
  const int64_t scalars = n - 4 * groups;
  for (int64_t s = first; s < scalars; s += stride) {
    const int64_t i = s < head ? s : s + 4 * groups;
    dst[i] += src[i];
  }
}

// out[i] = silu(gate[i]) * up[i]; out may be gate or up (each element is
// read and written by one thread).
__global__ void __launch_bounds__(kElementwiseThreads)
    SiluGateKernel(const float* gate, const float* up, int64_t n, float* out, int64_t head,
                   int64_t groups) {
  using layer_ops_internal::SiluTimes;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  for (int64_t g = first; g < groups; g += stride) {
    const int64_t i = head + 4 * g;
    const float4 a = VecLoad<float4>(gate + i);
    const float4 b = VecLoad<float4>(up + i);
    VecStore(out + i, make_float4(SiluTimes(a.x, b.x), SiluTimes(a.y, b.y), SiluTimes(a.z, b.z),
                                  SiluTimes(a.w, b.w)));
  }
  const int64_t scalars = n - 4 * groups;
  for (int64_t s = first; s < scalars; s += stride) {
    const int64_t i = s < head ? s : s + 4 * groups;
    out[i] = SiluTimes(gate[i], up[i]);
  }
}

// dst[i] += src[i] for i < n; src and dst do not partially overlap.
template <class Launcher>
void Add(const Launcher& launch, const float* src, int64_t n, float* dst) {
  if (n <= 0) return;
  const Float4Split split = SplitForFloat4(src, dst, dst, n);
  const dim3 grid(ElementwiseBlocks(Max(split.groups, n - 4 * split.groups)));
  launch(grid, dim3(kElementwiseThreads), 0, AddKernel, src, n, dst, split.head, split.groups);
}

// out[i] = silu(gate[i]) * up[i] for i < n; out may be gate or up.
template <class Launcher>
void SiluGate(const Launcher& launch, const float* gate, const float* up, int64_t n, float* out) {
  if (n <= 0) return;
  const Float4Split split = SplitForFloat4(gate, up, out, n);
  const dim3 grid(ElementwiseBlocks(Max(split.groups, n - 4 * split.groups)));
  launch(grid, dim3(kElementwiseThreads), 0, SiluGateKernel, gate, up, n, out, split.head,
         split.groups);
}

// ============================================================================
// AddRowBias: y[r, c] += bias[c]. Threads over columns (float4 columns when
// y and bias are 16-byte aligned and cols % 4 == 0), grid rows over rows:
// each thread loads its bias once and adds it down a strided set of rows.
// ============================================================================

inline constexpr int kAddRowBiasThreads = 256;
inline constexpr int64_t kAddRowBiasMaxGridRows = 65535;

// Grid (CeilDiv(cols or cols / 4, 256), Min(rows, 65535)), block 256.
template <bool kVec>
__global__ void __launch_bounds__(kAddRowBiasThreads)
    AddRowBiasKernel(const float* __restrict__ bias, int64_t rows, int64_t cols, float* y) {
  const int64_t units = kVec ? cols / 4 : cols;
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= units) return;
  if constexpr (kVec) {
    const float4 b = VecLoadRO<float4>(bias + 4 * c);
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
      float* p = y + r * cols + 4 * c;
      float4 v = VecLoad<float4>(p);
      v.x += b.x;
      v.y += b.y;
      v.z += b.z;
      v.w += b.w;
      VecStore(p, v);
    }
  } else {
    const float b = __ldg(bias + c);
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) y[r * cols + c] += b;
  }
}

// y[rows, cols] += bias[cols] row by row.
template <class Launcher>
void AddRowBias(const Launcher& launch, const float* bias, int64_t rows, int64_t cols, float* y) {
  using layer_ops_internal::Aligned16;
  if (rows <= 0 || cols <= 0) return;
  const bool vec = cols % 4 == 0 && Aligned16(bias) && Aligned16(y);
  const int64_t units = vec ? cols / 4 : cols;
  const dim3 grid(static_cast<unsigned>(CeilDiv<int64_t>(units, kAddRowBiasThreads)),
                  static_cast<unsigned>(Min(rows, kAddRowBiasMaxGridRows)));
  if (vec) {
    launch(grid, dim3(kAddRowBiasThreads), 0, AddRowBiasKernel<true>, bias, rows, cols, y);
  } else {
    launch(grid, dim3(kAddRowBiasThreads), 0, AddRowBiasKernel<false>, bias, rows, cols, y);
  }
}

// ============================================================================
// Embedding: out[i, :] = dequant(table row tokens[i]), one CTA per token.
// F32 rows are copied (float4 when table and out are 16-byte aligned and
// dim % 4 == 0), F16/BF16 rows converted (8 halves per 16-byte load when
// table and out are aligned and dim % 8 == 0), GGUF rows (native layout,
// dim / 32 or dim / 256 blocks) dequantized one element per thread, the
// stores coalesced, by quant_blocks.cuh's NativeElement (the reference
// dequantizers' values, byte loads at any block alignment).
//
// A token outside [0, vocab) reads nothing and fills its output row with
// NaN: the plugin validates tokens on the host before the call (RL_INVALID_
// ARGUMENT), so this only keeps a bad id from reading out of bounds, and
// makes it visible downstream rather than a plausible wrong row.
// ============================================================================

inline constexpr int kEmbeddingThreads = 256;

// Whether Embedding reads this dtype at this dim: F32/F16/BF16 any dim >= 1,
// the GGUF block types a multiple of their block (32, or 256 for the
// K-quants).
RL_HD bool EmbeddingSupported(int32_t dtype, int64_t dim) {
  if (dim <= 0) return false;
  switch (dtype) {
    case RL_DTYPE_F32:
    case RL_DTYPE_F16:
    case RL_DTYPE_BF16:
      return true;
    default: {
      QuantType t = QuantType::kQ8_0;
      return QuantTypeOfDtype(dtype, &t) && dim % BlockElements(t) == 0;
    }
  }
}

namespace layer_ops_internal {

// The kernels' type of a quantized dtype, at compile time.
RL_HD constexpr QuantType QuantTypeFor(int32_t dtype) {
  QuantType t = QuantType::kQ8_0;
  QuantTypeOfDtype(dtype, &t);
  return t;
}

}  // namespace layer_ops_internal

// Grid n, block kEmbeddingThreads. kVec: the 16-byte path of F32/F16/BF16.
template <int kDtype, bool kVec>
__global__ void __launch_bounds__(kEmbeddingThreads)
    EmbeddingKernel(const void* __restrict__ table, int64_t vocab, int64_t dim,
                    const int32_t* __restrict__ tokens, float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const int tid = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  const int32_t token = tokens[i];
  float* o = out + i * dim;
  if (token < 0 || token >= vocab) {
    for (int64_t j = tid; j < dim; j += threads) o[j] = BitsToFloat(0x7fc00000u);
    return;
  }
  if constexpr (kDtype == RL_DTYPE_F32) {
    const float* row = static_cast<const float*>(table) + token * dim;
    if constexpr (kVec) {
      for (int64_t j = tid; j < dim / 4; j += threads) {
        VecStore(o + 4 * j, VecLoadRO<float4>(row + 4 * j));
      }
    } else {
      for (int64_t j = tid; j < dim; j += threads) o[j] = __ldg(row + j);
    }
  } else if constexpr (kDtype == RL_DTYPE_F16 || kDtype == RL_DTYPE_BF16) {
    const uint16_t* row = static_cast<const uint16_t*>(table) + token * dim;
    auto convert = [](uint32_t bits) {
      if constexpr (kDtype == RL_DTYPE_BF16) {
        return Bf16ToFloat(static_cast<uint16_t>(bits));
      } else {
        return HalfToFloat(static_cast<uint16_t>(bits));
      }
    };
    if constexpr (kVec) {
      for (int64_t j = tid; j < dim / 8; j += threads) {
        const uint4 v = VecLoadRO<uint4>(row + 8 * j);
        VecStore(o + 8 * j, make_float4(convert(v.x & 0xffffu), convert(v.x >> 16),
                                        convert(v.y & 0xffffu), convert(v.y >> 16)));
        VecStore(o + 8 * j + 4, make_float4(convert(v.z & 0xffffu), convert(v.z >> 16),
                                            convert(v.w & 0xffffu), convert(v.w >> 16)));
      }
    } else {
      for (int64_t j = tid; j < dim; j += threads) o[j] = convert(__ldg(row + j));
    }
  } else {
    constexpr QuantType kType = layer_ops_internal::QuantTypeFor(kDtype);
    const uint8_t* data = static_cast<const uint8_t*>(table);
    const int64_t blocks_per_row = dim / BlockElements(kType);
    for (int64_t j = tid; j < dim; j += threads) {
      o[j] = NativeElement(kType, data, blocks_per_row, token, j);
    }
  }
}

// out[n, dim] = rows tokens[0..n) (int32 on the device) of table[vocab, dim]
// of dtype (RL_DTYPE_F32/F16/BF16 or a GGUF block type Q8_0 .. Q6_K, rows in
// the common layout)
// as floats. Returns false, launching nothing, when !EmbeddingSupported(dtype,
// dim). Tokens outside [0, vocab) give NaN rows (see above).
template <class Launcher>
bool Embedding(const Launcher& launch, const void* table, int32_t dtype, int64_t vocab, int64_t dim,
               const int32_t* tokens, int64_t n, float* out) {
  using layer_ops_internal::Aligned16;
  if (!EmbeddingSupported(dtype, dim)) return false;
  if (n <= 0) return true;
  const dim3 grid(static_cast<unsigned>(n));
  const dim3 block(kEmbeddingThreads);
  const bool aligned = Aligned16(table) && Aligned16(out);
  switch (dtype) {
    case RL_DTYPE_F32:
      if (aligned && dim % 4 == 0) {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_F32, true>, table, vocab, dim, tokens, out);
      } else {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_F32, false>, table, vocab, dim, tokens,
               out);
      }
      break;
    case RL_DTYPE_F16:
      if (aligned && dim % 8 == 0) {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_F16, true>, table, vocab, dim, tokens, out);
      } else {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_F16, false>, table, vocab, dim, tokens,
               out);
      }
      break;
    case RL_DTYPE_BF16:
      if (aligned && dim % 8 == 0) {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_BF16, true>, table, vocab, dim, tokens,
               out);
      } else {
        launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_BF16, false>, table, vocab, dim, tokens,
               out);
      }
      break;
    case RL_DTYPE_Q8_0:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q8_0, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q4_0:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q4_0, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q4_1:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q4_1, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q5_0:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q5_0, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q5_1:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q5_1, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_IQ4_NL:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_IQ4_NL, false>, table, vocab, dim, tokens,
             out);
      break;
    case RL_DTYPE_Q2_K:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q2_K, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q3_K:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q3_K, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q4_K:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q4_K, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q5_K:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q5_K, false>, table, vocab, dim, tokens, out);
      break;
    case RL_DTYPE_Q6_K:
      launch(grid, block, 0, EmbeddingKernel<RL_DTYPE_Q6_K, false>, table, vocab, dim, tokens, out);
      break;
  }
  return true;
}

// ============================================================================
// Argmax: out[r] = the first index of row r's maximum, NaN never winning
// (an all-NaN row gives 0), as kernels/cpu ArgmaxRows. One CTA per row:
// each thread keeps the best (value, index) of a strided part of the row,
// then a warp and a CTA reduction combine them. ArgmaxBetter is a strict
// total order on (value, index) pairs (numbers over NaN, larger over
// smaller, then lower index), so the result does not depend on how the row
// is split: the row is read as a scalar head up to its first 16-byte
// boundary, float4 groups and a scalar tail, whatever its alignment.
// ============================================================================

// Threads: ~16 elements each, 32 to 1024.
RL_HD int ArgmaxThreads(int64_t cols) {
  const int64_t warps = CeilDiv<int64_t>(CeilDiv<int64_t>(cols, 16), 32);
  return static_cast<int>(Min<int64_t>(Max<int64_t>(warps, 1), 32) * 32);
}

// Dynamic shared memory: a (value, index) per warp.
inline constexpr size_t kArgmaxSharedBytes = 32 * (sizeof(float) + sizeof(int32_t));

// Whether (v, i) beats (best_v, best_i).
RL_HD bool ArgmaxBetter(float v, int32_t i, float best_v, int32_t best_i) {
  const bool v_nan = v != v;
  const bool best_nan = best_v != best_v;
  if (v_nan != best_nan) return best_nan;
  if (!v_nan && v != best_v) return v > best_v;
  return i < best_i;
}

namespace layer_ops_internal {

__device__ __forceinline__ void ArgmaxTake(float v, int32_t i, float* best_v, int32_t* best_i) {
  if (ArgmaxBetter(v, i, *best_v, *best_i)) {
    *best_v = v;
    *best_i = i;
  }
}

__device__ __forceinline__ void WarpArgmax(float* v, int32_t* i) {
  RL_UNROLL
  for (int offset = 16; offset >= 1; offset /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, *v, offset);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, *i, offset);
    ArgmaxTake(ov, oi, v, i);
  }
}

}  // namespace layer_ops_internal

// Grid rows, block ArgmaxThreads(cols), dynamic shared memory
// kArgmaxSharedBytes.
__global__ void __launch_bounds__(1024) ArgmaxKernel(const float* __restrict__ x, int64_t rows,
                                                     int64_t cols, int32_t* __restrict__ out) {
  using layer_ops_internal::ArgmaxTake;
  using layer_ops_internal::WarpArgmax;
  RL_DYNAMIC_SHARED(unsigned char, smem);
  float* warp_v = reinterpret_cast<float*>(smem);
  int32_t* warp_i = reinterpret_cast<int32_t*>(smem + 32 * sizeof(float));
  const int64_t r = blockIdx.x;
  if (r >= rows) return;  // the whole CTA (grid = rows)
  const int tid = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  const float* row = x + r * cols;
  // A thread with nothing to read holds (NaN, INT32_MAX), which loses to
  // every element.
  float best_v = BitsToFloat(0x7fc00000u);
  int32_t best_i = INT32_MAX;
  const int64_t head = Float4Head(row, cols);
  const int64_t groups = (cols - head) / 4;
  if (tid < head) ArgmaxTake(row[tid], tid, &best_v, &best_i);
  for (int64_t g = tid; g < groups; g += threads) {
    const float4 v = VecLoadRO<float4>(row + head + 4 * g);
    const int32_t j = static_cast<int32_t>(head + 4 * g);
    ArgmaxTake(v.x, j, &best_v, &best_i);
    ArgmaxTake(v.y, j + 1, &best_v, &best_i);
    ArgmaxTake(v.z, j + 2, &best_v, &best_i);
    ArgmaxTake(v.w, j + 3, &best_v, &best_i);
  }
  for (int64_t j = head + 4 * groups + tid; j < cols; j += threads) {
    ArgmaxTake(row[j], static_cast<int32_t>(j), &best_v, &best_i);
  }
  WarpArgmax(&best_v, &best_i);
  const int lane = tid % 32;
  const int warp = tid / 32;
  if (lane == 0) {
    warp_v[warp] = best_v;
    warp_i[warp] = best_i;
  }
  __syncthreads();
  if (warp == 0) {
    float v = BitsToFloat(0x7fc00000u);
    int32_t i = INT32_MAX;
    if (lane < threads / 32) {
      v = warp_v[lane];
      i = warp_i[lane];
    }
    WarpArgmax(&v, &i);
    if (lane == 0) out[r] = i;
  }
}

// out[r] (int32 on the device) = ArgmaxRows of x[rows, cols]. REQUIRES cols
// in [1, INT32_MAX).
template <class Launcher>
void Argmax(const Launcher& launch, const float* x, int64_t rows, int64_t cols, int32_t* out) {
  if (rows <= 0 || cols <= 0) return;
  launch(dim3(static_cast<unsigned>(rows)), dim3(static_cast<unsigned>(ArgmaxThreads(cols))),
         kArgmaxSharedBytes, ArgmaxKernel, x, rows, cols, out);
}

}  // namespace relayout::cuda
