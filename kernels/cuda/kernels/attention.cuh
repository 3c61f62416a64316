// Attention over the paged KV cache, and the KV write that fills it: the CUDA
// form of kernels/cpu/attention/kv_write.h and paged_attention.h (same pools,
// same spans, same numerics up to float reassociation).
//
// Pools are [pool_blocks, block_size, kv_heads * head_dim] of F32 or F16
// (RL_KV_*). Position p of a sequence lives in slot
// block_table[p / block_size] * block_size + p % block_size.
//
// Per-call metadata lives in DEVICE memory: the plugin copies the ABI's host
// spans into DeviceAttentionSpan records and every span's block table into
// one flat int32 array (a span names its table by offset), so a decode step
// captured as a CUDA graph replays with new metadata. No grid depends on a
// metadata value: the caller passes bounds (AttentionBounds; max_context
// rounded up to a bucket by the plugin keeps a captured graph valid), and
// blocks past a span's real length exit early, as whole blocks, before any
// __syncthreads.
//
// Three kernels (plus the combine):
//   KvWrite         one block per batch row: finds its span (a parallel scan
//                   of the spans), writes the row's K and V into its slot,
//                   16-byte stores, F16 rounded to nearest even like the CPU.
//   Decode          one query row per span (batch decode), split-K over the
//                   context ("flash decoding", vLLM's paged attention v2): a
//                   block per (span, chunk of a KV head's query heads,
//                   partition of partition_tokens positions). It stages K
//                   tiles in shared memory once for all the query heads of
//                   its GQA group, keeps the partition's scores in shared
//                   memory (an exact softmax per partition), then V tiles;
//                   the partition's max, sum and unnormalized output go to
//                   the workspace and DecodeCombine merges partitions by
//                   log-sum-exp. A span whose context fits one partition is
//                   written straight to out and the combine skips it.
//   Prefill         flash attention in SIMT (no tensor cores here: those
//                   paths stay behind cuBLASLt): a block per (query tile of a
//                   span, chunk of a KV head's query heads). The tile's query
//                   vectors are (row, head) pairs of one GQA group, so each
//                   K/V tile staged in shared memory serves every head that
//                   reads it. Online softmax (running max and sum) in
//                   registers, causal mask by position, so a span continuing
//                   a cached prefix (start_position > 0) is the same code.
// Attention() picks: decode when every span has at most one row
// (max_rows_per_span == 1); otherwise prefill for the spans of two or more
// rows and decode for the single-row spans of the same batch (a mixed
// chunked-prefill batch), two launches that each skip the other's spans.
//
// Numerics: float throughout, softmax with a running (prefill) or per
// partition (decode) maximum, exp by expf (not the approximate __expf).
// Against the CPU kernel the results differ only by the order of float sums
// (dot products of head_dim terms, sums over the context), see
// attention_test.cc for the tolerance.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/device_abi.h"

