// Weight-only quantized matmul of the CUDA backend: y[t, n] = sum_k W[n, k]
// x[t, k] for a weight W[N, K] in GGUF blocks and float32 activations
// x[T, K]: Q8_0, Q4_0, Q4_1 in the native layout or the quant row group
// layout with G = 8 (quant_blocks.cuh has both maps); Q5_0, Q5_1, IQ4_NL
// (blocks of 32) and the K-quants Q2_K..Q6_K (super-blocks of 256) in the
// native layout.
//
// Numerics are the CPU's (kernels/cpu/matmul/matmul.h, algorithm in
// matmul_internal.h), step for step:
//   1. QuantizeActivations: every 32-block of x becomes int8 q, float d =
//      amax / 127, int32 sum = sum q, float s = d * float(sum), bit for bit
//      the CPU's Quantize (same divisions, nearest-even rounding, the
//      amax < 2^-100 rule, saturation to [-128, 127]).
//   2. The GEMV: per row and block, isum = sum_j w_j q_j exactly in int32
//      (__dp4a; Q4_0 as dot(nib, q) - 8 * sum), then
//      acc = fma(float(isum), dw * d, acc), and for Q4_1 also
//      acc = fma(mw, s, acc). The products dw * d and the fma are the CPU's;
//      only the order of the float additions differs (each thread sums its
//      strided blocks, then a butterfly over the 32 lanes, then the warps of
//      a CTA in order). Q4_1 folds the CPU's second accumulator (the mw * s
//      terms) into the first, so every partial sum is a sum of whole blocks'
//      contributions, sum_j w_j d q_j each.
//      Q5_0, Q5_1 and IQ4_NL are the same step with w_j the 5-bit value
//      (minus 16 for Q5_0) or the IQ4_NL table value, Q5_1's min as Q4_1's.
//   2'. The K-quants, per row, Q8 block b of 32 activations (scale d) and
//      the weight's sub-blocks s of 16 or 32 elements inside it (integer
//      scales sc_s, mins m_s; super-block scales dw, dmin):
//        isum = sum_s sc_s sum_{j in s} w_j q_j         exactly in int32
//        msum = sum_s m_s sum_{j in s} q_j              (Q2_K, Q4_K, Q5_K)
//        acc = fma(float(isum), dw * d, acc)
//        acc = fma(-float(msum), dmin * d, acc)
//      (|isum| <= 2^24: float(isum) is exact). This is one float scale per
//      32 activations, as the Q8 contract of device_abi.h / matmul.h has
//      it, with integer block dots: against exact arithmetic on the stored
//      weights the quantization error of x is the contract's sum_b (max_b
//      |x| / 254) sum_b |w|, and the float rounding at most
//      (2 (2 K/32 + 8) + 4) 2^-24 sum_k (|a_k| + |b_k|) |d q_k| with
//      w_k = a_k - b_k split into its scale and min parts (a min-free type
//      has half the terms). That is the ABI's quant contract (Q8
//      activations, float rounding of order K/32 2^-24). The CPU's
//      MatmulReference (dequantize, float sums over k ascending, no Q8
//      step) is not bit-comparable, so quant_matmul_test.cc checks the
//      kernel against a
//      double-precision sum over the reference-dequantized weights times
//      the dequantized activations, within the rounding bound above.
//   y is deterministic for a shape (no atomics, a split fixed by the shape)
//   and a token's y is the same alone or in a batch of any size; against
//   the CPU the difference for Q8_0/Q4_0/Q4_1 is float reordering, at most
//   2 (K/32 + 8) 2^-24 sum_k |w_k| max(|x_k|, |d q_k|) (quant_matmul_test.cc
//   checks it).
//
// Alignment (REQUIRES): the weight, x and the workspace 16-byte aligned (a
// cudaMalloc'd buffer, or a GGUF tensor at its 32-byte file alignment), and
// DequantizeToBf16's output too; y needs only float alignment. The host
// build of these kernels traps on a misaligned load, so the tests check the
// offsets the kernels compute.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/kernels/quant_blocks.cuh"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {

// ---- Quantized activations (step 1) ----

// The workspace holds, token-major, for T tokens of K = cols:
//   q   int8  [T][K]       at offset 0
//   d   float [T][K / 32]  then, each array starting on a 256-byte boundary
//   sum int32 [T][K / 32]
//   s   float [T][K / 32]
// Token t's block b is index t * K / 32 + b of d, sum and s, and its 32 q at
// t * K + 32 b: x's blocks in order, so step 1 is one flat loop over blocks.
struct Q8Activations {
  int8_t* q;
  float* d;
  int32_t* sum;
  float* s;
};
struct Q8ActivationsConst {
  const int8_t* q;
  const float* d;
  const int32_t* sum;
  const float* s;
};

namespace quant_matmul_detail {

RL_HD int64_t AlignUp256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace quant_matmul_detail

// Device scratch QuantMatmul needs: the quantized activations of `tokens`
// rows of `cols` floats (cols % 32 == 0).
RL_HD int64_t QuantMatmulWorkspaceBytes(int64_t tokens, int64_t cols) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  const int64_t blocks = tokens * (cols / kQuantBlock);
  return AlignUp256(tokens * cols) + 3 * AlignUp256(blocks * 4);
}

// The arrays inside a workspace of QuantMatmulWorkspaceBytes(tokens, cols).
RL_HD Q8Activations Q8ActivationsIn(void* workspace, int64_t tokens, int64_t cols) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  uint8_t* base = static_cast<uint8_t*>(workspace);
  const int64_t blocks_bytes = AlignUp256(tokens * (cols / kQuantBlock) * 4);
  uint8_t* d = base + AlignUp256(tokens * cols);
  return {reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(d),
          reinterpret_cast<int32_t*>(d + blocks_bytes),
          reinterpret_cast<float*>(d + 2 * blocks_bytes)};
}

RL_HD Q8ActivationsConst AsConst(const Q8Activations& a) { return {a.q, a.d, a.sum, a.s}; }

// ---- Loads ----
// Vector loads of 16, 4 and 2 bytes at their natural alignment, through the
// read-only path. On the host a misaligned address traps: the device would
// fault there.
//
// The weights stream through once per call, so they are loaded with L1's
// evict-first policy: the activations, which every row group rereads, stay
// in L1. They still allocate in L1 (rather than L1::no_allocate) because a
// lane's two consecutive 16-byte loads share one 32-byte sector, which
// would otherwise come from L2 twice.

