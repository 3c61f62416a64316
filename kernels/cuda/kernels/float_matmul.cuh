// Float-weight matmul for the CUDA backend: Y[T, N] = X[T, K] * W[N, K]^T
// for W row-major in F32, F16 or BF16 (halves as uint16_t bit patterns), and
// the two activation conversions the plugin's cuBLASLt BF16 paths need.
//
//   W  [N = rows, K = cols], row stride K elements (RL_LAYOUT_ROW_MAJOR)
//   X  [T = tokens, K] floats, row stride K
//   Y  [T, N] floats, row stride N
//
// Numerics (kernels/cpu/matmul/matmul.h):
//   - F32 weights: every product w * x is exact in double and is summed in
//     double, so y is the CPU's y to float rounding: |y - y_cpu| <=
//     2^-23 |y_cpu| + 2 K 2^-53 sum_k |w_k x_k|.
//   - F16/BF16 weights: float products and sums (fmaf), each lane summing a
//     strided part of K and a warp tree adding the parts: |y - y_ref| <=
//     max(1e-5 sqrt(K), 2 K 2^-24) sum_k |w_k x_k| against MatmulReference.
//   - x must be finite; otherwise y is unspecified (never an out-of-bounds
//     access).
//
// Two kernels per weight type, picked by the number of tokens:
//   - GEMV (T <= kFloatGemvMaxTokens, the decode step): memory bound on W,
//     so every weight byte is read once, with 16-byte loads, and used for
//     every token of the pass. A warp owns kRows consecutive output rows;
//     lane l reads 16-byte chunks l, l + 32, ... of each row (a warp reads
//     512 contiguous bytes of a row per step), converts them to floats, and
//     for each token t of the pass multiplies them with the same chunk of
//     x[t] (x is small and stays in L1/L2) into kRows x kTok register
//     accumulators. kRows grows with kTok so that the x bytes read from L1
//     per weight byte stay below L1's bandwidth. One reduce-scatter over the
//     warp then sums the kRows x kTok accumulators in 31 + kRows x kTok
//     shuffles instead of 31 x kRows x kTok.
//   - GEMM (larger T, prefill): a 128 (rows) x 64 (tokens) output tile per
//     256-thread CTA, K in steps of 16 through double-buffered shared
//     memory, staged in registers one step ahead so global loads overlap
//     the FMAs. Shared tiles are k-major (W^T and X^T) so a thread reads its
//     8 weights and 4 activations of one k with three 16-byte loads; each
//     thread accumulates an 8 x 4 block of Y (rows tn*4 + {0..3} and
//     64 + tn*4 + {0..3}, tokens tt*4 + {0..3}). For BF16 this is the
//     fallback of the plugin's cuBLASLt GEMM; for F16 and F32 it is the
//     prefill path.
// Vector loads need 16-byte aligned W and X and K a multiple of the vector
// width (4 floats or 8 halves), which makes every row start aligned; any
// other operands (rl_ref offsets are bytes, so a float operand may be only
// 4-byte aligned) take the same kernels with scalar loads.
//
// SplitBf16Pair and ToBf16 turn activations into bf16 operands for
// cuBLASLt: x ~= hi + lo with |x - hi - lo| <= 2^-16 |x| (two BF16 GEMMs,
// W hi + W lo, reproduce a float-activation matmul), or x rounded once.
//
// Host entries take the launcher (cuda_launch.h's CudaLauncher on the
// device, simt::HostLauncher in tests) and device pointers; no op needs a
// workspace.
#pragma once

#include <cstdint>
#include <type_traits>
#if !defined(__CUDACC__)
#include <cstdio>
#include <cstdlib>
#endif

#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/device_abi.h"