namespace relayout::cuda {

// One span of a batch, in device memory: rows first_row .. first_row + rows
// - 1 of q (and k, v for KvWrite) at positions start_position .. +rows - 1;
// its block table is block_tables[block_table_offset ..] and covers
// positions [0, start_position + rows).
struct DeviceAttentionSpan {
  int64_t first_row;
  int64_t rows;
  int64_t start_position;
  int64_t block_table_offset;
};

// Bounds the launches are sized by (never the metadata itself). Each must be
// >= the real value of every call replayed under them:
//   num_spans          spans in the device array (exact: all are read);
//   total_rows         rows of q / out (KvWrite's grid);
//   max_rows_per_span  >= every span's rows (prefill's grid);
//   max_context        >= every single-row span's start_position + 1, and
//                      at least 1 (decode's split count).
struct AttentionBounds {
  int64_t num_spans;
  int64_t total_rows;
  int64_t max_rows_per_span;
  int64_t max_context;
};

inline constexpr int kAttentionThreads = 128;
// Decode partition: tokens per split. 256 keeps a batch-1 decode of a few
// thousand tokens spread over the SMs; ChooseDecodePartitionTokens adapts.
inline constexpr int32_t kDefaultDecodePartitionTokens = 256;
inline constexpr int32_t kMaxDecodePartitionTokens = 2048;  // scores in shared memory
// Query heads one decode block serves (its scores are heads x partition).
inline constexpr int kMaxDecodeHeadsPerBlock = 8;

// Head dims with an instantiation: powers of two (each lane group of the
// kernels splits a head vector in 16-byte pieces over 2^k lanes).
RL_HD bool AttentionHeadDimSupported(int32_t head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128 ||
         head_dim == 256;
}

// Partitions of the decode split: ceil(max_context / partition_tokens).
RL_HD int64_t DecodeSplits(int64_t max_context, int32_t partition_tokens) {
  if (max_context < 1) return 1;
  return CeilDiv(max_context, static_cast<int64_t>(partition_tokens));
}

// The largest divisor of n that is <= limit (1 at least): how many query
// heads of a GQA group one block takes, so the group splits evenly.
RL_HD int32_t LargestDivisorAtMost(int32_t n, int32_t limit) {
  for (int32_t d = Min(n, limit); d > 1; --d) {
    if (n % d == 0) return d;
  }
  return 1;
}

// A partition size for the plugin: the largest power of two in [64, 512]
// that still gives about two decode blocks per SM (a small batch with long
// contexts wants more splits; a large batch fills the GPU with 512).
RL_HD int32_t ChooseDecodePartitionTokens(int64_t num_spans, int32_t num_kv_heads,
                                          int64_t max_context, int32_t sm_count) {
  int32_t p = 512;
  while (p > 64 &&
         num_spans * num_kv_heads * DecodeSplits(max_context, p) < 2 * int64_t{sm_count}) {
    p /= 2;
  }
  return p;
}

// Device scratch Attention() needs: the decode partitions' outputs, maxima
// and sums, [num_spans][num_heads][splits] x (head_dim + 2) floats; 0 when
// one partition covers max_context (no combine).
RL_HD uint64_t AttentionWorkspaceBytes(const rl_attention_params& p, const AttentionBounds& b,
                                       int32_t partition_tokens = kDefaultDecodePartitionTokens) {
  const int64_t splits = DecodeSplits(b.max_context, partition_tokens);
  if (splits <= 1) return 0;
  return static_cast<uint64_t>(b.num_spans) * static_cast<uint64_t>(p.num_heads) *
         static_cast<uint64_t>(splits) * (static_cast<uint64_t>(p.head_dim) + 2) * sizeof(float);
}

namespace attention_internal {

inline constexpr unsigned kFullMask = 0xffffffffu;

// 16-byte and float4 accesses. The device does them as one vector load or
// store; the host (the harness) copies bytes, which is what a vector access
// means there and keeps the tests free of aliasing questions.
RL_HD uint4 Load16(const void* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint4*>(p);
#else
  uint4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}
RL_HD void Store16(void* p, const uint4& v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint4*>(p) = v;
#else
  std::memcpy(p, &v, sizeof v);
#endif
}
RL_HD float4 LoadFloat4(const float* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const float4*>(p);
#else
  float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}
RL_HD void StoreFloat4(float* p, const float4& v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<float4*>(p) = v;
#else
  std::memcpy(p, &v, sizeof v);
#endif
}

// kN consecutive pool elements (kN a multiple of a 16-byte chunk: 4 floats
// or 8 halves), 16-byte aligned, widened to floats. F16 widening is exact.
template <int kN>
RL_HD void WidenKv(const float* src, float* dst) {
  RL_UNROLL
  for (int i = 0; i < kN / 4; ++i) {
    const float4 f = LoadFloat4(src + 4 * i);
    dst[4 * i + 0] = f.x;
    dst[4 * i + 1] = f.y;
    dst[4 * i + 2] = f.z;
    dst[4 * i + 3] = f.w;
  }
}
template <int kN>
RL_HD void WidenKv(const uint16_t* src, float* dst) {
  RL_UNROLL
  for (int i = 0; i < kN / 8; ++i) {
    const uint4 u = Load16(src + 8 * i);
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
    RL_UNROLL
    for (int k = 0; k < 4; ++k) {  // little-endian: the lower half is the earlier element
      dst[8 * i + 2 * k] = HalfToFloat(static_cast<uint16_t>(w[k] & 0xffffu));
      dst[8 * i + 2 * k + 1] = HalfToFloat(static_cast<uint16_t>(w[k] >> 16));
    }
  }
}

// 8 floats into 8 pool elements (16-byte aligned): copied, or rounded to
// nearest even halves (FloatToHalf, as the CPU's NarrowF32ToF16).
RL_HD void NarrowStore8(const float* f, float* dst) {
  StoreFloat4(dst, make_float4(f[0], f[1], f[2], f[3]));
  StoreFloat4(dst + 4, make_float4(f[4], f[5], f[6], f[7]));
}
RL_HD void NarrowStore8(const float* f, uint16_t* dst) {
  unsigned w[4];
  RL_UNROLL
  for (int k = 0; k < 4; ++k) {
    w[k] = static_cast<unsigned>(FloatToHalf(f[2 * k])) |
           (static_cast<unsigned>(FloatToHalf(f[2 * k + 1])) << 16);
  }
  Store16(dst, make_uint4(w[0], w[1], w[2], w[3]));
}
RL_HD float NarrowOne(float f, const float*) { return f; }
RL_HD uint16_t NarrowOne(float f, const uint16_t*) { return FloatToHalf(f); }

// Element offset of position `pos`'s row (its kv head 0) in a pool.
RL_HD int64_t SlotOffset(const int32_t* table, int32_t pos, int32_t block_size, int32_t kv_dim) {
  const int32_t block = table[pos / block_size];
  return (static_cast<int64_t>(block) * block_size + pos % block_size) * kv_dim;
}

// Reduction over a whole block (blockDim.x a multiple of 32); every thread
// gets the result. red: 32 floats of shared memory, free on entry and exit.
template <bool kMax>
__device__ __forceinline__ float BlockReduce(float v, float* red) {
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(kFullMask, v, off);
    v = kMax ? fmaxf(v, o) : v + o;
  }
  const int warp = static_cast<int>(threadIdx.x) / 32;
  if (threadIdx.x % 32 == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w)
    v = kMax ? fmaxf(v, red[w]) : v + red[w];
  __syncthreads();
  return v;
}

// ---------------------------------------------------------------- KvWrite --

struct KvWriteArgs {
  const float* k;
  const float* v;
  const DeviceAttentionSpan* spans;
  const int32_t* block_tables;
  void* k_pool;
  void* v_pool;
  int64_t num_spans;
  int64_t pool_blocks;
  int32_t kv_dim;
  int32_t block_size;
  int32_t vector;  // 1: kv_dim % 8 == 0 and every pointer 16-byte aligned
};

// One block per batch row (grid.x = total_rows bound). The block's threads
// scan the spans for the one holding the row (no order assumed; a row in no
// span is not written), then stride over the row's kv_dim elements, 8 at a
// time: two float4 loads of k (and of v), one 16-byte (F16) or two (F32)
// stores, consecutive threads on consecutive chunks. A block id outside
// [0, pool_blocks) writes nothing (the plugin checks tables on the host; this
// keeps a bad table from writing over other memory).
template <class KvT>
__global__ void __launch_bounds__(kAttentionThreads) KvWriteKernel(KvWriteArgs a) {
  __shared__ int64_t span_of_row;
  const int64_t row = blockIdx.x;
  if (threadIdx.x == 0) span_of_row = -1;
  __syncthreads();
  for (int64_t s = threadIdx.x; s < a.num_spans; s += blockDim.x) {
    const DeviceAttentionSpan sp = a.spans[s];
    if (row >= sp.first_row && row < sp.first_row + sp.rows) span_of_row = s;
  }
  __syncthreads();
  const int64_t s = span_of_row;
  if (s < 0) return;
  const DeviceAttentionSpan sp = a.spans[s];
  const int64_t pos = sp.start_position + (row - sp.first_row);
  const int32_t block = a.block_tables[sp.block_table_offset + pos / a.block_size];
  if (block < 0 || block >= a.pool_blocks) return;
  const int64_t slot = (static_cast<int64_t>(block) * a.block_size + pos % a.block_size) * a.kv_dim;
  const float* k_row = a.k + row * a.kv_dim;
  const float* v_row = a.v + row * a.kv_dim;
  KvT* k_dst = static_cast<KvT*>(a.k_pool) + slot;
  KvT* v_dst = static_cast<KvT*>(a.v_pool) + slot;
  if (a.vector != 0) {
    for (int32_t c = threadIdx.x; c < a.kv_dim / 8; c += blockDim.x) {
      float kf[8], vf[8];
      WidenKv<8>(k_row + 8 * c, kf);
      WidenKv<8>(v_row + 8 * c, vf);
      NarrowStore8(kf, k_dst + 8 * c);
      NarrowStore8(vf, v_dst + 8 * c);
    }
  } else {
    for (int32_t i = threadIdx.x; i < a.kv_dim; i += blockDim.x) {
      k_dst[i] = NarrowOne(k_row[i], k_dst);
      v_dst[i] = NarrowOne(v_row[i], v_dst);
    }
  }
}

// --------------------------------------------------------- attention args --

struct AttentionArgs {
  const float* q;
  const DeviceAttentionSpan* spans;
  const int32_t* block_tables;
  const void* k_pool;
  const void* v_pool;
  float* out;
  float* ws_out;  // decode partitions: [span][head][split][head_dim]
  float* ws_max;  // [span][head][split]
  float* ws_sum;
  int32_t num_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t block_size;
  float scale;
  int32_t heads_per_block;   // query heads of one GQA group a block serves
  int32_t rows_per_block;    // prefill: span rows per query tile
  int32_t min_rows;          // prefill: spans with fewer rows are decode's
  int32_t partition_tokens;  // decode
  int32_t splits;            // decode: grid.z
};

// ----------------------------------------------------------------- decode --

// Thread layout of the decode block: groups of kLanes consecutive lanes each
// hold one head vector, kVec elements (16 bytes of the pool, or head_dim / 32
// when that is more) per lane, so a group reads a token's K or V row of one
// KV head with one 16-byte access per lane; a dot product is kVec FMAs per
// lane and a log2(kLanes)-step shuffle. Groups are (head, token lane) pairs:
// head h of the block's heads, token lane z of kGroups / heads.
template <int kHeadDim, class KvT>
struct DecodeTraits {
  static constexpr int kThreads = kAttentionThreads;
  static constexpr int kChunk = 16 / static_cast<int>(sizeof(KvT));  // elements per 16 bytes
  static constexpr int kVec = kHeadDim / 32 > kChunk ? kHeadDim / 32 : kChunk;
  static constexpr int kLanes = kHeadDim / kVec;
  static constexpr int kGroups = kThreads / kLanes;
  static constexpr int kMaxHeads =
      kGroups < kMaxDecodeHeadsPerBlock ? kGroups : kMaxDecodeHeadsPerBlock;
  // About 16 KiB of K (or V) per tile: enough 16-byte loads in flight per
  // thread (8 for F16 at head_dim 128) while several blocks share an SM.
  static constexpr int kTileTokensRaw = 16384 / (kHeadDim * static_cast<int>(sizeof(KvT)));
  static constexpr int kTileTokens =
      kTileTokensRaw < 16 ? 16 : (kTileTokensRaw > 64 ? 64 : kTileTokensRaw);
  static constexpr int kChunksPerRow = kHeadDim / kChunk;
  static constexpr int kUnroll = 4;  // tokens per group per step: independent shuffle chains
  // Shared memory: the K/V tile, reused at the end for the token lanes'
  // partial outputs [token lane][head][head_dim] floats (at most kGroups
  // vectors), then the scores [heads][partition] and the heads' max and sum.
  static constexpr size_t kTileBytes = static_cast<size_t>(kTileTokens) * kHeadDim * sizeof(KvT);
  static constexpr size_t kMergeBytes = static_cast<size_t>(kGroups) * kHeadDim * sizeof(float);
  static constexpr size_t kRegionBytes = kTileBytes > kMergeBytes ? kTileBytes : kMergeBytes;
  static_assert(kHeadDim % kVec == 0 && kLanes >= 1 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0,
                "head_dim must be a power of two from 8 to 256");
  static_assert(kVec % kChunk == 0 && kRegionBytes % 16 == 0, "16-byte pieces");
};

RL_HD int32_t DecodeScoreStride(int32_t partition_tokens) { return (partition_tokens + 3) / 4 * 4; }

template <int kHeadDim, class KvT>
RL_HD size_t DecodeSharedBytes(int32_t heads_per_block, int32_t partition_tokens) {
  using T = DecodeTraits<kHeadDim, KvT>;
  return T::kRegionBytes + sizeof(float) * static_cast<size_t>(heads_per_block) *
                               (static_cast<size_t>(DecodeScoreStride(partition_tokens)) + 2);
}

// Copies K or V rows of positions [t0, t0 + n) of one KV head into the tile
// ([token][head_dim] pool elements), 16 bytes per thread per step.
template <int kHeadDim, class KvT>
__device__ __forceinline__ void StageDecodeTile(const KvT* pool, const int32_t* table,
                                                int32_t block_size, int32_t kv_dim, int32_t kv_head,
                                                int32_t t0, int32_t n, KvT* tile) {
  using T = DecodeTraits<kHeadDim, KvT>;
  for (int32_t c = threadIdx.x; c < n * T::kChunksPerRow; c += T::kThreads) {
    const int32_t j = c / T::kChunksPerRow;
    const int32_t part = c % T::kChunksPerRow;
    const KvT* src = pool + SlotOffset(table, t0 + j, block_size, kv_dim) +
                     static_cast<int64_t>(kv_head) * kHeadDim + part * T::kChunk;
    Store16(tile + j * kHeadDim + part * T::kChunk, Load16(src));
  }
}

// Grid (num_spans, num_heads / heads_per_block, splits), kThreads threads.
// Block (s, y, z): span s's query row, heads y * heads_per_block .. + heads
// (all of one KV head's group), positions [z * P, min((z + 1) * P, context)).
//   1. scores: for each K tile, group (h, z) computes q_h . k_j * scale for
//      tokens j = z, z + lanes, ... into scores[h][j] (one K load serves
//      all heads: the tile is in shared memory);
//   2. softmax per head (a warp per head): max, exp in place, sum;
//   3. for each V tile, group (h, z) accumulates p_hj * v_j over its tokens
//      in registers (kVec floats per lane), then the token lanes' partials
//      are summed through shared memory.
// A span whose context fits one partition writes out = o / sum; otherwise
// the partition's (o, max, sum) go to the workspace for DecodeCombine.
template <int kHeadDim, class KvT>
// 8 resident blocks per SM (32 warps, at most 64 registers a thread; about
// 20 KiB of shared memory each at P = 256): decode is bound by memory, and
// without the occupancy target ptxas picks 40 registers and spills one.
__global__ void __launch_bounds__(kAttentionThreads, 8) DecodeAttentionKernel(AttentionArgs a) {
  using T = DecodeTraits<kHeadDim, KvT>;
  const DeviceAttentionSpan span = a.spans[blockIdx.x];
  if (span.rows != 1) return;  // prefill's (or empty)
  const int32_t context = static_cast<int32_t>(span.start_position) + 1;
  const int32_t begin = static_cast<int32_t>(blockIdx.z) * a.partition_tokens;
  if (begin >= context) return;  // past this span's context: the whole block
  const int32_t end = Min(context, begin + a.partition_tokens);
  const bool direct = context <= a.partition_tokens;

  const int32_t gc = a.heads_per_block;
  const int32_t head0 = static_cast<int32_t>(blockIdx.y) * gc;
  const int32_t kv_head = head0 / (a.num_heads / a.num_kv_heads);
  const int32_t kv_dim = a.num_kv_heads * kHeadDim;
  const int tid = threadIdx.x;
  const int lane = tid % T::kLanes;  // position within the head vector
  const int group = tid / T::kLanes;
  const int h = group % gc;
  const int z = group / gc;
  const int nz = T::kGroups / gc;  // token lanes per head
  const bool active = z < nz;
  const int32_t stride = DecodeScoreStride(a.partition_tokens);

  RL_DYNAMIC_SHARED(unsigned char, smem);
  KvT* tile = reinterpret_cast<KvT*>(smem);
  float* merge = reinterpret_cast<float*>(smem);
  float* scores = reinterpret_cast<float*>(smem + T::kRegionBytes);
  float* head_max = scores + gc * stride;
  float* head_sum = head_max + gc;
  const int32_t* table = a.block_tables + span.block_table_offset;
  const KvT* k_pool = static_cast<const KvT*>(a.k_pool);
  const KvT* v_pool = static_cast<const KvT*>(a.v_pool);

  float q[T::kVec];
  WidenKv<T::kVec>(
      a.q + span.first_row * a.num_heads * kHeadDim + (head0 + h) * kHeadDim + lane * T::kVec, q);

  // 1. Scores.
  for (int32_t t0 = begin; t0 < end; t0 += T::kTileTokens) {
    const int32_t n = Min(T::kTileTokens, end - t0);
    __syncthreads();  // the previous tile is consumed
    StageDecodeTile<kHeadDim>(k_pool, table, a.block_size, kv_dim, kv_head, t0, n, tile);
    __syncthreads();
    // Every thread runs the same trip count (n is the block's), so the
    // shuffles below always have the whole warp.
    for (int32_t j0 = 0; j0 < n; j0 += T::kUnroll * nz) {
      // Branch-free: a lane past the tile (or of an idle group) reads row 0,
      // which is staged, and drops the result, so the warp stays converged
      // around the shuffles.
      float dot[T::kUnroll];
      RL_UNROLL
      for (int u = 0; u < T::kUnroll; ++u) {
        const int32_t j = j0 + z + u * nz;
        const bool use = active && j < n;
        float k[T::kVec];
        WidenKv<T::kVec>(tile + (use ? j : 0) * kHeadDim + lane * T::kVec, k);
        float d = 0.0f;
        RL_UNROLL
        for (int e = 0; e < T::kVec; ++e) d = fmaf(q[e], k[e], d);
        dot[u] = use ? d : 0.0f;
      }
      RL_UNROLL
      for (int off = T::kLanes / 2; off > 0; off >>= 1) {
        RL_UNROLL
        for (int u = 0; u < T::kUnroll; ++u) dot[u] += __shfl_xor_sync(kFullMask, dot[u], off);
      }
      if (lane == 0) {
        RL_UNROLL
        for (int u = 0; u < T::kUnroll; ++u) {
          const int32_t j = j0 + z + u * nz;
          if (active && j < n) scores[h * stride + (t0 - begin) + j] = dot[u] * a.scale;
        }
      }
    }
  }
  __syncthreads();

  // 2. Softmax of the partition, a warp per head.
  const int32_t count = end - begin;
  for (int hh = tid / 32; hh < gc; hh += T::kThreads / 32) {
    float* row = scores + hh * stride;
    float m = -INFINITY;
    for (int32_t i = tid % 32; i < count; i += 32) m = fmaxf(m, row[i]);
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(kFullMask, m, off));
    float sum = 0.0f;
    for (int32_t i = tid % 32; i < count; i += 32) {
      const float p = expf(row[i] - m);
      row[i] = p;
      sum += p;
    }
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kFullMask, sum, off);
    if (tid % 32 == 0) {
      head_max[hh] = m;
      head_sum[hh] = sum;
    }
  }
  __syncthreads();

  // 3. p . V.
  float o[T::kVec];
  RL_UNROLL
  for (int e = 0; e < T::kVec; ++e) o[e] = 0.0f;
  for (int32_t t0 = begin; t0 < end; t0 += T::kTileTokens) {
    const int32_t n = Min(T::kTileTokens, end - t0);
    __syncthreads();
    StageDecodeTile<kHeadDim>(v_pool, table, a.block_size, kv_dim, kv_head, t0, n, tile);
    __syncthreads();
    // Uniform and branch-free like the scores: past the tile (or in an idle
    // group) a lane reads row 0 with weight 0.
    const float* p = scores + h * stride + (t0 - begin);
    for (int32_t j0 = 0; j0 < n; j0 += nz) {
      const int32_t j = j0 + z;
      const bool use = active && j < n;
      float v[T::kVec];
      WidenKv<T::kVec>(tile + (use ? j : 0) * kHeadDim + lane * T::kVec, v);
      const float pj = use ? p[j] : 0.0f;
      RL_UNROLL
      for (int e = 0; e < T::kVec; ++e) o[e] = fmaf(pj, v[e], o[e]);
    }
  }
  __syncthreads();  // the tile becomes the merge buffer
  if (active) {
    float* dst = merge + (z * gc + h) * kHeadDim + lane * T::kVec;
    RL_UNROLL
    for (int e = 0; e < T::kVec; e += 4) {
      StoreFloat4(dst + e, make_float4(o[e], o[e + 1], o[e + 2], o[e + 3]));
    }
  }
  __syncthreads();
  const int64_t span_head0 = static_cast<int64_t>(blockIdx.x) * a.num_heads + head0;
  for (int idx = tid; idx < gc * kHeadDim; idx += T::kThreads) {
    const int hh = idx / kHeadDim;
    const int d = idx % kHeadDim;
    float acc = 0.0f;
    for (int zz = 0; zz < nz; ++zz) acc += merge[(zz * gc + hh) * kHeadDim + d];
    if (direct) {
      a.out[span.first_row * a.num_heads * kHeadDim + (head0 + hh) * kHeadDim + d] =
          acc * (1.0f / head_sum[hh]);
    } else {
      const int64_t at = (span_head0 + hh) * a.splits + blockIdx.z;
      a.ws_out[at * kHeadDim + d] = acc;
      if (d == 0) {
        a.ws_max[at] = head_max[hh];
        a.ws_sum[at] = head_sum[hh];
      }
    }
  }
}