namespace quant_matmul_detail {

template <class T>
__device__ __forceinline__ T LoadAligned(const void* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(static_cast<const T*>(p));
#else
  if (reinterpret_cast<uintptr_t>(p) % sizeof(T) != 0) __builtin_trap();
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}

__device__ __forceinline__ uint4 LoadWeight16(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  uint4 v;
  asm("ld.global.nc.L1::evict_first.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
#else
  return LoadAligned<uint4>(p);
#endif
}

// The kUnits 16-byte units of one group block.
template <int kUnits>
__device__ __forceinline__ void LoadGroupBlock(const uint8_t* block, uint4 (&unit)[kUnits]) {
  RL_UNROLL
  for (int u = 0; u < kUnits; ++u) unit[u] = LoadWeight16(block + 16 * u);
}

}  // namespace quant_matmul_detail

// ---- Step 1: QuantizeActivations ----

// Most threads of a QuantizeActivations CTA (fewer for under 8 blocks).
// Small CTAs: the kernel has no shared state, and 64 threads still fill an
// SM (32 resident CTAs x 64 threads).
inline constexpr int kQuantizeThreads = 64;

namespace quant_matmul_detail {

// The CPU's RoundToInt8: nearest even, then saturate; NaN (which fails both
// comparisons) gives -128, as there.
RL_HD int32_t RoundToInt8(float v) {
  const float r = rintf(v);
  if (r >= -127.0f && r <= 127.0f) return static_cast<int32_t>(r);
  return r > 0.0f ? 127 : -128;
}

}  // namespace quant_matmul_detail

// Thread mapping: 8 consecutive lanes own one 32-float block of x (a float4
// each, so a warp reads 512 contiguous bytes and writes 128 contiguous q
// bytes); amax and the int sum are 3-step shuffle trees within the 8 lanes
// (max is exact and order-free, the sum is integer, so the tree gives the
// CPU's sequential values). A CTA covers blockDim.x / 8 consecutive blocks of
// the flat [T * K / 32] block sequence.
__global__ void __launch_bounds__(kQuantizeThreads)
    QuantizeActivationsKernel(const float* __restrict__ x, int64_t blocks, Q8Activations out) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  const int64_t block = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 8) + threadIdx.x / 8;
  const int part = threadIdx.x % 8;
  // A whole warp past the end leaves (warp-uniform, so the shuffles below
  // always see full warps).
  if (block - (threadIdx.x % 32) / 8 >= blocks) return;
  const bool active = block < blocks;
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (active) v = LoadAligned<float4>(x + block * kQuantBlock + 4 * part);

  // fmaxf ignores NaN like the CPU's std::fmax, so amax is the largest
  // non-NaN |x| (or 0), whatever the order.
  float amax = fmaxf(fmaxf(fmaxf(0.0f, fabsf(v.x)), fmaxf(fabsf(v.y), fabsf(v.z))), fabsf(v.w));
  for (int mask = 4; mask >= 1; mask >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, mask, 8));
  }
  float scale = 0.0f;
  int32_t q0 = 0, q1 = 0, q2 = 0, q3 = 0;
  if (amax >= 0x1p-100f) {  // below, 1 / (amax / 127) could overflow: the block is 0
#if defined(__CUDA_ARCH__)
    // IEEE-rounded division, product and reciprocal even under fast-math.
    scale = __fdiv_rn(amax, 127.0f);
    const float inv = __fdiv_rn(1.0f, scale);
    q0 = RoundToInt8(__fmul_rn(v.x, inv));
    q1 = RoundToInt8(__fmul_rn(v.y, inv));
    q2 = RoundToInt8(__fmul_rn(v.z, inv));
    q3 = RoundToInt8(__fmul_rn(v.w, inv));
#else
    scale = amax / 127.0f;
    const float inv = 1.0f / scale;
    q0 = RoundToInt8(v.x * inv);
    q1 = RoundToInt8(v.y * inv);
    q2 = RoundToInt8(v.z * inv);
    q3 = RoundToInt8(v.w * inv);
#endif
  }
  int32_t total = q0 + q1 + q2 + q3;
  for (int mask = 4; mask >= 1; mask >>= 1) total += __shfl_xor_sync(0xffffffffu, total, mask, 8);
  if (!active) return;
  const uint32_t packed =
      (static_cast<uint32_t>(q0) & 0xffu) | ((static_cast<uint32_t>(q1) & 0xffu) << 8) |
      ((static_cast<uint32_t>(q2) & 0xffu) << 16) | (static_cast<uint32_t>(q3) << 24);
  *reinterpret_cast<uint32_t*>(out.q + block * kQuantBlock + 4 * part) = packed;
  if (part == 0) {
    out.d[block] = scale;
    out.sum[block] = total;
#if defined(__CUDA_ARCH__)
    out.s[block] = __fmul_rn(scale, static_cast<float>(total));
#else
    out.s[block] = scale * static_cast<float>(total);
#endif
  }
}

// Quantizes x[tokens, cols] (cols % 32 == 0) into the workspace arrays.
template <class Launcher>
void QuantizeActivations(const Launcher& launch, const float* x, int64_t tokens, int64_t cols,
                         Q8Activations out) {
  const int64_t blocks = tokens * (cols / kQuantBlock);
  if (blocks <= 0) return;
  const int64_t threads = Min<int64_t>(kQuantizeThreads, 32 * CeilDiv<int64_t>(blocks, 4));
  const dim3 grid(static_cast<unsigned>(CeilDiv<int64_t>(blocks, threads / 8)));
  launch(grid, dim3(static_cast<unsigned>(threads)), 0, QuantizeActivationsKernel, x, blocks, out);
}

// ---- Step 2: the GEMV kernels ----

// Most tokens one pass keeps in registers (8 rows x 8 tokens accumulators in
// the group kernel); more tokens loop over chunks inside the kernel, which
// rereads its rows' weights while they are still in L1/L2 (a group of 8
// rows x K = 4096 is 18 KiB of Q4_0).
inline constexpr int kMaxTokenChunk = 8;
// Warps of a group-kernel CTA (all on one row group, splitting its blocks).
inline constexpr int kGroupMaxWarps = 4;
// Warps (rows) of a native-kernel CTA.
inline constexpr int kNativeWarps = 4;

// The chunk for `tokens` tokens: 8 when there are 8 or more, else the power
// of two at or above (so 1, 2, 4, 8 are the only instantiations).
RL_HD int QuantGemvTokenChunk(int64_t tokens) {
  if (tokens >= kMaxTokenChunk) return kMaxTokenChunk;
  int c = 1;
  while (c < tokens) c *= 2;
  return c;
}

// Warps per row group in the group kernel. One warp per group already gives
// N / 8 warps; a decode GEMV of N = 4096 would then run 512 warps, under 4 per
// SM of an H200, too few loads in flight to reach HBM bandwidth. So a CTA of
// up to 4 warps splits the group's blocks while there are few groups and
// each warp still gets at least one full sweep (32 blocks) of the row.
RL_HD int QuantGemvGroupWarps(int64_t groups, int64_t blocks_per_row) {
  int warps = 1;
  while (warps < kGroupMaxWarps && groups * warps < 2048 && blocks_per_row >= 64 * warps) {
    warps *= 2;
  }
  return warps;
}