namespace relayout::cuda {

// ---- Launch shapes (host and device alike, unit-tested) ----

// The GEMV handles up to this many tokens in one pass over W; more go to the
// GEMM, whose 64-token tiles read W once per 64 tokens.
inline constexpr int64_t kFloatGemvMaxTokens = 8;
inline constexpr int kFloatGemvThreads = 256;  // 8 warps per CTA
inline constexpr int kFloatGemmThreads = 256;
inline constexpr int kFloatGemmTileRows = 128;   // outputs (rows of W) per CTA
inline constexpr int kFloatGemmTileTokens = 64;  // tokens per CTA
inline constexpr int kFloatGemmTileK = 16;       // K per shared-memory stage
// Shared rows are padded by 4 floats: 16-byte aligned for the float4 reads,
// and the transposing stores see at most 2-way bank conflicts.
inline constexpr int kFloatGemmPadRows = kFloatGemmTileRows + 4;
inline constexpr int kFloatGemmPadTokens = kFloatGemmTileTokens + 4;
// Two stages of the W^T and X^T tiles: 25 600 bytes, under the 48 KiB that
// needs no opt-in.
inline constexpr size_t kFloatGemmSharedBytes =
    2 * kFloatGemmTileK * (kFloatGemmPadRows + kFloatGemmPadTokens) * sizeof(float);

// Whether FloatMatmul takes the GEMV for this many tokens.
RL_HD bool FloatMatmulUsesGemv(int64_t tokens) { return tokens <= kFloatGemvMaxTokens; }

// Tokens per GEMV pass: the smallest of 1, 2, 4, 8 that covers `tokens`
// (8 when more: the GEMV then makes several passes, one per grid row).
RL_HD int FloatGemvTokensPerPass(int64_t tokens) {
  return tokens <= 1 ? 1 : tokens <= 2 ? 2 : tokens <= 4 ? 4 : 8;
}

// Output rows per warp. Per clock an H200 SM receives ~18 bytes of HBM
// (4.8 TB/s over 132 SMs at ~2 GHz) and its L1 serves 128; each weight
// element is multiplied with tokens_per_pass x floats that come from L1, and
// a warp of kRows rows reuses each x chunk kRows times. F32 weights (4
// bytes an element) need 2 rows from 8 tokens on; halves (2 bytes) need 2
// rows from 4 tokens and 4 from 8. Fewer rows per warp keep more warps in
// flight for the memory system.
RL_HD int FloatGemvRowsPerWarp(int32_t dtype, int tokens_per_pass) {
  if (dtype == RL_DTYPE_F32) return tokens_per_pass >= 8 ? 2 : 1;
  return tokens_per_pass >= 8 ? 4 : tokens_per_pass >= 4 ? 2 : 1;
}

RL_HD dim3 FloatGemvGrid(int64_t rows, int64_t tokens, int rows_per_warp, int tokens_per_pass) {
  const int64_t rows_per_cta = int64_t{kFloatGemvThreads / 32} * rows_per_warp;
  return dim3(static_cast<unsigned>(CeilDiv<int64_t>(rows, rows_per_cta)),
              static_cast<unsigned>(CeilDiv<int64_t>(tokens, tokens_per_pass)));
}

RL_HD dim3 FloatGemmGrid(int64_t rows, int64_t tokens) {
  return dim3(static_cast<unsigned>(CeilDiv<int64_t>(rows, kFloatGemmTileRows)),
              static_cast<unsigned>(CeilDiv<int64_t>(tokens, kFloatGemmTileTokens)));
}

// Elements per 16-byte weight load: 4 floats or 8 halves; 0 for a dtype
// this file does not handle.
RL_HD int FloatWeightVectorWidth(int32_t dtype) {
  return dtype == RL_DTYPE_F32 ? 4 : (dtype == RL_DTYPE_F16 || dtype == RL_DTYPE_BF16) ? 8 : 0;
}

// Whether the kernels can use 16-byte loads: W and X 16-byte aligned and K a
// multiple of the vector width, so that every row of both starts aligned.
RL_HD bool FloatMatmulVectorized(int32_t dtype, const void* w, const float* x, int64_t cols) {
  const int width = FloatWeightVectorWidth(dtype);
  return width != 0 && cols % width == 0 && (reinterpret_cast<uintptr_t>(w) & 15) == 0 &&
         (reinterpret_cast<uintptr_t>(x) & 15) == 0;
}

// SplitBf16Pair/ToBf16: grid-stride kernels over n elements (4 per thread
// and step on the vector path).
inline constexpr int kBf16ConvertThreads = 256;
inline constexpr int64_t kBf16ConvertMaxBlocks = 4096;

RL_HD unsigned Bf16ConvertBlocks(int64_t items) {
  return static_cast<unsigned>(
      Min<int64_t>(CeilDiv<int64_t>(items, kBf16ConvertThreads), kBf16ConvertMaxBlocks));
}

// The bf16 pair of a finite float: hi = x rounded to bf16, lo = (x - hi)
// rounded to bf16 (x - hi is exact in float). |x - hi - lo| <= 2^-8 |x - hi|
// <= 2^-16 |x|. A finite x that would round past bf16's largest value (|x|
// >= 0x1.ffp127) keeps the largest finite bf16 instead (its truncation), whose
// distance to x is under one bf16 ulp, 2^-8 |x|, so the bound holds there
// too. Below 2^-118 the low part reaches bf16's subnormals and the bound
// becomes 2^-16 |x| + 2^-134 (half bf16's smallest subnormal). NaN or
// infinite x give a NaN lo.
RL_HD void SplitBf16(float x, uint16_t* hi, uint16_t* lo) {
  uint16_t h = FloatToBf16(x);
  const uint32_t bits = FloatToBits(x);
  if ((h & 0x7f80u) == 0x7f80u && (bits & 0x7f800000u) != 0x7f800000u) {
    h = static_cast<uint16_t>(bits >> 16);
  }
  *hi = h;
  *lo = FloatToBf16(x - Bf16ToFloat(h));
}

namespace float_matmul_internal {

// Vector loads and stores: kernels/cuda/simt/cuda_compat.h.

// ---- Weight element types: loads of 1 or kVecWidth elements as floats ----

template <int kWidth>
__device__ __forceinline__ void LoadFloats(const float* p, float (&out)[kWidth]) {
  static_assert(kWidth == 1 || kWidth == 4 || kWidth == 8, "load width");
  if constexpr (kWidth == 1) {
    out[0] = __ldg(p);
  } else {
    RL_UNROLL
    for (int q = 0; q < kWidth / 4; ++q) {
      const float4 v = VecLoadRO<float4>(p + 4 * q);
      out[4 * q + 0] = v.x;
      out[4 * q + 1] = v.y;
      out[4 * q + 2] = v.z;
      out[4 * q + 3] = v.w;
    }
  }
}

struct F32Weight {
  using Acc = double;  // products exact, sums in double (matmul.h)
  static constexpr int kVecWidth = 4;
  // Elements [i, i + kWidth) of the weight, i a multiple of kWidth.
  template <int kWidth>
  __device__ __forceinline__ static void Load(const void* w, int64_t i, float (&out)[kWidth]) {
    LoadFloats<kWidth>(static_cast<const float*>(w) + i, out);
  }
};

template <bool kBf16>
struct HalfWeight {
  using Acc = float;
  static constexpr int kVecWidth = 8;
  __device__ __forceinline__ static float Convert(uint32_t bits) {
    if constexpr (kBf16) {
      return Bf16ToFloat(static_cast<uint16_t>(bits));
    } else {
      return HalfToFloat(static_cast<uint16_t>(bits));
    }
  }
  template <int kWidth>
  __device__ __forceinline__ static void Load(const void* w, int64_t i, float (&out)[kWidth]) {
    static_assert(kWidth == 1 || kWidth == 8, "load width");
    const uint16_t* p = static_cast<const uint16_t*>(w) + i;
    if constexpr (kWidth == 1) {
      out[0] = Convert(__ldg(p));
    } else {
      // One 16-byte load of 8 halves; element 2j is the low half of word j.
      const uint4 v = VecLoadRO<uint4>(p);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
      RL_UNROLL
      for (int j = 0; j < 4; ++j) {
        out[2 * j] = Convert(words[j] & 0xffffu);
        out[2 * j + 1] = Convert(words[j] >> 16);
      }
    }
  }
};

using F16Weight = HalfWeight<false>;
using Bf16Weight = HalfWeight<true>;

// acc + w x: in double the product of two floats is exact, so this is one
// rounding whether or not the compiler fuses it; in float a fused fmaf.
__device__ __forceinline__ double MulAdd(float a, float b, double acc) {
  return acc + static_cast<double>(a) * static_cast<double>(b);
}
__device__ __forceinline__ float MulAdd(float a, float b, float acc) { return fmaf(a, b, acc); }

// One step of WarpSumScatter: lanes `kOffset` apart swap halves of their
// kH * 2 values, the lane with the offset bit set keeping the upper half.
template <int kH, int kOffset, int kN, class T>
__device__ __forceinline__ void ScatterSteps(T (&v)[kN], int lane, int* index) {
  if constexpr (kH >= 1) {
    const bool upper = (lane & kOffset) != 0;
    RL_UNROLL
    for (int i = 0; i < kH; ++i) {
      const T send = upper ? v[i] : v[i + kH];
      const T keep = upper ? v[i + kH] : v[i];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kOffset);
    }
    *index += upper ? kH : 0;
    ScatterSteps<kH / 2, kOffset / 2>(v, lane, index);
  }
}

// Sums each of the kN values of every lane over the warp's 32 lanes, kN a
// power of two <= 32. The first log2(kN) butterfly steps halve the values a
// lane holds (the lane whose step bit is set keeps the upper half and sends
// the lower, its partner the opposite), so the whole reduction costs kN - 1
// + 5 - log2(kN) shuffles rather than 5 kN. On return every lane holds the
// full sum of value *index, and the lanes with lane % (32 / kN) == 0 hold
// each index exactly once. (Template recursion, not a loop, so that every
// index into v is a compile-time constant and v stays in registers.)
template <int kN, class T>
__device__ __forceinline__ T WarpSumScatter(T (&v)[kN], int lane, int* index) {
  static_assert(kN >= 1 && kN <= 32 && (kN & (kN - 1)) == 0, "a power of two up to 32");
  *index = 0;
  ScatterSteps<kN / 2, 16>(v, lane, index);
  T sum = v[0];
  RL_UNROLL
  for (int offset = 16 / kN; offset >= 1; offset /= 2) {
    sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  }
  return sum;
}

}  // namespace float_matmul_internal