// Grid (num_spans, num_heads), kThreads threads, shared (32 + splits)
// floats. Merges a span's partitions: M = max_s m_s, w_s = exp(m_s - M),
// out = sum_s w_s o_s / sum_s w_s l_s. Spans written directly (one
// partition) and prefill spans are skipped.
__global__ void __launch_bounds__(kAttentionThreads) DecodeCombineKernel(AttentionArgs a) {
  const DeviceAttentionSpan span = a.spans[blockIdx.x];
  if (span.rows != 1) return;
  const int32_t context = static_cast<int32_t>(span.start_position) + 1;
  const int32_t n = Min(CeilDiv(context, a.partition_tokens), a.splits);
  if (n <= 1) return;
  RL_DYNAMIC_SHARED(float, smem);
  float* red = smem;
  float* weight = smem + 32;
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * a.num_heads + blockIdx.y) * a.splits;
  float m = -INFINITY;
  for (int32_t s = threadIdx.x; s < n; s += blockDim.x) m = fmaxf(m, a.ws_max[base + s]);
  m = BlockReduce<true>(m, red);
  float l = 0.0f;
  for (int32_t s = threadIdx.x; s < n; s += blockDim.x) {
    const float w = expf(a.ws_max[base + s] - m);
    weight[s] = w;
    l += w * a.ws_sum[base + s];
  }
  l = BlockReduce<false>(l, red);  // its barrier also publishes weight[]
  const float inv = 1.0f / l;
  float* out = a.out + span.first_row * a.num_heads * a.head_dim +
               static_cast<int64_t>(blockIdx.y) * a.head_dim;
  for (int32_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int32_t s = 0; s < n; ++s) acc += weight[s] * a.ws_out[(base + s) * a.head_dim + d];
    out[d] = acc * inv;
  }
}