namespace quant_matmul_detail {

template <QuantType kType>
struct QuantTypeConstant {
  static constexpr QuantType value = kType;
};

template <QuantType kType>
struct GemvTraits {
  static constexpr int kFields = kType == QuantType::kQ4_1 ? 2 : 1;
  static constexpr int kPayloadUnits = kType == QuantType::kQ8_0 ? 2 : 1;  // 16 B per row
  // 16-byte units of one G = 8 group block: scale fields then payloads.
  static constexpr int kUnits = kFields + kGpuQuantGroupRows * kPayloadUnits;
  static constexpr int kBlockBytes = BlockBytes(kType);
};

// isum of one row's block against one token's 32 q (q0: elements 0..15,
// q1: 16..31). `p` holds the payload words: 8 for Q8_0 (int8 in order), 4
// for Q4 (byte j = element j | element j + 16 << 4, so the low nibbles of a
// word are 4 elements of q0's matching word, the high nibbles of q1's).
// Q4_0 returns dot(nib, q); the caller subtracts 8 * sum.
template <QuantType kType>
__device__ __forceinline__ int32_t BlockDot(const uint32_t* p, const int4& q0, const int4& q1) {
  const int qa[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  int32_t acc = 0;
  if constexpr (kType == QuantType::kQ8_0) {
    RL_UNROLL
    for (int i = 0; i < 8; ++i) acc = __dp4a(static_cast<int>(p[i]), qa[i], acc);
  } else {
    RL_UNROLL
    for (int i = 0; i < 4; ++i) {
      acc = __dp4a(static_cast<int>(p[i] & 0x0f0f0f0fu), qa[i], acc);
      acc = __dp4a(static_cast<int>((p[i] >> 4) & 0x0f0f0f0fu), qa[4 + i], acc);
    }
  }
  return acc;
}

// One block's contribution for one token, step 2 of the algorithm.
template <QuantType kType>
__device__ __forceinline__ float AccumulateBlock(float acc, int32_t dot, float dw, float mw,
                                                 float d, int32_t sum, float s) {
  const int32_t isum = kType == QuantType::kQ4_0 ? dot - 8 * sum : dot;
  acc = fmaf(static_cast<float>(isum), dw * d, acc);
  if constexpr (HasBlockMin(kType)) acc = fmaf(mw, s, acc);
  return acc;
}

// ---- Weight words of the newer types ----
// Q5_0, Q5_1, IQ4_NL and the K-quants are decoded, once per block and row,
// into 8 words of 4 int8 weight values each, in element order, so that a
// token's block dot is 8 plain __dp4a whatever the type.

// Byte k of the result is bit k of x (x < 16) in bit 0: the 4 shifted
// copies x, x << 7, x << 14, x << 21 put bit k at bit 8 k and share no bit
// positions, so the product has no carries.
RL_HD uint32_t SpreadBits4(uint32_t x) { return (x * 0x00204081u) & 0x01010101u; }

// v - c in every byte for bytes v in [0, 128) and c <= 128: with bit 7 set
// first no byte borrows from its neighbour, and flipping it back gives
// v - c mod 256, the int8 two's complement.
RL_HD uint32_t SubBytes(uint32_t v, uint32_t c) {
  return ((v | 0x80808080u) - c * 0x01010101u) ^ 0x80808080u;
}

// Bytes of {y, x} (x bytes 0..3, y bytes 4..7) picked by the 3-bit fields
// of sel (bits 4n..4n+2 for result byte n), as __byte_perm with its
// selector's bit 3 clear.
RL_HD uint32_t BytePerm(uint32_t x, uint32_t y, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(x, y, sel);
#else
  const uint64_t both = (static_cast<uint64_t>(y) << 32) | x;
  uint32_t r = 0;
  for (int n = 0; n < 4; ++n) {
    r |= static_cast<uint32_t>((both >> (8 * ((sel >> (4 * n)) & 7u))) & 0xffu) << (8 * n);
  }
  return r;
#endif
}

// IQ4_NL's table values of the 4 nibbles in bytes of n (each < 16): two
// byte permutes look every nibble up in table values 0..7 and 8..15 (its
// low three bits), and bit 3 picks one of the two per byte.
RL_HD uint32_t IQ4NLLookup(uint32_t n) {
  const uint32_t t = n | (n >> 4);  // byte k: nibble k | nibble k + 1 << 4
  const uint32_t sel = ((t & 0xffu) | ((t >> 8) & 0xff00u)) & 0x7777u;  // nibble k of sel
  const uint32_t low = BytePerm(IQ4NLWord(0), IQ4NLWord(1), sel);
  const uint32_t high = BytePerm(IQ4NLWord(2), IQ4NLWord(3), sel);
  const uint32_t pick = ((n >> 3) & 0x01010101u) * 0xffu;
  return (low & ~pick) | (high & pick);
}

// The 8 weight words of a Q5_0 / Q5_1 / IQ4_NL block from its 4 payload
// words p (byte j: elements j and j + 16) and Q5's qh (bit j: element j's
// fifth bit): words 0..3 are elements 0..15, words 4..7 16..31.
template <QuantType kType>
__device__ __forceinline__ void BlockWords32(const uint32_t (&p)[4], uint32_t qh,
                                             uint32_t (&w)[8]) {
  RL_UNROLL
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = p[i] & 0x0f0f0f0fu;
    const uint32_t hi = (p[i] >> 4) & 0x0f0f0f0fu;
    if constexpr (kType == QuantType::kIQ4_NL) {
      w[i] = IQ4NLLookup(lo);
      w[4 + i] = IQ4NLLookup(hi);
    } else {
      w[i] = lo | (SpreadBits4((qh >> (4 * i)) & 15u) << 4);
      w[4 + i] = hi | (SpreadBits4((qh >> (16 + 4 * i)) & 15u) << 4);
      if constexpr (kType == QuantType::kQ5_0) {  // q5 - 16
        w[i] = SubBytes(w[i], 16);
        w[4 + i] = SubBytes(w[4 + i], 16);
      }
    }
  }
}

// sum_j w_j q_j over 32 elements: w as 8 words, q as two int4 (elements
// 0..15, 16..31), 8 exact __dp4a.
__device__ __forceinline__ int32_t Dot32(const uint32_t (&w)[8], const int4& q0, const int4& q1) {
  const int qa[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  int32_t acc = 0;
  RL_UNROLL
  for (int i = 0; i < 8; ++i) acc = __dp4a(static_cast<int>(w[i]), qa[i], acc);
  return acc;
}

// The cross-lane sums. Each lane stores its kM partial sums in a row of
// shared memory, and after one barrier element e's 32 lane values are read
// down column e and added as a butterfly: lane pairs (l, l + 16) first, then
// + 8, + 4, + 2, + 1, the tree an __shfl_xor_sync reduction would build, in
// 5 dependent adds. Against a shuffle reduce-scatter (kM - kM / 32
// shuffles, a dependent chain of at least 5) the column reads are
// independent and need no select per value; and the order of the additions
// is the same for every chunk size, so a token's y does not depend on the
// tokens computed with it.
template <int kWidth>
__device__ __forceinline__ void TreeLevel(float* v) {
  if constexpr (kWidth >= 1) {
    RL_UNROLL
    for (int i = 0; i < kWidth; ++i) v[i] += v[i + kWidth];
    TreeLevel<kWidth / 2>(v);
  }
}

// Sum of column[l * stride] over lanes l = 0..31 in butterfly order.
__device__ __forceinline__ float LaneTreeSum(const float* column, int stride) {
  float v[32];
  RL_UNROLL
  for (int l = 0; l < 32; ++l) v[l] = column[l * stride];
  TreeLevel<16>(v);
  return v[0];
}

}  // namespace quant_matmul_detail

// Preferred layout, one CTA per row group of 8 rows.
//
// Thread mapping: the CTA's threads (1, 2 or 4 warps) stride over the
// group's block columns, thread i taking b = i, i + blockDim.x, ... A group
// block (the 8 rows' block b) is 9/10/17 contiguous 16-byte units, and
// consecutive block columns are consecutive group blocks, so each lane reads
// its whole group block with aligned uint4 loads and a warp's loads cover
// 32 adjacent group blocks: every byte of the weight is read once from
// memory (a lane's two 16-byte halves of a 32-byte sector meet in L1), and
// all of a lane's loads are independent, in flight together.
// Per token the lane loads the block's 32 q as two int4 (L1-resident: every
// group rereads them) and d (and sum or s) and does 8 exact __dp4a dots per
// row. Registers: the group block (36-68), one token's q (8) and 8 x
// kTokens accumulators. After the block loop the lanes' sums meet in shared
// memory (LaneTreeSum), then, with several warps, the warps' sums, added in
// warp order.
template <QuantType kType, int kTokens>
__global__ void __launch_bounds__(kGroupMaxWarps * 32)
    QuantGemvGroupKernel(const uint8_t* __restrict__ w, int64_t blocks_per_row,
                         Q8ActivationsConst xq, int64_t tokens, float* __restrict__ y,
                         int64_t y_stride) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  using Tr = GemvTraits<kType>;
  constexpr int kRows = kGpuQuantGroupRows;
  constexpr int kM = kRows * kTokens;  // accumulators: acc[r * kTokens + t]
  // Shared memory of the sums, per warp 32 rows (one per lane) of kM.
  // Row stride kM + 4 (% 8 == 4): a quarter warp's float4 stores fall in
  // distinct banks, and a column read (32 threads, consecutive columns) too.
  // Warp regions are kM % 32 floats apart modulo 32 banks, so that when
  // kM < 32 and one warp's threads read columns of several warps' regions
  // those columns do not collide either.
  constexpr int kLaneStride = kM + 4;
  constexpr int kWarpFloats = 32 * kLaneStride + kM % 32;
  alignas(16) __shared__ float lane_sums[kGroupMaxWarps * kWarpFloats];
  __shared__ float warp_sums[kGroupMaxWarps][kM];

  const int64_t group = blockIdx.x;
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int warps = blockDim.x / 32;
  const int64_t cols = blocks_per_row * kQuantBlock;
  const uint8_t* group_w = w + group * blocks_per_row * (Tr::kUnits * 16);