// ---- GEMV: a warp per kRows rows, kTok tokens per pass ----

// Grid FloatGemvGrid(rows, tokens, kRows, kTok), block kFloatGemvThreads;
// grid row blockIdx.y handles tokens [kTok y, kTok y + kTok).
template <class W, int kRows, int kTok, bool kVec>
__global__ void __launch_bounds__(kFloatGemvThreads)
    FloatGemvKernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                    const float* __restrict__ x, int64_t tokens, float* __restrict__ y) {
  using Acc = typename W::Acc;
  constexpr int kWidth = kVec ? W::kVecWidth : 1;
  constexpr int kN = kRows * kTok;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t first_row =
      (int64_t{blockIdx.x} * (kFloatGemvThreads / 32) + threadIdx.x / 32) * kRows;
  if (first_row >= rows) return;  // the whole warp: no shuffle is left waiting
  const int64_t first_token = int64_t{blockIdx.y} * kTok;

  // Rows and tokens past the end repeat the last one (valid memory, results
  // dropped at the store), so the loop has no per-row or per-token branch.
  int64_t w_start[kRows];
  RL_UNROLL
  for (int r = 0; r < kRows; ++r) w_start[r] = Min<int64_t>(first_row + r, rows - 1) * cols;
  const float* x_row[kTok];
  RL_UNROLL
  for (int t = 0; t < kTok; ++t) x_row[t] = x + Min<int64_t>(first_token + t, tokens - 1) * cols;

  Acc acc[kN];
  RL_UNROLL
  for (int i = 0; i < kN; ++i) acc[i] = Acc(0);

  const int64_t chunks = cols / kWidth;  // kVec: cols % kWidth == 0
  RL_UNROLL_N(2)
  for (int64_t c = lane; c < chunks; c += 32) {
    const int64_t k = c * kWidth;
    float wv[kRows][kWidth];
    RL_UNROLL
    for (int r = 0; r < kRows; ++r) W::template Load<kWidth>(w, w_start[r] + k, wv[r]);
    RL_UNROLL
    for (int t = 0; t < kTok; ++t) {
      float xv[kWidth];
      float_matmul_internal::LoadFloats<kWidth>(x_row[t] + k, xv);
      RL_UNROLL
      for (int r = 0; r < kRows; ++r) {
        RL_UNROLL
        for (int e = 0; e < kWidth; ++e) {
          acc[r * kTok + t] = float_matmul_internal::MulAdd(wv[r][e], xv[e], acc[r * kTok + t]);
        }
      }
    }
  }

  int index = 0;
  const Acc sum = float_matmul_internal::WarpSumScatter<kN>(acc, lane, &index);
  if (lane % (32 / kN) == 0) {
    const int64_t row = first_row + index / kTok;
    const int64_t token = first_token + index % kTok;
    if (row < rows && token < tokens) y[token * rows + row] = static_cast<float>(sum);
  }
}