// ---------------------------------------------------------------- prefill --

// Thread layout of the prefill block (128 threads): thread t is column
// thread ct = t % kColThreads of row group rg = t / kColThreads. The block's
// kQueries query vectors (rows x heads of one GQA group) are split among the
// row groups, kRowsPerThread each, strided: vector rg + i * kRowGroups. For
// a K/V tile of kKvTile positions a thread computes the scores of its
// vectors against positions ct + j * kColThreads, and accumulates output
// dims 4 * (ct + k * kColThreads) .. + 3. The strides make shared memory
// reads conflict-free: lanes of a warp read distinct rows (row strides of
// head_dim + 4 floats shift banks by 4) or consecutive 16-byte pieces, and
// the lanes that share a row read the same address (broadcast). The
// kColThreads lanes of a row group are consecutive, so a row's max and sum
// reduce by xor shuffles within them.
template <int kHeadDim>
struct PrefillTraits {
  static constexpr int kThreads = kAttentionThreads;
  static constexpr int kRowsPerThread = 4;
  static constexpr int kColThreads = kHeadDim >= 256 ? 16 : (kHeadDim / 4 < 8 ? kHeadDim / 4 : 8);
  static constexpr int kRowGroups = kThreads / kColThreads;
  static constexpr int kQueries = kRowGroups * kRowsPerThread;
  static constexpr int kKvTile = 32;
  static constexpr int kColsPerThread = kKvTile / kColThreads;
  static constexpr int kDimChunks = kHeadDim / 4 / kColThreads;  // float4s of output per row
  static constexpr int kStride = kHeadDim + 4;                   // Q, K, V rows (floats)
  // P rows: kKvTile + 4 floats. The P . V reads (one column, a warp's
  // 32 / kColThreads rows) fall on distinct banks; the stores conflict 2-way,
  // 16 per tile, which buys the third block per SM at head_dim 128
  // (76,800 bytes: 3 x (76,800 + 1 KiB reserved) = 228 KiB).
  static constexpr int kPStride = kKvTile + 4;
  static constexpr size_t kSharedBytes =
      sizeof(float) *
      (static_cast<size_t>(kQueries) * kStride + 2 * static_cast<size_t>(kKvTile) * kStride +
       static_cast<size_t>(kQueries) * kPStride);
  static_assert(kColThreads >= 1 && kColThreads <= 32 && kKvTile % kColThreads == 0 &&
                    kDimChunks >= 1 && kDimChunks * 4 * kColThreads == kHeadDim,
                "head_dim must be a power of two from 8 to 256");
};