  for (int64_t t0 = 0; t0 < tokens; t0 += kTokens) {
    const int valid = static_cast<int>(Min<int64_t>(kTokens, tokens - t0));
    float acc[kM];
    RL_UNROLL
    for (int i = 0; i < kM; ++i) acc[i] = 0.0f;

    // A block's loads are issued at the end of the previous iteration (or
    // before the loop), so that all 9-17 of them are in flight at once: left
    // to itself, ptxas sinks loads next to their use when registers are
    // plentiful (kTokens <= 2), serializing a block's loads into several
    // round trips to memory, while loads used across the loop's back edge
    // stay where they are. Issued after the dot products, they reuse the
    // registers of the block just used.
    const int64_t stride = blockDim.x;
    int64_t b = tid;
    uint4 unit[Tr::kUnits];
    if (b < blocks_per_row) LoadGroupBlock<Tr::kUnits>(group_w + b * (Tr::kUnits * 16), unit);
    for (; b < blocks_per_row; b += stride) {
      // The 8 rows' f16 scales (and Q4_1 mins), one 16-byte unit each.
      float dw[kRows];
      float mw[kRows];
      {
        const uint32_t sw[4] = {unit[0].x, unit[0].y, unit[0].z, unit[0].w};
        RL_UNROLL
        for (int r = 0; r < kRows; ++r) {
          dw[r] = HalfToFloat(static_cast<uint16_t>(sw[r / 2] >> (16 * (r % 2))));
          mw[r] = 0.0f;
        }
        if constexpr (kType == QuantType::kQ4_1) {
          const uint32_t mn[4] = {unit[1].x, unit[1].y, unit[1].z, unit[1].w};
          RL_UNROLL
          for (int r = 0; r < kRows; ++r) {
            mw[r] = HalfToFloat(static_cast<uint16_t>(mn[r / 2] >> (16 * (r % 2))));
          }
        }
      }
      RL_UNROLL
      for (int t = 0; t < kTokens; ++t) {
        if (t < valid) {
          const int64_t token = t0 + t;
          const int8_t* q = xq.q + token * cols + b * kQuantBlock;
          const int4 q0 = LoadAligned<int4>(q);
          const int4 q1 = LoadAligned<int4>(q + 16);
          const int64_t ib = token * blocks_per_row + b;
          const float d = LoadAligned<float>(xq.d + ib);
          const int32_t sum = kType == QuantType::kQ4_0 ? LoadAligned<int32_t>(xq.sum + ib) : 0;
          const float s = kType == QuantType::kQ4_1 ? LoadAligned<float>(xq.s + ib) : 0.0f;
          RL_UNROLL
          for (int r = 0; r < kRows; ++r) {
            uint32_t p[8];
            RL_UNROLL
            for (int u = 0; u < Tr::kPayloadUnits; ++u) {
              const uint4& pu = unit[Tr::kFields + r * Tr::kPayloadUnits + u];
              p[4 * u + 0] = pu.x;
              p[4 * u + 1] = pu.y;
              p[4 * u + 2] = pu.z;
              p[4 * u + 3] = pu.w;
            }
            const int32_t dot = BlockDot<kType>(p, q0, q1);
            acc[r * kTokens + t] =
                AccumulateBlock<kType>(acc[r * kTokens + t], dot, dw[r], mw[r], d, sum, s);
          }
        }
      }
      if (b + stride < blocks_per_row) {
        LoadGroupBlock<Tr::kUnits>(group_w + (b + stride) * (Tr::kUnits * 16), unit);
      }
    }

    // Lane sums (LaneTreeSum), then, with several warps, the warps' sums in
    // warp order. Every thread takes part in the barriers.
    float* mine = &lane_sums[warp * kWarpFloats + lane * kLaneStride];
    RL_UNROLL
    for (int i = 0; i < kM; i += 4) {
      *reinterpret_cast<float4*>(mine + i) =
          make_float4(acc[i], acc[i + 1], acc[i + 2], acc[i + 3]);
    }
    __syncthreads();
    if (warps == 1) {
      for (int e = lane; e < kM; e += 32) {
        const int t = e % kTokens;
        if (t < valid) {
          y[(t0 + t) * y_stride + group * kRows + e / kTokens] =
              LaneTreeSum(&lane_sums[e], kLaneStride);
        }
      }
    } else {
      for (int j = tid; j < kM * warps; j += blockDim.x) {
        warp_sums[j / kM][j % kM] =
            LaneTreeSum(&lane_sums[j / kM * kWarpFloats + j % kM], kLaneStride);
      }
      __syncthreads();
      if (tid < kM) {
        float sum = warp_sums[0][tid];
        for (int i = 1; i < warps; ++i) sum += warp_sums[i][tid];
        const int t = tid % kTokens;
        if (t < valid) y[(t0 + t) * y_stride + group * kRows + tid / kTokens] = sum;
      }
    }
    __syncthreads();  // the sums' shared memory is reused by the next chunk
  }
}

// Native layout (GGUF blocks in file order), one warp per row.
//
// Thread mapping: a CTA of up to 4 warps takes 4 consecutive rows, warp w
// row blockIdx.x * 4 + w; the 32 lanes stride over the row's blocks, so a
// warp reads 32 consecutive blocks (one contiguous run of 32 x 18..34
// bytes) per sweep. The blocks are only 2-byte aligned (18, 22 and 34
// bytes; Q4_1's 20 and Q5_1's 24 are 4-byte aligned), so, as llama.cpp's
// mmvq does, the payload comes in 2-byte (Q8_0, Q4_0, Q5_0, IQ4_NL) or
// 4-byte (Q4_1, Q5_1) loads. Q5_0, Q5_1 and IQ4_NL blocks are decoded once
// into 8 weight words (BlockWords32) that every token's dot reuses. This is
// the baseline the preferred layout is measured against, the kernel for the
// group layout's N % 8 tail rows, and the only one of Q5_0, Q5_1, IQ4_NL.
template <QuantType kType, int kTokens>
__global__ void __launch_bounds__(kNativeWarps * 32)
    QuantGemvNativeKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t blocks_per_row,
                          Q8ActivationsConst xq, int64_t tokens, float* __restrict__ y,
                          int64_t y_stride) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  using Tr = GemvTraits<kType>;
  constexpr bool kWordsDecoded =
      kType == QuantType::kQ5_0 || kType == QuantType::kQ5_1 || kType == QuantType::kIQ4_NL;
  constexpr int kWords = kType == QuantType::kQ8_0 ? 8 : 4;
  constexpr int kLaneStride = kTokens | 1;
  __shared__ float lane_sums[kNativeWarps][32][kLaneStride];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + warp;
  if (row >= rows) return;  // whole warps: no barrier follows
  const int64_t cols = blocks_per_row * kQuantBlock;
  const uint8_t* row_w = w + row * blocks_per_row * Tr::kBlockBytes;

  for (int64_t t0 = 0; t0 < tokens; t0 += kTokens) {
    const int valid = static_cast<int>(Min<int64_t>(kTokens, tokens - t0));
    float acc[kTokens];
    RL_UNROLL
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;

    for (int64_t b = lane; b < blocks_per_row; b += 32) {
      const uint8_t* block = row_w + b * Tr::kBlockBytes;
      float dw, mw = 0.0f;
      uint32_t qh = 0;
      uint32_t p[kWords];
      if constexpr (kType == QuantType::kQ4_1 || kType == QuantType::kQ5_1) {
        // d and m, (qh,) payload: all 4-byte aligned.
        constexpr int kPayload = kType == QuantType::kQ5_1 ? 8 : 4;
        const uint32_t dm = LoadAligned<uint32_t>(block);
        dw = HalfToFloat(static_cast<uint16_t>(dm));
        mw = HalfToFloat(static_cast<uint16_t>(dm >> 16));
        if constexpr (kType == QuantType::kQ5_1) qh = LoadAligned<uint32_t>(block + 4);
        RL_UNROLL
        for (int i = 0; i < kWords; ++i) p[i] = LoadAligned<uint32_t>(block + kPayload + 4 * i);
      } else {
        // d, (Q5_0's qh,) payload: 2-byte aligned.
        constexpr int kPayload = kType == QuantType::kQ5_0 ? 6 : 2;
        dw = HalfToFloat(LoadAligned<uint16_t>(block));
        if constexpr (kType == QuantType::kQ5_0) {
          qh = static_cast<uint32_t>(LoadAligned<uint16_t>(block + 2)) |
               (static_cast<uint32_t>(LoadAligned<uint16_t>(block + 4)) << 16);
        }
        RL_UNROLL
        for (int i = 0; i < kWords; ++i) {
          p[i] = static_cast<uint32_t>(LoadAligned<uint16_t>(block + kPayload + 4 * i)) |
                 (static_cast<uint32_t>(LoadAligned<uint16_t>(block + kPayload + 2 + 4 * i)) << 16);
        }
      }
      uint32_t words[8];
      if constexpr (kWordsDecoded) BlockWords32<kType>(p, qh, words);
      RL_UNROLL
      for (int t = 0; t < kTokens; ++t) {
        if (t < valid) {
          const int64_t token = t0 + t;
          const int8_t* q = xq.q + token * cols + b * kQuantBlock;
          const int4 q0 = LoadAligned<int4>(q);
          const int4 q1 = LoadAligned<int4>(q + 16);
          const int64_t ib = token * blocks_per_row + b;
          const int32_t sum = kType == QuantType::kQ4_0 ? LoadAligned<int32_t>(xq.sum + ib) : 0;
          const float s = HasBlockMin(kType) ? LoadAligned<float>(xq.s + ib) : 0.0f;
          int32_t dot;
          if constexpr (kWordsDecoded) {
            dot = Dot32(words, q0, q1);
          } else {
            dot = BlockDot<kType>(p, q0, q1);
          }
          acc[t] =
              AccumulateBlock<kType>(acc[t], dot, dw, mw, LoadAligned<float>(xq.d + ib), sum, s);
        }
      }
    }

    // Lane sums through this warp's rows of shared memory (LaneTreeSum);
    // the odd row stride keeps the scalar stores free of bank conflicts.
    RL_UNROLL
    for (int t = 0; t < kTokens; ++t) lane_sums[warp][lane][t] = acc[t];
    __syncwarp();
    if (lane < valid) {
      y[(t0 + lane) * y_stride + row] = LaneTreeSum(&lane_sums[warp][0][lane], kLaneStride);
    }
    __syncwarp();  // reused by the next chunk
  }
}