// ---- GEMM: 128 x 64 output tiles through shared memory ----

// Grid FloatGemmGrid(rows, tokens), block kFloatGemmThreads, dynamic shared
// memory kFloatGemmSharedBytes.
template <class W, bool kVec>
__global__ void __launch_bounds__(kFloatGemmThreads)
    FloatGemmKernel(const void* __restrict__ w, int64_t rows, int64_t cols,
                    const float* __restrict__ x, int64_t tokens, float* __restrict__ y) {
  using Acc = typename W::Acc;
  constexpr int kBM = kFloatGemmTileRows;
  constexpr int kBN = kFloatGemmTileTokens;
  constexpr int kBK = kFloatGemmTileK;
  constexpr int kPM = kFloatGemmPadRows;
  constexpr int kPN = kFloatGemmPadTokens;
  constexpr int kThreads = kFloatGemmThreads;
  // Global -> register staging: each thread loads kWLoads pieces of kWWidth
  // weights and kXLoads pieces of kXWidth activations per K step.
  constexpr int kWWidth = kVec ? W::kVecWidth : 1;
  constexpr int kWLoads = kBM * kBK / (kThreads * kWWidth);
  constexpr int kXWidth = kVec ? 4 : 1;
  constexpr int kXLoads = kBN * kBK / (kThreads * kXWidth);
  static_assert(kWLoads >= 1 && kXLoads >= 1, "tile smaller than the CTA");

  RL_DYNAMIC_SHARED(float, smem);
  float* const w_tile = smem;                  // [2][kBK][kPM]: W^T, k-major
  float* const x_tile = smem + 2 * kBK * kPM;  // [2][kBK][kPN]: X^T, k-major

  const int tid = static_cast<int>(threadIdx.x);
  const int tn = tid % 16;  // output rows tn*4 + {0..3}, 64 + tn*4 + {0..3}
  const int tt = tid / 16;  // output tokens tt*4 + {0..3}
  const int64_t n0 = int64_t{blockIdx.x} * kBM;
  const int64_t t0 = int64_t{blockIdx.y} * kBN;

  float w_reg[kWLoads][kWWidth];
  float x_reg[kXLoads][kXWidth];

  // Piece q of the W tile is row (tid + 256 q) / (kBK / kWWidth) of the tile
  // at k offset ((tid + 256 q) % (kBK / kWWidth)) * kWWidth: consecutive
  // threads read consecutive pieces of a row. Out-of-range rows and k read
  // as zeros (with kVec, cols % kWWidth == 0: a piece is wholly in or out).
  auto load = [&](int64_t k0) {
    RL_UNROLL
    for (int q = 0; q < kWLoads; ++q) {
      const int piece = tid + kThreads * q;
      const int row = piece / (kBK / kWWidth);
      const int kk = piece % (kBK / kWWidth) * kWWidth;
      if (n0 + row < rows && k0 + kk < cols) {
        W::template Load<kWWidth>(w, (n0 + row) * cols + k0 + kk, w_reg[q]);
      } else {
        RL_UNROLL
        for (int e = 0; e < kWWidth; ++e) w_reg[q][e] = 0.0f;
      }
    }
    RL_UNROLL
    for (int q = 0; q < kXLoads; ++q) {
      const int piece = tid + kThreads * q;
      const int tok = piece / (kBK / kXWidth);
      const int kk = piece % (kBK / kXWidth) * kXWidth;
      if (t0 + tok < tokens && k0 + kk < cols) {
        float_matmul_internal::LoadFloats<kXWidth>(x + (t0 + tok) * cols + k0 + kk, x_reg[q]);
      } else {
        RL_UNROLL
        for (int e = 0; e < kXWidth; ++e) x_reg[q][e] = 0.0f;
      }
    }
  };
  auto store = [&](int stage) {
    float* wt = w_tile + stage * kBK * kPM;
    float* xt = x_tile + stage * kBK * kPN;
    RL_UNROLL
    for (int q = 0; q < kWLoads; ++q) {
      const int piece = tid + kThreads * q;
      const int row = piece / (kBK / kWWidth);
      const int kk = piece % (kBK / kWWidth) * kWWidth;
      RL_UNROLL
      for (int e = 0; e < kWWidth; ++e) wt[(kk + e) * kPM + row] = w_reg[q][e];
    }
    RL_UNROLL
    for (int q = 0; q < kXLoads; ++q) {
      const int piece = tid + kThreads * q;
      const int tok = piece / (kBK / kXWidth);
      const int kk = piece % (kBK / kXWidth) * kXWidth;
      RL_UNROLL
      for (int e = 0; e < kXWidth; ++e) xt[(kk + e) * kPN + tok] = x_reg[q][e];
    }
  };

  Acc acc[4][8];  // [token j][row i]
  RL_UNROLL
  for (int j = 0; j < 4; ++j) {
    RL_UNROLL
    for (int i = 0; i < 8; ++i) acc[j][i] = Acc(0);
  }

  const int64_t k_steps = CeilDiv<int64_t>(cols, kBK);
  load(0);
  store(0);
  __syncthreads();
  for (int64_t step = 0; step < k_steps; ++step) {
    const int stage = static_cast<int>(step & 1);
    const bool more = step + 1 < k_steps;
    if (more) load((step + 1) * kBK);  // in flight during the FMAs below
    const float* wt = w_tile + stage * kBK * kPM;
    const float* xt = x_tile + stage * kBK * kPN;
    RL_UNROLL
    for (int k = 0; k < kBK; ++k) {
      const float4 a0 = VecLoad<float4>(wt + k * kPM + tn * 4);
      const float4 a1 = VecLoad<float4>(wt + k * kPM + 64 + tn * 4);
      const float4 b = VecLoad<float4>(xt + k * kPN + tt * 4);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[4] = {b.x, b.y, b.z, b.w};
      RL_UNROLL
      for (int j = 0; j < 4; ++j) {
        RL_UNROLL
        for (int i = 0; i < 8; ++i)
          acc[j][i] = float_matmul_internal::MulAdd(a[i], bv[j], acc[j][i]);
      }
    }
    // The other stage was last read before the previous barrier, so it can
    // be refilled now; one barrier per K step.
    if (more) store(stage ^ 1);
    __syncthreads();
  }

  // 16 lanes of a warp write 4 consecutive outputs each of one token's row
  // of Y: 256 contiguous bytes per store instruction when Y rows are
  // 16-byte aligned.
  const bool vector_store = (reinterpret_cast<uintptr_t>(y) & 15) == 0 && rows % 4 == 0;
  RL_UNROLL
  for (int j = 0; j < 4; ++j) {
    const int64_t token = t0 + tt * 4 + j;
    if (token >= tokens) continue;
    float* y_row = y + token * rows;
    RL_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int64_t n = n0 + h * 64 + tn * 4;
      if (vector_store) {
        if (n < rows) {
          VecStore(y_row + n, make_float4(static_cast<float>(acc[j][4 * h]),
                                          static_cast<float>(acc[j][4 * h + 1]),
                                          static_cast<float>(acc[j][4 * h + 2]),
                                          static_cast<float>(acc[j][4 * h + 3])));
        }
      } else {
        RL_UNROLL
        for (int i = 0; i < 4; ++i) {
          if (n + i < rows) y_row[n + i] = static_cast<float>(acc[j][4 * h + i]);
        }
      }
    }
  }
}