// Grid (ceil(max_rows_per_span / rows_per_block), num_spans, num_heads /
// heads_per_block), 128 threads, PrefillTraits::kSharedBytes. Block (x, s,
// y): span s's rows x * R .. + R - 1 (R = rows_per_block) for heads y * G' ..
// + G' - 1 (G' = heads_per_block, R * G' <= kQueries): query vector
// r = row * G' + head, contiguous in q. Positions 0 .. the tile's last row's
// position stream through in K/V tiles; each row sees positions <= its own.
template <int kHeadDim, class KvT>
__global__ void __launch_bounds__(kAttentionThreads) PrefillAttentionKernel(AttentionArgs a) {
  using T = PrefillTraits<kHeadDim>;
  constexpr int kTm = T::kRowsPerThread;
  constexpr int kTn = T::kColsPerThread;
  constexpr int kCt = T::kColThreads;
  constexpr int kChunk = 16 / static_cast<int>(sizeof(KvT));
  constexpr int kChunksPerRow = kHeadDim / kChunk;
  const DeviceAttentionSpan span = a.spans[blockIdx.y];
  if (span.rows < a.min_rows) return;  // decode's (or empty)
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * a.rows_per_block;
  if (row0 >= span.rows) return;  // past this span's rows: the whole block
  const int32_t gc = a.heads_per_block;
  const int32_t tile_rows = static_cast<int32_t>(Min<int64_t>(a.rows_per_block, span.rows - row0));
  const int32_t live = tile_rows * gc;  // query vectors [0, live) are real
  const int32_t head0 = static_cast<int32_t>(blockIdx.z) * gc;
  const int32_t kv_head = head0 / (a.num_heads / a.num_kv_heads);
  const int32_t q_dim = a.num_heads * kHeadDim;
  const int32_t kv_dim = a.num_kv_heads * kHeadDim;
  const int32_t first_pos = static_cast<int32_t>(span.start_position + row0);
  const int32_t kv_end = first_pos + tile_rows;  // positions [0, kv_end) are read
  const int tid = threadIdx.x;
  const int ct = tid % kCt;
  const int rg = tid / kCt;

  RL_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                           // [kQueries][kStride]
  float* ks = qs + T::kQueries * T::kStride;  // [kKvTile][kStride]
  float* vs = ks + T::kKvTile * T::kStride;
  float* ps = vs + T::kKvTile * T::kStride;  // [kQueries][kPStride]
  const int32_t* table = a.block_tables + span.block_table_offset;
  const KvT* k_pool = static_cast<const KvT*>(a.k_pool);
  const KvT* v_pool = static_cast<const KvT*>(a.v_pool);

  // The query tile, float4s; vectors past the span's rows are zero.
  for (int c = tid; c < T::kQueries * (kHeadDim / 4); c += T::kThreads) {
    const int r = c / (kHeadDim / 4);
    const int part = c % (kHeadDim / 4);
    float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < live) {
      const int lr = r / gc;
      const int hl = r - lr * gc;
      f = LoadFloat4(a.q + (span.first_row + row0 + lr) * q_dim + (head0 + hl) * kHeadDim +
                     part * 4);
    }
    StoreFloat4(qs + r * T::kStride + part * 4, f);
  }

  int32_t pos[kTm];  // each vector's position; vectors past the tile see every loaded position
  float m[kTm], l[kTm];
  float o[kTm][T::kDimChunks * 4];
  RL_UNROLL
  for (int i = 0; i < kTm; ++i) {
    pos[i] = first_pos + (rg + i * T::kRowGroups) / gc;
    m[i] = -INFINITY;
    l[i] = 0.0f;
    RL_UNROLL
    for (int d = 0; d < T::kDimChunks * 4; ++d) o[i][d] = 0.0f;
  }

  for (int32_t t0 = 0; t0 < kv_end; t0 += T::kKvTile) {
    const int32_t n = Min(T::kKvTile, kv_end - t0);
    __syncthreads();  // the previous tile's K, V and P are consumed
    // K and V rows as floats; rows past n are zero, so no unwritten shared
    // memory reaches a product.
    for (int c = tid; c < T::kKvTile * kChunksPerRow; c += T::kThreads) {
      const int j = c / kChunksPerRow;
      const int part = c % kChunksPerRow;
      float kf[kChunk], vf[kChunk];
      if (j < n) {
        const int64_t at = SlotOffset(table, t0 + j, a.block_size, kv_dim) +
                           static_cast<int64_t>(kv_head) * kHeadDim + part * kChunk;
        WidenKv<kChunk>(k_pool + at, kf);
        WidenKv<kChunk>(v_pool + at, vf);
      } else {
        RL_UNROLL
        for (int e = 0; e < kChunk; ++e) kf[e] = vf[e] = 0.0f;
      }
      RL_UNROLL
      for (int e = 0; e < kChunk; e += 4) {
        StoreFloat4(ks + j * T::kStride + part * kChunk + e,
                    make_float4(kf[e], kf[e + 1], kf[e + 2], kf[e + 3]));
        StoreFloat4(vs + j * T::kStride + part * kChunk + e,
                    make_float4(vf[e], vf[e + 1], vf[e + 2], vf[e + 3]));
      }
    }
    __syncthreads();

    // S = Q K^T for the thread's kTm x kTn (vector, position) pairs.
    float s[kTm][kTn];
    RL_UNROLL
    for (int i = 0; i < kTm; ++i) {
      RL_UNROLL
      for (int j = 0; j < kTn; ++j) s[i][j] = 0.0f;
    }
    for (int dc = 0; dc < kHeadDim / 4; ++dc) {
      float4 qf[kTm], kf[kTn];
      RL_UNROLL
      for (int i = 0; i < kTm; ++i) {
        qf[i] = LoadFloat4(qs + (rg + i * T::kRowGroups) * T::kStride + 4 * dc);
      }
      RL_UNROLL
      for (int j = 0; j < kTn; ++j) kf[j] = LoadFloat4(ks + (ct + j * kCt) * T::kStride + 4 * dc);
      RL_UNROLL
      for (int i = 0; i < kTm; ++i) {
        RL_UNROLL
        for (int j = 0; j < kTn; ++j) {
          s[i][j] = fmaf(qf[i].x, kf[j].x, s[i][j]);
          s[i][j] = fmaf(qf[i].y, kf[j].y, s[i][j]);
          s[i][j] = fmaf(qf[i].z, kf[j].z, s[i][j]);
          s[i][j] = fmaf(qf[i].w, kf[j].w, s[i][j]);
        }
      }
    }

    // Online softmax: scale, causal mask, the running max over the row's
    // kCt lanes, rescale of the running sum and output, P to shared memory.
    RL_UNROLL
    for (int i = 0; i < kTm; ++i) {
      float tile_max = -INFINITY;
      RL_UNROLL
      for (int j = 0; j < kTn; ++j) {
        const int32_t c = ct + j * kCt;
        const bool visible = c < n && t0 + c <= pos[i];
        s[i][j] = visible ? s[i][j] * a.scale : -INFINITY;
        tile_max = fmaxf(tile_max, s[i][j]);
      }
      RL_UNROLL
      for (int off = kCt / 2; off > 0; off >>= 1) {
        tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, off));
      }
      // Position 0 is in the first tile and visible to every vector, so the
      // new max is finite; exp(-inf - finite) = 0 rescales the empty start.
      const float m_new = fmaxf(m[i], tile_max);
      const float correction = expf(m[i] - m_new);
      m[i] = m_new;
      l[i] *= correction;
      RL_UNROLL
      for (int d = 0; d < T::kDimChunks * 4; ++d) o[i][d] *= correction;
      float* p_row = ps + (rg + i * T::kRowGroups) * T::kPStride;
      RL_UNROLL
      for (int j = 0; j < kTn; ++j) {
        const float p = expf(s[i][j] - m_new);  // masked: exp(-inf) = 0
        l[i] += p;                              // this thread's share of the row sum
        p_row[ct + j * kCt] = p;
      }
    }
    __syncthreads();

    // O += P V over the tile's n positions.
    for (int32_t c = 0; c < n; ++c) {
      float p[kTm];
      RL_UNROLL
      for (int i = 0; i < kTm; ++i) p[i] = ps[(rg + i * T::kRowGroups) * T::kPStride + c];
      RL_UNROLL
      for (int k = 0; k < T::kDimChunks; ++k) {
        const float4 v = LoadFloat4(vs + c * T::kStride + 4 * (ct + k * kCt));
        RL_UNROLL
        for (int i = 0; i < kTm; ++i) {
          o[i][4 * k + 0] = fmaf(p[i], v.x, o[i][4 * k + 0]);
          o[i][4 * k + 1] = fmaf(p[i], v.y, o[i][4 * k + 1]);
          o[i][4 * k + 2] = fmaf(p[i], v.z, o[i][4 * k + 2]);
          o[i][4 * k + 3] = fmaf(p[i], v.w, o[i][4 * k + 3]);
        }
      }
    }
  }

  // The row sums over the kCt lanes, then out = o / l for the real vectors.
  RL_UNROLL
  for (int i = 0; i < kTm; ++i) {
    float sum = l[i];
    RL_UNROLL
    for (int off = kCt / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(kFullMask, sum, off);
    const int r = rg + i * T::kRowGroups;
    if (r < live) {
      const int lr = r / gc;
      const int hl = r - lr * gc;
      float* dst = a.out + (span.first_row + row0 + lr) * q_dim + (head0 + hl) * kHeadDim;
      const float inv = 1.0f / sum;
      RL_UNROLL
      for (int k = 0; k < T::kDimChunks; ++k) {
        StoreFloat4(dst + 4 * (ct + k * kCt),
                    make_float4(o[i][4 * k] * inv, o[i][4 * k + 1] * inv, o[i][4 * k + 2] * inv,
                                o[i][4 * k + 3] * inv));
      }
    }
  }
}