namespace quant_matmul_detail {

// ---- K-quant super-blocks ----

// One lane's unit of a K-quant super-block (KUnitBlocks): the weights of its
// two Q8 blocks a and b as int8 words in element order, their sub-block
// scales and mins (sc[0], sc[1]: a's elements 0..15 and 16..31, sc[2],
// sc[3]: b's; for sub-blocks of 32, sc[0] and sc[2] alone), and the
// super-block's d and dmin.
struct KUnit {
  uint32_t a[8];
  uint32_t b[8];
  int32_t sc[4];
  int32_t mn[4];
  float d;
  float dmin;
};

// n words from a 2-byte aligned address: the aligned words around it,
// realigned by a funnel shift when it is not 4-byte aligned (the shift is
// the same for all n words, so one SHF each). Reads at most 2 bytes past
// p + 4 n, which the callers keep inside the block.
template <int kN>
__device__ __forceinline__ void LoadWordsAlign2(const uint8_t* p, uint32_t (&out)[kN]) {
  const uint32_t misalign = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) & 2u);
  const uint8_t* base = p - misalign;
  uint32_t w[kN + 1];
  RL_UNROLL
  for (int i = 0; i < kN; ++i) w[i] = LoadAligned<uint32_t>(base + 4 * i);
  w[kN] = misalign != 0 ? LoadAligned<uint32_t>(base + 4 * kN) : 0u;
  RL_UNROLL
  for (int i = 0; i < kN; ++i) {
    out[i] =
        static_cast<uint32_t>(((static_cast<uint64_t>(w[i + 1]) << 32) | w[i]) >> (8 * misalign));
  }
}