// ---- bf16 activations ----

// hi[i], lo[i] = SplitBf16(x[i]). kVec: x 16-byte and hi, lo 8-byte
// aligned; groups of 4 elements then the n % 4 tail.
template <bool kVec>
__global__ void __launch_bounds__(kBf16ConvertThreads)
    SplitBf16PairKernel(const float* __restrict__ x, int64_t n, uint16_t* __restrict__ hi,
                        uint16_t* __restrict__ lo) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t groups = kVec ? n / 4 : 0;
  for (int64_t g = first; g < groups; g += stride) {
    const float4 v = VecLoadRO<float4>(x + 4 * g);
    uint16_t h[4];
    uint16_t l[4];
    SplitBf16(v.x, &h[0], &l[0]);
    SplitBf16(v.y, &h[1], &l[1]);
    SplitBf16(v.z, &h[2], &l[2]);
    SplitBf16(v.w, &h[3], &l[3]);
    VecStore(hi + 4 * g, make_uint2(h[0] | (uint32_t{h[1]} << 16), h[2] | (uint32_t{h[3]} << 16)));
    VecStore(lo + 4 * g, make_uint2(l[0] | (uint32_t{l[1]} << 16), l[2] | (uint32_t{l[3]} << 16)));
  }
  for (int64_t i = 4 * groups + first; i < n; i += stride) SplitBf16(x[i], &hi[i], &lo[i]);
}