// ------------------------------------------------------- host-side launch --

RL_HD bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The shape checks every entry shares: positive sizes, heads grouped evenly,
// a KV element type the kernels read.
inline bool AttentionParamsValid(const rl_attention_params& p) {
  return p.num_heads > 0 && p.num_kv_heads > 0 && p.num_heads % p.num_kv_heads == 0 &&
         p.head_dim > 0 && p.block_size > 0 && p.pool_blocks > 0 &&
         (p.kv_dtype == RL_KV_F32 || p.kv_dtype == RL_KV_F16);
}

template <int kHeadDim, class KvT>
struct DecodeLaunch {
  template <class Launcher>
  static void Run(const Launcher& launch, AttentionArgs a, int64_t num_spans) {
    using T = DecodeTraits<kHeadDim, KvT>;
    a.heads_per_block = LargestDivisorAtMost(a.num_heads / a.num_kv_heads, T::kMaxHeads);
    const size_t bytes = DecodeSharedBytes<kHeadDim, KvT>(a.heads_per_block, a.partition_tokens);
    launch.AllowSharedBytes(DecodeAttentionKernel<kHeadDim, KvT>, bytes);
    launch(dim3(static_cast<unsigned>(num_spans),
                static_cast<unsigned>(a.num_heads / a.heads_per_block),
                static_cast<unsigned>(a.splits)),
           dim3(T::kThreads), bytes, DecodeAttentionKernel<kHeadDim, KvT>, a);
    if (a.splits > 1) {
      const size_t combine_bytes = sizeof(float) * (32 + static_cast<size_t>(a.splits));
      launch.AllowSharedBytes(DecodeCombineKernel, combine_bytes);
      launch(dim3(static_cast<unsigned>(num_spans), static_cast<unsigned>(a.num_heads)),
             dim3(kAttentionThreads), combine_bytes, DecodeCombineKernel, a);
    }
  }
};