// Decodes unit u (0..3) of the super-block at `block` (KUnitBlocks and
// KQuantElement state the layouts). Loads: Q4_K (144 bytes) and Q5_K (176)
// blocks are 16-byte aligned in a row (both multiples of 16), so they come
// in 16-byte loads: the 16-byte header (d, dmin, 12 scale bytes), Q5_K's 32
// qh bytes, the unit's 32 quant bytes. Q2_K's 84 bytes are 4-byte aligned:
// 4-byte loads. Q3_K (110) and Q6_K (210) are only 2-byte aligned: their
// 32-byte runs come as aligned 4-byte words realigned by a funnel shift
// (LoadWordsAlign2), rather than 2-byte loads (twice the instructions) or a
// staging copy through shared memory (a barrier and a second pass over the
// bytes for data each lane reads once). The unit's lanes share the
// header and the qh / hmask bytes through L1; DRAM sees every byte once.
template <QuantType kType>
__device__ __forceinline__ void DecodeKUnit(const uint8_t* block, int u, KUnit& k) {
  if constexpr (kType == QuantType::kQ4_K || kType == QuantType::kQ5_K) {
    constexpr int kQs = kType == QuantType::kQ5_K ? 48 : 16;
    const uint4 head = LoadWeight16(block);
    const uint4 q0 = LoadWeight16(block + kQs + 32 * u);
    const uint4 q1 = LoadWeight16(block + kQs + 32 * u + 16);
    const uint32_t qs[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
    uint32_t qh[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if constexpr (kType == QuantType::kQ5_K) {
      const uint4 h0 = LoadWeight16(block + 16);
      const uint4 h1 = LoadWeight16(block + 32);
      const uint32_t all[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
      RL_UNROLL
      for (int i = 0; i < 8; ++i) qh[i] = all[i];
    }
    k.d = HalfToFloat(static_cast<uint16_t>(head.x));
    k.dmin = HalfToFloat(static_cast<uint16_t>(head.x >> 16));
    KScaleMin(head.y, head.z, head.w, 2 * u, &k.sc[0], &k.mn[0]);
    KScaleMin(head.y, head.z, head.w, 2 * u + 1, &k.sc[2], &k.mn[2]);
    k.sc[1] = k.sc[3] = k.mn[1] = k.mn[3] = 0;
    RL_UNROLL
    for (int i = 0; i < 8; ++i) {
      // Q5_K: bit 2u of qh byte l is element l's fifth bit in sub-block 2u.
      k.a[i] = (qs[i] & 0x0f0f0f0fu) | (((qh[i] >> (2 * u)) & 0x01010101u) << 4);
      k.b[i] = ((qs[i] >> 4) & 0x0f0f0f0fu) | (((qh[i] >> (2 * u + 1)) & 0x01010101u) << 4);
    }
  } else if constexpr (kType == QuantType::kQ2_K) {
    const int half = u >> 1, pair = u & 1;  // Q8 blocks 4 half + 2 pair (+ 1)
    uint32_t qs[8];
    RL_UNROLL
    for (int i = 0; i < 8; ++i) qs[i] = LoadAligned<uint32_t>(block + 16 + 32 * half + 4 * i);
    const uint32_t scales = LoadAligned<uint32_t>(block + 8 * half + 4 * pair);
    const uint32_t dd = LoadAligned<uint32_t>(block + 80);
    k.d = HalfToFloat(static_cast<uint16_t>(dd));
    k.dmin = HalfToFloat(static_cast<uint16_t>(dd >> 16));
    RL_UNROLL
    for (int s = 0; s < 4; ++s) {
      k.sc[s] = static_cast<int32_t>((scales >> (8 * s)) & 15u);
      k.mn[s] = static_cast<int32_t>((scales >> (8 * s + 4)) & 15u);
    }
    RL_UNROLL
    for (int i = 0; i < 8; ++i) {
      k.a[i] = (qs[i] >> (4 * pair)) & 0x03030303u;
      k.b[i] = (qs[i] >> (4 * pair + 2)) & 0x03030303u;
    }
  } else if constexpr (kType == QuantType::kQ3_K) {
    const int half = u >> 1, pair = u & 1;
    uint32_t hm[8], qs[8], sw[3];
    LoadWordsAlign2<8>(block, hm);
    LoadWordsAlign2<8>(block + 32 + 32 * half, qs);
    LoadWordsAlign2<3>(block + 96, sw);
    k.d = HalfToFloat(LoadAligned<uint16_t>(block + 108));
    k.dmin = 0.0f;
    RL_UNROLL
    for (int s = 0; s < 4; ++s) {
      k.sc[s] = Q3KScale(sw[0], sw[1], sw[2], 8 * half + 4 * pair + s) - 32;
      k.mn[s] = 0;
    }
    // Q8 block 4 half + 2 pair + e takes bits 2 (2 pair + e) of qs and bit
    // 4 half + 2 pair + e of hmask; the value is (q2 | high << 2) - 4.
    const int shift = 4 * pair, hbit = 4 * half + 2 * pair;
    RL_UNROLL
    for (int i = 0; i < 8; ++i) {
      k.a[i] =
          SubBytes(((qs[i] >> shift) & 0x03030303u) | (((hm[i] >> hbit) & 0x01010101u) << 2), 4);
      k.b[i] = SubBytes(
          ((qs[i] >> (shift + 2)) & 0x03030303u) | (((hm[i] >> (hbit + 1)) & 0x01010101u) << 2), 4);
    }
  } else {                                // Q6_K
    const int half = u >> 1, k0 = u & 1;  // Q8 blocks 4 half + k0 and + 2
    uint32_t ql[8], qh[8];
    LoadWordsAlign2<8>(block + 64 * half + 32 * k0, ql);
    LoadWordsAlign2<8>(block + 128 + 32 * half, qh);
    const uint8_t* sc = block + 192 + 8 * half + 2 * k0;
    const uint32_t scales = static_cast<uint32_t>(LoadAligned<uint16_t>(sc)) |
                            (static_cast<uint32_t>(LoadAligned<uint16_t>(sc + 4)) << 16);
    k.d = HalfToFloat(LoadAligned<uint16_t>(block + 208));
    k.dmin = 0.0f;
    RL_UNROLL
    for (int s = 0; s < 4; ++s) {
      k.sc[s] = static_cast<int8_t>(static_cast<uint8_t>(scales >> (8 * s)));
      k.mn[s] = 0;
    }
    RL_UNROLL
    for (int i = 0; i < 8; ++i) {
      k.a[i] = SubBytes((ql[i] & 0x0f0f0f0fu) | (((qh[i] >> (2 * k0)) & 0x03030303u) << 4), 32);
      k.b[i] = SubBytes(
          ((ql[i] >> 4) & 0x0f0f0f0fu) | (((qh[i] >> (2 * k0 + 4)) & 0x03030303u) << 4), 32);
    }
  }
}

// One Q8 block's contribution for one token: w its 8 weight words, sc / mn
// its two sub-block scales and mins (sub-blocks of 16: Q2_K, Q3_K, Q6_K) or
// sc[0] / mn[0] (sub-blocks of 32), q0 / q1 the token's 32 q, dx its scale,
// sum its q sum. The integer parts are exact:
//   isum = sum_s sc_s dot_s   (|isum| <= 2^24: exact in float)
//   msum = sum_s mn_s qsum_s  (qsum_s per 16 by __dp4a against 0x01010101,
//                              or the Q8 block's sum per 32)
//   acc = fma(float(isum), d dx, acc); acc = fma(-float(msum), dmin dx, acc)
template <QuantType kType>
__device__ __forceinline__ float AccumulateKBlock(float acc, const uint32_t (&w)[8], int32_t sc0,
                                                  int32_t sc1, int32_t mn0, int32_t mn1, float d,
                                                  float dmin, const int4& q0, const int4& q1,
                                                  float dx, int32_t sum) {
  constexpr bool kSub16 =
      kType == QuantType::kQ2_K || kType == QuantType::kQ3_K || kType == QuantType::kQ6_K;
  constexpr bool kMins =
      kType == QuantType::kQ2_K || kType == QuantType::kQ4_K || kType == QuantType::kQ5_K;
  const int qa[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
  int32_t dot0 = 0, dot1 = 0;
  RL_UNROLL
  for (int i = 0; i < 4; ++i) {
    dot0 = __dp4a(static_cast<int>(w[i]), qa[i], dot0);
    dot1 = __dp4a(static_cast<int>(w[4 + i]), qa[4 + i], dot1);
  }
  int32_t isum, msum = 0;
  if constexpr (kSub16) {
    isum = sc0 * dot0 + sc1 * dot1;
    if constexpr (kMins) {
      int32_t s0 = 0, s1 = 0;
      RL_UNROLL
      for (int i = 0; i < 4; ++i) {
        s0 = __dp4a(0x01010101, qa[i], s0);
        s1 = __dp4a(0x01010101, qa[4 + i], s1);
      }
      msum = mn0 * s0 + mn1 * s1;
    }
  } else {
    isum = sc0 * (dot0 + dot1);
    msum = mn0 * sum;
  }
  acc = fmaf(static_cast<float>(isum), d * dx, acc);
  if constexpr (kMins) acc = fmaf(static_cast<float>(-msum), dmin * dx, acc);
  return acc;
}

}  // namespace quant_matmul_detail

// K-quant weights (native layout: super-blocks of 256 in file order), one
// warp per row.
//
// Thread mapping: as the native kernel, a CTA of up to 4 warps on 4
// consecutive rows; the lanes stride over the row's units (4 per
// super-block, KUnitBlocks), lane l taking units l, l + 32, ..., so a warp
// sweeps 8 consecutive super-blocks (one contiguous run of 8 x 84..210
// bytes) and all 32 lanes have work from K = 2048 up. A lane decodes its
// unit once (DecodeKUnit: 16 weight words, 4 scales and mins) and then, per
// token, reads the two Q8 blocks' 64 q (L1-resident: every row rereads
// them) and does 16 __dp4a (plus 8 for the per-16 sums of Q2_K's mins).
// The sums meet as in the native kernel (LaneTreeSum). The launch bounds'
// minimum of 1 CTA per SM frees ptxas from its occupancy target, which
// otherwise spilled a register of Q2_K at 64 (sm_90a); the kernels use 40
// to 128 registers.
template <QuantType kType, int kTokens>
__global__ void __launch_bounds__(kNativeWarps * 32, 1)
    QuantGemvKQuantKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t blocks_per_row,
                          Q8ActivationsConst xq, int64_t tokens, float* __restrict__ y,
                          int64_t y_stride) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  constexpr int kBlockBytes = BlockBytes(kType);
  constexpr int kLaneStride = kTokens | 1;
  __shared__ float lane_sums[kNativeWarps][32][kLaneStride];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + warp;
  if (row >= rows) return;  // whole warps: no barrier follows
  const int64_t cols = blocks_per_row * kKQuantBlock;
  const int64_t q8_per_row = cols / kQuantBlock;
  const int64_t units = blocks_per_row * 4;
  const uint8_t* row_w = w + row * blocks_per_row * kBlockBytes;

  for (int64_t t0 = 0; t0 < tokens; t0 += kTokens) {
    const int valid = static_cast<int>(Min<int64_t>(kTokens, tokens - t0));
    float acc[kTokens];
    RL_UNROLL
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;

    for (int64_t g = lane; g < units; g += 32) {
      const int64_t sb = g / 4;
      const int u = static_cast<int>(g % 4);
      KUnit k;
      DecodeKUnit<kType>(row_w + sb * kBlockBytes, u, k);
      int32_t ia, ib;
      KUnitBlocks(kType, u, &ia, &ib);
      RL_UNROLL
      for (int t = 0; t < kTokens; ++t) {
        if (t < valid) {
          const int64_t token = t0 + t;
          const int8_t* q = xq.q + token * cols + sb * kKQuantBlock;
          const int64_t first = token * q8_per_row + sb * 8;
          const int4 qa0 = LoadAligned<int4>(q + 32 * ia);
          const int4 qa1 = LoadAligned<int4>(q + 32 * ia + 16);
          const int4 qb0 = LoadAligned<int4>(q + 32 * ib);
          const int4 qb1 = LoadAligned<int4>(q + 32 * ib + 16);
          constexpr bool kSums = kType == QuantType::kQ4_K || kType == QuantType::kQ5_K;
          const int32_t suma = kSums ? LoadAligned<int32_t>(xq.sum + first + ia) : 0;
          const int32_t sumb = kSums ? LoadAligned<int32_t>(xq.sum + first + ib) : 0;
          float a =
              AccumulateKBlock<kType>(acc[t], k.a, k.sc[0], k.sc[1], k.mn[0], k.mn[1], k.d, k.dmin,
                                      qa0, qa1, LoadAligned<float>(xq.d + first + ia), suma);
          acc[t] = AccumulateKBlock<kType>(a, k.b, k.sc[2], k.sc[3], k.mn[2], k.mn[3], k.d, k.dmin,
                                           qb0, qb1, LoadAligned<float>(xq.d + first + ib), sumb);
        }
      }
    }

    RL_UNROLL
    for (int t = 0; t < kTokens; ++t) lane_sums[warp][lane][t] = acc[t];
    __syncwarp();
    if (lane < valid) {
      y[(t0 + lane) * y_stride + row] = LaneTreeSum(&lane_sums[warp][0][lane], kLaneStride);
    }
    __syncwarp();  // reused by the next chunk
  }
}

namespace quant_matmul_detail {

// The launches for tokens [0, tokens) of xq with one chunk size.
template <QuantType kType, int kTokens, class Launcher>
void LaunchQuantGemv(const Launcher& launch, bool group_layout, const uint8_t* w, int64_t rows,
                     int64_t cols, Q8ActivationsConst xq, int64_t tokens, float* y,
                     int64_t y_stride) {
  if constexpr (IsKQuant(kType)) {
    const int64_t warps = Min<int64_t>(kNativeWarps, rows);
    launch(dim3(static_cast<unsigned>(CeilDiv<int64_t>(rows, warps))),
           dim3(static_cast<unsigned>(32 * warps)), 0, QuantGemvKQuantKernel<kType, kTokens>, w,
           rows, cols / kKQuantBlock, xq, tokens, y, y_stride);
  } else {
    const int64_t blocks_per_row = cols / kQuantBlock;
    int64_t native_first = 0;
    if constexpr (kType == QuantType::kQ8_0 || kType == QuantType::kQ4_0 ||
                  kType == QuantType::kQ4_1) {
      if (group_layout) {
        const int64_t groups = rows / kGpuQuantGroupRows;
        if (groups > 0) {
          const int warps = QuantGemvGroupWarps(groups, blocks_per_row);
          launch(dim3(static_cast<unsigned>(groups)), dim3(32 * warps), 0,
                 QuantGemvGroupKernel<kType, kTokens>, w, blocks_per_row, xq, tokens, y, y_stride);
        }
        native_first = groups * kGpuQuantGroupRows;  // the tail rows, native after the groups
      }
    }
    const int64_t native_rows = rows - native_first;
    if (native_rows > 0) {
      const int64_t warps = Min<int64_t>(kNativeWarps, native_rows);
      launch(dim3(static_cast<unsigned>(CeilDiv<int64_t>(native_rows, warps))),
             dim3(static_cast<unsigned>(32 * warps)), 0, QuantGemvNativeKernel<kType, kTokens>,
             w + native_first * blocks_per_row * GemvTraits<kType>::kBlockBytes, native_rows,
             blocks_per_row, xq, tokens, y + native_first, y_stride);
    }
  }
}

template <int kTokens, class Launcher>
void LaunchQuantGemvTyped(const Launcher& launch, QuantType type, bool group_layout,
                          const uint8_t* w, int64_t rows, int64_t cols, Q8ActivationsConst xq,
                          int64_t tokens, float* y) {
  auto run = [&](auto type_constant) {
    constexpr QuantType kType = decltype(type_constant)::value;
    LaunchQuantGemv<kType, kTokens>(launch, group_layout, w, rows, cols, xq, tokens, y, rows);
  };
  switch (type) {
    case QuantType::kQ8_0:
      return run(QuantTypeConstant<QuantType::kQ8_0>{});
    case QuantType::kQ4_0:
      return run(QuantTypeConstant<QuantType::kQ4_0>{});
    case QuantType::kQ4_1:
      return run(QuantTypeConstant<QuantType::kQ4_1>{});
    case QuantType::kQ5_0:
      return run(QuantTypeConstant<QuantType::kQ5_0>{});
    case QuantType::kQ5_1:
      return run(QuantTypeConstant<QuantType::kQ5_1>{});
    case QuantType::kIQ4_NL:
      return run(QuantTypeConstant<QuantType::kIQ4_NL>{});
    case QuantType::kQ2_K:
      return run(QuantTypeConstant<QuantType::kQ2_K>{});
    case QuantType::kQ3_K:
      return run(QuantTypeConstant<QuantType::kQ3_K>{});
    case QuantType::kQ4_K:
      return run(QuantTypeConstant<QuantType::kQ4_K>{});
    case QuantType::kQ5_K:
      return run(QuantTypeConstant<QuantType::kQ5_K>{});
    case QuantType::kQ6_K:
      return run(QuantTypeConstant<QuantType::kQ6_K>{});
  }
}

}  // namespace quant_matmul_detail

// Whether QuantGemvQ8 / QuantMatmul read this type in this layout: every
// type native (row-major blocks), Q8_0 / Q4_0 / Q4_1 also in the quant row
// group layout with G = 8.
RL_HD bool QuantGemvSupported(QuantType type, bool group_layout) {
  return !group_layout || type == QuantType::kQ8_0 || type == QuantType::kQ4_0 ||
         type == QuantType::kQ4_1;
}

// y[tokens, rows] from activations already quantized (QuantizeActivations),
// so several weights that read the same x (Q, K, V; gate and up) quantize it
// once. w: rows x cols in GGUF blocks (cols % BlockElements(type) == 0),
// native, or quant row group with G = 8 where QuantGemvSupported says so
// (REQUIRES; otherwise nothing is launched).
// One launch per kernel: the kernels loop over chunks of
// QuantGemvTokenChunk(tokens) tokens, the last one masked (the masked tokens
// load and compute nothing), so 9 tokens cost two passes over the weight,
// as 8 + 1 would, in one launch.
template <class Launcher>
void QuantGemvQ8(const Launcher& launch, QuantType type, bool group_layout, const uint8_t* w,
                 int64_t rows, int64_t cols, Q8ActivationsConst xq, int64_t tokens, float* y) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  if (rows <= 0 || cols <= 0 || tokens <= 0 || !QuantGemvSupported(type, group_layout)) return;
  switch (QuantGemvTokenChunk(tokens)) {
    case 1:
      return LaunchQuantGemvTyped<1>(launch, type, group_layout, w, rows, cols, xq, tokens, y);
    case 2:
      return LaunchQuantGemvTyped<2>(launch, type, group_layout, w, rows, cols, xq, tokens, y);
    case 4:
      return LaunchQuantGemvTyped<4>(launch, type, group_layout, w, rows, cols, xq, tokens, y);
    default:
      return LaunchQuantGemvTyped<kMaxTokenChunk>(launch, type, group_layout, w, rows, cols, xq,
                                                  tokens, y);
  }
}