// out[i] = x[i] rounded to bf16 (nearest even). kVec as above.
template <bool kVec>
__global__ void __launch_bounds__(kBf16ConvertThreads)
    ToBf16Kernel(const float* __restrict__ x, int64_t n, uint16_t* __restrict__ out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t groups = kVec ? n / 4 : 0;
  for (int64_t g = first; g < groups; g += stride) {
    const float4 v = VecLoadRO<float4>(x + 4 * g);
    VecStore(out + 4 * g, make_uint2(FloatToBf16(v.x) | (uint32_t{FloatToBf16(v.y)} << 16),
                                     FloatToBf16(v.z) | (uint32_t{FloatToBf16(v.w)} << 16)));
  }
  for (int64_t i = 4 * groups + first; i < n; i += stride) out[i] = FloatToBf16(x[i]);
}

// ---- Host entries ----

namespace float_matmul_internal {

template <class W, int kRows, int kTok, class Launcher>
void LaunchGemv(const Launcher& launch, bool vec, const void* w, int64_t rows, int64_t cols,
                const float* x, int64_t tokens, float* y) {
  const dim3 grid = FloatGemvGrid(rows, tokens, kRows, kTok);
  if (vec) {
    launch(grid, dim3(kFloatGemvThreads), 0, FloatGemvKernel<W, kRows, kTok, true>, w, rows, cols,
           x, tokens, y);
  } else {
    launch(grid, dim3(kFloatGemvThreads), 0, FloatGemvKernel<W, kRows, kTok, false>, w, rows, cols,
           x, tokens, y);
  }
}

template <class W, class Launcher>
void Gemv(const Launcher& launch, int32_t dtype, const void* w, int64_t rows, int64_t cols,
          const float* x, int64_t tokens, float* y) {
  const bool vec = FloatMatmulVectorized(dtype, w, x, cols);
  const int tok = FloatGemvTokensPerPass(tokens);
  const int rows_per_warp = FloatGemvRowsPerWarp(dtype, tok);
  // The (rows per warp, tokens per pass) pairs FloatGemvRowsPerWarp gives.
  if (tok == 1 && rows_per_warp == 1)
    return LaunchGemv<W, 1, 1>(launch, vec, w, rows, cols, x, tokens, y);
  if (tok == 2 && rows_per_warp == 1)
    return LaunchGemv<W, 1, 2>(launch, vec, w, rows, cols, x, tokens, y);
  if (tok == 4 && rows_per_warp == 1)
    return LaunchGemv<W, 1, 4>(launch, vec, w, rows, cols, x, tokens, y);
  if (tok == 4 && rows_per_warp == 2)
    return LaunchGemv<W, 2, 4>(launch, vec, w, rows, cols, x, tokens, y);
  if (tok == 8 && rows_per_warp == 2)
    return LaunchGemv<W, 2, 8>(launch, vec, w, rows, cols, x, tokens, y);
  if constexpr (!std::is_same_v<W, F32Weight>) {
    LaunchGemv<W, 4, 8>(launch, vec, w, rows, cols, x, tokens, y);
  }
}

template <class W, class Launcher>
void Gemm(const Launcher& launch, int32_t dtype, const void* w, int64_t rows, int64_t cols,
          const float* x, int64_t tokens, float* y) {
  const dim3 grid = FloatGemmGrid(rows, tokens);
  if (FloatMatmulVectorized(dtype, w, x, cols)) {
    launch(grid, dim3(kFloatGemmThreads), kFloatGemmSharedBytes, FloatGemmKernel<W, true>, w, rows,
           cols, x, tokens, y);
  } else {
    launch(grid, dim3(kFloatGemmThreads), kFloatGemmSharedBytes, FloatGemmKernel<W, false>, w, rows,
           cols, x, tokens, y);
  }
}

}  // namespace float_matmul_internal