template <int kHeadDim, class KvT>
struct PrefillLaunch {
  template <class Launcher>
  static void Run(const Launcher& launch, AttentionArgs a, int64_t num_spans,
                  int64_t max_rows_per_span) {
    using T = PrefillTraits<kHeadDim>;
    a.heads_per_block = LargestDivisorAtMost(a.num_heads / a.num_kv_heads, T::kQueries);
    a.rows_per_block = T::kQueries / a.heads_per_block;
    launch.AllowSharedBytes(PrefillAttentionKernel<kHeadDim, KvT>, T::kSharedBytes);
    launch(dim3(static_cast<unsigned>(CeilDiv<int64_t>(max_rows_per_span, a.rows_per_block)),
                static_cast<unsigned>(num_spans),
                static_cast<unsigned>(a.num_heads / a.heads_per_block)),
           dim3(T::kThreads), T::kSharedBytes, PrefillAttentionKernel<kHeadDim, KvT>, a);
  }
};

// Calls Op<head_dim, element type>::Run(args...).
template <template <int, class> class Op, class... A>
void DispatchAttention(int32_t head_dim, int32_t kv_dtype, A&&... args) {
  if (kv_dtype == RL_KV_F16) {
    switch (head_dim) {
      case 8:
        return Op<8, uint16_t>::Run(args...);
      case 16:
        return Op<16, uint16_t>::Run(args...);
      case 32:
        return Op<32, uint16_t>::Run(args...);
      case 64:
        return Op<64, uint16_t>::Run(args...);
      case 128:
        return Op<128, uint16_t>::Run(args...);
      case 256:
        return Op<256, uint16_t>::Run(args...);
      default:
        return;
    }
  }
  switch (head_dim) {
    case 8:
      return Op<8, float>::Run(args...);
    case 16:
      return Op<16, float>::Run(args...);
    case 32:
      return Op<32, float>::Run(args...);
    case 64:
      return Op<64, float>::Run(args...);
    case 128:
      return Op<128, float>::Run(args...);
    case 256:
      return Op<256, float>::Run(args...);
    default:
      return;
  }
}

}  // namespace attention_internal