// y[tokens, rows] = x[tokens, cols] W^T for a quantized W (rows x cols,
// cols % BlockElements(type) == 0) in the native layout or, when
// group_layout (and QuantGemvSupported), the quant row group layout with
// G = 8. workspace: QuantMatmulWorkspaceBytes(tokens, cols)
// bytes of device memory, 16-byte aligned (256 for best use).
template <class Launcher>
void QuantMatmul(const Launcher& launch, QuantType type, bool group_layout, const uint8_t* w,
                 int64_t rows, int64_t cols, const float* x, int64_t tokens, float* y,
                 void* workspace) {
  if (rows <= 0 || cols <= 0 || tokens <= 0) return;
  const Q8Activations xq = Q8ActivationsIn(workspace, tokens, cols);
  QuantizeActivations(launch, x, tokens, cols, xq);
  QuantGemvQ8(launch, type, group_layout, w, rows, cols, AsConst(xq), tokens, y);
}

// ---- DequantizeToBf16 ----

// Threads of a DequantizeToBf16 CTA (fewer for a small row range).
inline constexpr int kDequantThreads = 256;

// Thread mapping: 4 threads per 32-element block, each producing 8
// consecutive BF16 (one 16-byte store), so a warp writes 512 contiguous
// bytes: 8 blocks of one output row (rows are cols * 2 bytes, a multiple of
// 64). Reads are small (2-byte loads of the thread's 8 payload bytes and
// the block's scale fields, shared by the block's 4 threads through L1);
// the writes, 64 bytes per block against 34 / 18 / 20 read, set the pace. Values are
// DequantElement's d * q (+ m), rounded to nearest-even BF16.
template <QuantType kType, bool kGroup>
__global__ void __launch_bounds__(kDequantThreads)
    DequantizeToBf16Kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t blocks_per_row,
                           int64_t first_row, int64_t row_count, uint16_t* __restrict__ out) {
  using namespace quant_matmul_detail;  // NOLINT(build/namespaces): this header's helpers
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= row_count * blocks_per_row * 4) return;
  const int part = static_cast<int>(index % 4);
  const int64_t block_index = index / 4;
  const int64_t r = block_index / blocks_per_row;
  const int64_t b = block_index % blocks_per_row;
  const int64_t row = first_row + r;
  const BlockPlace place =
      kGroup ? GroupBlockPlace(kType, rows, blocks_per_row, kGpuQuantGroupRows, row, b)
             : NativeBlockPlace(kType, blocks_per_row, row, b);
  const float d = HalfToFloat(LoadAligned<uint16_t>(w + place.field));
  const float m = kType == QuantType::kQ4_1
                      ? HalfToFloat(LoadAligned<uint16_t>(w + place.field + place.field_stride))
                      : 0.0f;
  const int first = 8 * part;  // elements first .. first + 7
  // Q8_0: bytes first.. of the payload; Q4: bytes first % 16.., the low
  // nibbles for elements 0..15, the high ones for 16..31.
  const uint8_t* src = w + place.payload + (kType == QuantType::kQ8_0 ? first : first % 16);
  const int shift = kType != QuantType::kQ8_0 && first >= 16 ? 4 : 0;
  uint32_t packed[4];
  RL_UNROLL
  for (int i = 0; i < 4; ++i) {
    const uint16_t two = LoadAligned<uint16_t>(src + 2 * i);
    uint16_t bits[2];
    RL_UNROLL
    for (int h = 0; h < 2; ++h) {
      const uint32_t byte = (two >> (8 * h)) & 0xffu;
      int32_t qv;
      if constexpr (kType == QuantType::kQ8_0) {
        qv = static_cast<int8_t>(byte);
      } else {
        qv = static_cast<int32_t>((byte >> shift) & 0x0fu) - (kType == QuantType::kQ4_0 ? 8 : 0);
      }
      const float qf = static_cast<float>(qv);
#if defined(__CUDA_ARCH__)
      // Rounded product then sum, as the host reference (no fused multiply-add).
      const float value =
          kType == QuantType::kQ4_1 ? __fadd_rn(__fmul_rn(d, qf), m) : __fmul_rn(d, qf);
#else
      const float value = kType == QuantType::kQ4_1 ? d * qf + m : d * qf;
#endif
      bits[h] = FloatToBf16(value);
    }
    packed[i] = static_cast<uint32_t>(bits[0]) | (static_cast<uint32_t>(bits[1]) << 16);
  }
  uint4* dst =
      reinterpret_cast<uint4*>(out + r * blocks_per_row * kQuantBlock + b * kQuantBlock + first);