// The GEMV for any number of tokens (one pass over W per 8 tokens; a grid
// of CeilDiv(tokens, 8) rows, so tokens <= 8 * 65535). Returns false,
// launching nothing, for a dtype other than F32/F16/BF16 or a non-positive
// size. w: [rows, cols] of dtype; x: [tokens, cols]; y: [tokens, rows],
// not overlapping x or w.
template <class Launcher>
bool FloatGemv(const Launcher& launch, int32_t dtype, const void* w, int64_t rows, int64_t cols,
               const float* x, int64_t tokens, float* y) {
  if (rows <= 0 || cols <= 0 || tokens <= 0) return false;
  using namespace float_matmul_internal;
  switch (dtype) {
    case RL_DTYPE_F32:
      Gemv<F32Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    case RL_DTYPE_F16:
      Gemv<F16Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    case RL_DTYPE_BF16:
      Gemv<Bf16Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    default:
      return false;
  }
}

// The tiled GEMM for any number of tokens (tokens <= 64 * 65535). Same
// contract as FloatGemv.
template <class Launcher>
bool FloatGemm(const Launcher& launch, int32_t dtype, const void* w, int64_t rows, int64_t cols,
               const float* x, int64_t tokens, float* y) {
  if (rows <= 0 || cols <= 0 || tokens <= 0) return false;
  using namespace float_matmul_internal;
  switch (dtype) {
    case RL_DTYPE_F32:
      Gemm<F32Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    case RL_DTYPE_F16:
      Gemm<F16Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    case RL_DTYPE_BF16:
      Gemm<Bf16Weight>(launch, dtype, w, rows, cols, x, tokens, y);
      return true;
    default:
      return false;
  }
}