// Writes every span's K and V rows (k, v: [total_rows, kv_heads * head_dim]
// floats in device memory) into the pools at their positions' slots, as
// kernels::KvWrite does (bit for bit). spans: num_spans records in device
// memory, block_tables the flat table they point into; rows of
// [0, total_rows) in no span are not written. Returns false (nothing
// launched) when the parameters are out of range or an argument is null.
template <class Launcher>
bool KvWrite(const Launcher& launch, const rl_attention_params& p, const float* k, const float* v,
             const DeviceAttentionSpan* spans, int64_t num_spans, int64_t total_rows,
             const int32_t* block_tables, void* k_pool, void* v_pool) {
  using namespace attention_internal;
  if (!AttentionParamsValid(p) || num_spans < 0 || total_rows < 0 || total_rows > 0x7fffffff) {
    return false;
  }
  if (total_rows == 0 || num_spans == 0) return true;
  if (k == nullptr || v == nullptr || spans == nullptr || block_tables == nullptr ||
      k_pool == nullptr || v_pool == nullptr) {
    return false;
  }
  KvWriteArgs a{};
  a.k = k;
  a.v = v;
  a.spans = spans;
  a.block_tables = block_tables;
  a.k_pool = k_pool;
  a.v_pool = v_pool;
  a.num_spans = num_spans;
  a.pool_blocks = p.pool_blocks;
  a.kv_dim = p.num_kv_heads * p.head_dim;
  a.block_size = p.block_size;
  a.vector =
      a.kv_dim % 8 == 0 && Aligned16(k) && Aligned16(v) && Aligned16(k_pool) && Aligned16(v_pool)
          ? 1
          : 0;
  // Threads: enough for the row's 8-element chunks, whole warps, at most 128.
  const int32_t chunks = a.vector != 0 ? a.kv_dim / 8 : a.kv_dim;
  const unsigned threads = static_cast<unsigned>(Min(kAttentionThreads, CeilDiv(chunks, 32) * 32));
  const dim3 grid(static_cast<unsigned>(total_rows));
  if (p.kv_dtype == RL_KV_F16) {
    launch(grid, dim3(threads), 0, KvWriteKernel<uint16_t>, a);
  } else {
    launch(grid, dim3(threads), 0, KvWriteKernel<float>, a);
  }
  return true;
}

// Causal GQA attention of q ([total_rows, num_heads * head_dim] floats) over
// the pools, into out (same shape), as kernels::PagedAttention computes it:
// row i of a span, at position start_position + i, attends to its sequence's
// positions [0, start_position + i]. spans and block_tables in device memory
// (see DeviceAttentionSpan); bounds as AttentionBounds says. workspace:
// AttentionWorkspaceBytes(p, bounds, partition_tokens) bytes of device
// scratch (4-byte aligned; may be null when that is 0). partition_tokens:
// decode's split size, in [1, kMaxDecodePartitionTokens]
// (ChooseDecodePartitionTokens picks one for a GPU). q, out and the pools
// 16-byte aligned. Returns false (nothing launched) when the parameters,
// head_dim, bounds or workspace do not fit.
//
// REQUIRES: every span's block table entries for positions
// [0, start_position + rows) in [0, pool_blocks) (the plugin checks them on
// the host), those positions already written (KvWrite), positions < 2^31.
template <class Launcher>
bool Attention(const Launcher& launch, const rl_attention_params& p, const float* q,
               const DeviceAttentionSpan* spans, const int32_t* block_tables,
               const AttentionBounds& bounds, const void* k_pool, const void* v_pool, float* out,
               void* workspace, uint64_t workspace_bytes,
               int32_t partition_tokens = kDefaultDecodePartitionTokens) {
  using namespace attention_internal;
  if (!AttentionParamsValid(p) || !AttentionHeadDimSupported(p.head_dim) || partition_tokens < 1 ||
      partition_tokens > kMaxDecodePartitionTokens || bounds.num_spans < 0 ||
      bounds.num_spans > 65535 || bounds.max_rows_per_span < 0 || bounds.max_context < 0 ||
      bounds.max_context > 0x7fffffff || bounds.max_rows_per_span > 0x7fffffff) {
    return false;
  }
  const int64_t splits = DecodeSplits(bounds.max_context, partition_tokens);
  if (splits > 65535 || workspace_bytes < AttentionWorkspaceBytes(p, bounds, partition_tokens)) {
    return false;
  }
  if (bounds.num_spans == 0 || bounds.max_rows_per_span == 0) return true;
  if (q == nullptr || spans == nullptr || block_tables == nullptr || k_pool == nullptr ||
      v_pool == nullptr || out == nullptr || (splits > 1 && workspace == nullptr) ||
      !Aligned16(q) || !Aligned16(out) || !Aligned16(k_pool) || !Aligned16(v_pool) ||
      (reinterpret_cast<uintptr_t>(workspace) & 3u) != 0) {
    return false;
  }
  AttentionArgs a{};
  a.q = q;
  a.spans = spans;
  a.block_tables = block_tables;
  a.k_pool = k_pool;
  a.v_pool = v_pool;
  a.out = out;
  if (splits > 1) {
    const int64_t partials = bounds.num_spans * p.num_heads * splits;
    a.ws_out = static_cast<float*>(workspace);
    a.ws_max = a.ws_out + partials * p.head_dim;
    a.ws_sum = a.ws_max + partials;
  }
  a.num_heads = p.num_heads;
  a.num_kv_heads = p.num_kv_heads;
  a.head_dim = p.head_dim;
  a.block_size = p.block_size;
  a.scale = p.scale;
  a.partition_tokens = partition_tokens;
  a.splits = static_cast<int32_t>(splits);
  if (bounds.max_rows_per_span > 1) {
    // Spans of two or more rows here; single-row spans by the decode below.
    a.min_rows = 2;
    DispatchAttention<PrefillLaunch>(p.head_dim, p.kv_dtype, launch, a, bounds.num_spans,
                                     bounds.max_rows_per_span);
  }
  DispatchAttention<DecodeLaunch>(p.head_dim, p.kv_dtype, launch, a, bounds.num_spans);
  return true;
}

}  // namespace relayout::cuda