#if !defined(__CUDA_ARCH__)
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0) __builtin_trap();
#endif
  *dst = make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// The other types (Q5_0, Q5_1, IQ4_NL; the K-quants): the same thread
// mapping over the output (8 consecutive BF16 per thread, one 16-byte
// store), each value decoded on its own by quant_blocks.cuh's
// DequantElement / KQuantElement (the reference's values, read with byte
// loads, so any block alignment). The block's scale bytes are read again
// per element, from L1; the writes, 512 bytes per 256 elements against
// 84..210 read, still set the pace. Launch bounds of 2 CTAs per SM (at
// most 128 registers): ptxas hoists all 8 elements' byte loads, and its own
// occupancy target (32 or 64 registers) spilled Q3_K and Q6_K.
template <QuantType kType, bool kGroup>
__global__ void __launch_bounds__(kDequantThreads, 2)
    DequantizeToBf16ElementKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols,
                                  int64_t first_row, int64_t row_count,
                                  uint16_t* __restrict__ out) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t per_row = cols / 8;
  if (index >= row_count * per_row) return;
  const int64_t r = index / per_row;
  const int64_t k0 = index % per_row * 8;
  const int64_t row = first_row + r;
  const int64_t blocks_per_row = cols / BlockElements(kType);
  uint32_t packed[4];
  RL_UNROLL
  for (int i = 0; i < 4; ++i) {
    uint16_t bits[2];
    RL_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int64_t k = k0 + 2 * i + h;
      float value;
      if constexpr (kGroup) {
        value = DequantElement(
            kType, w, GroupBlockPlace(kType, rows, blocks_per_row, kGpuQuantGroupRows, row, k / 32),
            static_cast<int32_t>(k % 32));
      } else {
        value = NativeElement(kType, w, blocks_per_row, row, k);
      }
      bits[h] = FloatToBf16(value);
    }
    packed[i] = static_cast<uint32_t>(bits[0]) | (static_cast<uint32_t>(bits[1]) << 16);
  }
  uint4* dst = reinterpret_cast<uint4*>(out + r * cols + k0);
#if !defined(__CUDA_ARCH__)
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0) __builtin_trap();
#endif
  *dst = make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// Rows [first_row, first_row + row_count) of the quantized weight w (rows x
// cols, cols % BlockElements(type) == 0; native, or quant row group G = 8
// for the 32-element types: REQUIRES, a K-quant in the group layout
// launches nothing) as BF16 bits, row-major: out[r * cols + k] =
// FloatToBf16(W[first_row + r, k]). out is 16-byte aligned. A caller bounds
// its workspace by dequantizing a chunk of rows at a time (any row range:
// chunks need not follow groups).
template <class Launcher>
void DequantizeToBf16(const Launcher& launch, QuantType type, bool group_layout, const uint8_t* w,
                      int64_t rows, int64_t cols, int64_t first_row, int64_t row_count,
                      uint16_t* out) {
  if (row_count <= 0 || cols <= 0 || (group_layout && IsKQuant(type))) return;
  const int64_t blocks_per_row = cols / kQuantBlock;
  // 4 threads per 32 elements (8 outputs each) in both kernels.
  const int64_t threads = row_count * blocks_per_row * 4;
  const int64_t per_cta = Min<int64_t>(kDequantThreads, CeilDiv<int64_t>(threads, 32) * 32);
  const dim3 grid(static_cast<unsigned>(CeilDiv<int64_t>(threads, per_cta)));
  const dim3 block(static_cast<unsigned>(per_cta));
  auto run = [&](auto kernel) {
    launch(grid, block, 0, kernel, w, rows, blocks_per_row, first_row, row_count, out);
  };
  auto run_elements = [&](auto kernel) {
    launch(grid, block, 0, kernel, w, rows, cols, first_row, row_count, out);
  };
  switch (type) {
    case QuantType::kQ8_0:
      return group_layout ? run(DequantizeToBf16Kernel<QuantType::kQ8_0, true>)
                          : run(DequantizeToBf16Kernel<QuantType::kQ8_0, false>);
    case QuantType::kQ4_0:
      return group_layout ? run(DequantizeToBf16Kernel<QuantType::kQ4_0, true>)
                          : run(DequantizeToBf16Kernel<QuantType::kQ4_0, false>);
    case QuantType::kQ4_1:
      return group_layout ? run(DequantizeToBf16Kernel<QuantType::kQ4_1, true>)
                          : run(DequantizeToBf16Kernel<QuantType::kQ4_1, false>);
    case QuantType::kQ5_0:
      return group_layout ? run_elements(DequantizeToBf16ElementKernel<QuantType::kQ5_0, true>)
                          : run_elements(DequantizeToBf16ElementKernel<QuantType::kQ5_0, false>);
    case QuantType::kQ5_1:
      return group_layout ? run_elements(DequantizeToBf16ElementKernel<QuantType::kQ5_1, true>)
                          : run_elements(DequantizeToBf16ElementKernel<QuantType::kQ5_1, false>);
    case QuantType::kIQ4_NL:
      return group_layout ? run_elements(DequantizeToBf16ElementKernel<QuantType::kIQ4_NL, true>)
                          : run_elements(DequantizeToBf16ElementKernel<QuantType::kIQ4_NL, false>);
    case QuantType::kQ2_K:
      return run_elements(DequantizeToBf16ElementKernel<QuantType::kQ2_K, false>);
    case QuantType::kQ3_K:
      return run_elements(DequantizeToBf16ElementKernel<QuantType::kQ3_K, false>);
    case QuantType::kQ4_K:
      return run_elements(DequantizeToBf16ElementKernel<QuantType::kQ4_K, false>);
    case QuantType::kQ5_K:
      return run_elements(DequantizeToBf16ElementKernel<QuantType::kQ5_K, false>);
    case QuantType::kQ6_K:
      return run_elements(DequantizeToBf16ElementKernel<QuantType::kQ6_K, false>);
  }
}

}  // namespace relayout::cuda