// y[tokens, rows] = x[tokens, cols] * w[rows, cols]^T, w row-major of dtype
// (RL_DTYPE_F32, _F16 or _BF16): the GEMV up to kFloatGemvMaxTokens tokens,
// the GEMM above. Returns false, launching nothing, for another dtype or a
// non-positive size (the plugin checks both before).
template <class Launcher>
bool FloatMatmul(const Launcher& launch, int32_t dtype, const void* w, int64_t rows, int64_t cols,
                 const float* x, int64_t tokens, float* y) {
  return FloatMatmulUsesGemv(tokens) ? FloatGemv(launch, dtype, w, rows, cols, x, tokens, y)
                                     : FloatGemm(launch, dtype, w, rows, cols, x, tokens, y);
}

// hi[i], lo[i] = SplitBf16(x[i]) for i < n: the activations of the plugin's
// two cuBLASLt BF16 GEMMs (y = W hi + W lo). hi and lo hold n bf16 each and
// do not overlap x.
template <class Launcher>
void SplitBf16Pair(const Launcher& launch, const float* x, int64_t n, uint16_t* hi, uint16_t* lo) {
  if (n <= 0) return;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
                   (reinterpret_cast<uintptr_t>(hi) & 7) == 0 &&
                   (reinterpret_cast<uintptr_t>(lo) & 7) == 0;
  const dim3 grid(Bf16ConvertBlocks(vec ? Max<int64_t>(n / 4, 1) : n));
  if (vec) {
    launch(grid, dim3(kBf16ConvertThreads), 0, SplitBf16PairKernel<true>, x, n, hi, lo);
  } else {
    launch(grid, dim3(kBf16ConvertThreads), 0, SplitBf16PairKernel<false>, x, n, hi, lo);
  }
}

// out[i] = bf16(x[i]), round to nearest even, for i < n.
template <class Launcher>
void ToBf16(const Launcher& launch, const float* x, int64_t n, uint16_t* out) {
  if (n <= 0) return;
  const bool vec =
      (reinterpret_cast<uintptr_t>(x) & 15) == 0 && (reinterpret_cast<uintptr_t>(out) & 7) == 0;
  const dim3 grid(Bf16ConvertBlocks(vec ? Max<int64_t>(n / 4, 1) : n));
  if (vec) {
    launch(grid, dim3(kBf16ConvertThreads), 0, ToBf16Kernel<true>, x, n, out);
  } else {
    launch(grid, dim3(kBf16ConvertThreads), 0, ToBf16Kernel<false>, x, n, out);
  }
}

}  // namespace relayout::cuda
