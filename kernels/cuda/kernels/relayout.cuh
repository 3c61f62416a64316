// The quant row-group layout transform on the device: a GGUF-block weight
// (Q8_0, Q4_0, Q4_1) uploaded in file order ("native") is permuted on the GPU
// into the quant row-group layout of kernels/cpu/layout/quant_row_group.h
// (G = kGpuQuantGroupRows = 8 on the GPU), or back. The kernels give the same
// bytes as the CPU's QuantRowGroupForward / Inverse; the N % G tail rows stay
// native (in place they are not touched, out of place they are copied).
//
// Why this can run in place under a small budget: the permutation moves bytes
// only within one row group (G rows, S = G * K/32 * B bytes: 18 KiB for Q4_0
// K = 4096, 63 KiB for Q4_0 K = 14336, 119 KiB for Q8_0 K = 14336), so a
// CTA loads a whole group into a staging buffer, __syncthreads, and writes it
// back permuted over the same bytes. Nothing else is allocated when a group
// fits the device's shared memory. (vLLM's Marlin repack allocates a second
// full tensor; TensorRT-LLM preprocesses on the host with two extra copies.)
//
// Paths (PlanRelayoutInPlace / PlanRelayoutCopy pick one, host-testable):
//   - in place, shared staging: one CTA per group, grid-striding over groups
//     (the grid is bounded by kRelayoutMaxGrid); no scratch;
//   - in place, global staging: a group larger than max_shared_bytes (e.g.
//     Q8_0 K = 28672: 238 KiB > sm_90's 227 KiB) is staged in a scratch slot
//     of S bytes per CTA; `concurrent_ctas` CTAs (at most the slots the
//     scratch holds) grid-stride over the groups; RelayoutScratchBytes sizes
//     the scratch;
//   - out of place (src -> dst, distinct buffers, when the budget allows a
//     second copy): a group is cut into column chunks of cb blocks (its G
//     rows' blocks [b0, b0 + cb) are exactly the group blocks [b0, b0 + cb),
//     which is contiguous in the grouped layout), each chunk a work item
//     staged in shared memory, so no scratch is ever needed and chunks stay
//     small enough (kRelayoutCopyStageTarget) for several CTAs per SM to
//     overlap their load and store phases. One extra item copies the tail.
//
// The vector path (G % 8 == 0, 16-byte aligned pointers): with G = 8 a group
// block is 9 (Q4_0), 10 (Q4_1) or 17 (Q8_0) 16-byte units, each made of
// either 8 scale fields of one field index (rows r0..r0+7) or 16 bytes of one
// row's payload, i.e. 8 u16 values at `first + i * stride` in the native
// bytes (GroupUnitSpan). So
//   - forward: the native group is copied into staging with coalesced
//     16-byte loads/stores (row pitch padded, see below); then thread t
//     assembles grouped unit t from 8 u16 shared loads and writes it as one
//     16-byte store: consecutive threads write consecutive 16 bytes, so the
//     warp's stores are fully coalesced 512-byte runs;
//   - inverse: thread t loads grouped unit t (coalesced 16-byte loads) and
//     scatters its 8 u16 into the native staging; then the native rows are
//     copied out with coalesced 16-byte stores.
// Shared-memory banks: with K a multiple of 2048 the native row length is a
// multiple of 128 bytes, so the 8 rows of a group would sit on the same
// banks and the 8 u16 accesses of a warp would be ~8-way conflicted. The
// staging row pitch is padded to an odd multiple of 16 bytes (the rows land
// 4 banks apart), which brings the conflict degree to ~2.7 (Q4_0), 2.0
// (Q4_1), 3.8 (Q8_0) wavefronts per access (a bank simulation of K = 4096
// and 14336; unpadded: 8).
// Anything else (G % 8 != 0, misaligned pointers, out-of-place rows whose
// length is not a multiple of 16 bytes and a group too large for shared
// memory) takes the generic path: the same structure with byte copies and a
// byte index map (GroupedByteSource / NativeByteSource). It is correct for
// every shape, not fast; the GPU's layout (G = 8, cudaMalloc'd tensors) never
// takes it.
//
// Expected bandwidth. Every byte of the tensor is read once from HBM and
// written once (the staging round trip stays on chip), so the ideal is a
// device-to-device copy of the same bytes (cudaMemcpyAsync D2D: on an H200
// ~4 TB/s of read + write traffic, i.e. a 1 GiB weight in ~0.5 ms). The
// target is >= 0.5x of such a copy. Per SM at ~18 B/cycle of HBM traffic
// (4.8 TB/s over 132 SMs at ~2 GHz), a warp's 512 bytes of output are due
// every ~57 cycles: the 8 u16 shared accesses (~3 wavefronts each, ~24) plus
// the 16-byte staging copy (4) fit, and the index math is ~60 instructions
// per 16 bytes against a budget of ~228 issue slots. The load phase needs
// ~29 KB in flight per SM (Little's law at ~800 ns): 512 threads x 4
// unrolled 16-byte loads = 32 KiB even when a big group (Q8_0 K = 14336)
// allows one CTA per SM; smaller groups run several CTAs per SM whose load
// and store phases overlap. Where it loses: one CTA per SM serializes load
// and store per SM (other SMs are in the other phase, so HBM stays busy),
// and the global-staging path adds the staging round trip through L2
// (~2x traffic if concurrent_ctas * S exceeds L2), ~0.5x a copy there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cuda/kernels/quant_blocks.cuh"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {

// Most threads per CTA: 512 x 4 unrolled 16-byte loads keep 32 KiB in flight.
inline constexpr int32_t kRelayoutMaxThreads = 512;
// 16-byte loads each thread issues before storing them (the load phase's ILP).
inline constexpr int32_t kRelayoutUnroll = 4;
// Most CTAs of a shared-staging launch; they grid-stride beyond.
inline constexpr int64_t kRelayoutMaxGrid = 4096;
// Staging bytes an out-of-place chunk aims at (several CTAs per SM).
inline constexpr size_t kRelayoutCopyStageTarget = 32 * 1024;

// The shape of one launch, all offsets within a group in int32 (a group of
// more than 2 GiB is refused by the planners).
struct RelayoutShape {
  int32_t block_bytes;     // B
  int32_t scale_fields;    // F
  int32_t payload_bytes;   // P = B - 2F
  int32_t group_rows;      // G
  int32_t blocks_per_row;  // nb = K / 32
  int32_t row_bytes;       // nb * B
  int32_t group_bytes;     // S = G * nb * B
  int32_t chunk_blocks;    // cb: block columns per work item (nb in place)
  int32_t chunks;          // ceil(nb / cb)
  int32_t pitch;           // staging bytes per native row (>= cb * B)
  int32_t stage_bytes;     // staging bytes of one CTA
  int64_t full_groups;     // N / G
  int64_t items;           // full_groups * chunks (+ 1 tail item out of place)
  int64_t tail_bytes;      // tail rows' bytes the tail item copies (0 in place)
};

// A launch as the planners decide it. ok == false: the arguments are invalid
// (or the scratch holds no slot); grid == 0: nothing to do.
struct RelayoutPlan {
  bool ok;
  bool vector;        // the 16-byte path
  bool shared_stage;  // staging in dynamic shared memory (else scratch slots)
  RelayoutShape shape;
  int64_t grid;
  int32_t threads;
  size_t shared_bytes;
};

// ---- Index maps (host and device; relayout_test.cc checks them) ----

// Grouped 16-byte unit `unit` (0 .. G*B/16 - 1) of group block `block`
// (relative to the staged chunk) is the 8 u16 values at native staging
// offsets first + i * stride, i = 0..7. Requires G % 8 == 0 and P % 16 == 0:
// a unit is then 8 rows' field f (stride = pitch) or 16 bytes of one row's
// payload (stride = 2).
struct UnitSpan {
  int32_t first;
  int32_t stride;
};

RL_HD UnitSpan GroupUnitSpan(const RelayoutShape& s, int32_t block, int32_t unit) {
  const int32_t units_per_field = s.group_rows / 8;  // 2G bytes of one field
  const int32_t scale_units = s.scale_fields * units_per_field;
  const int32_t col = block * s.block_bytes;
  if (unit < scale_units) {
    const int32_t f = unit / units_per_field;
    const int32_t r0 = (unit - f * units_per_field) * 8;
    return {r0 * s.pitch + col + 2 * f, s.pitch};
  }
  const int32_t q = unit * 16 - 2 * s.scale_fields * s.group_rows;  // payload byte
  const int32_t r = q / s.payload_bytes;
  return {r * s.pitch + col + 2 * s.scale_fields + (q - r * s.payload_bytes), 2};
}

// Forward, byte by byte: grouped byte `o` of a staged chunk (o < cb * G * B)
// comes from this native staging offset (rows `pitch` apart).
RL_HD int32_t GroupedByteSource(const RelayoutShape& s, int32_t o) {
  const int32_t group_block = s.group_rows * s.block_bytes;
  const int32_t block = o / group_block;
  const int32_t w = o - block * group_block;
  const int32_t col = block * s.block_bytes;
  const int32_t scale_bytes = 2 * s.scale_fields * s.group_rows;
  if (w < scale_bytes) {
    const int32_t f = w / (2 * s.group_rows);
    const int32_t r = (w - f * 2 * s.group_rows) / 2;
    return r * s.pitch + col + 2 * f + (w & 1);
  }
  const int32_t q = w - scale_bytes;
  const int32_t r = q / s.payload_bytes;
  return r * s.pitch + col + 2 * s.scale_fields + (q - r * s.payload_bytes);
}

// Inverse, byte by byte: native byte `k` (< cb * B) of row `r` of a staged
// chunk comes from this offset of the grouped chunk.
RL_HD int32_t NativeByteSource(const RelayoutShape& s, int32_t r, int32_t k) {
  const int32_t block = k / s.block_bytes;
  const int32_t kk = k - block * s.block_bytes;
  const int32_t base = block * s.group_rows * s.block_bytes;
  if (kk < 2 * s.scale_fields) return base + (kk / 2) * 2 * s.group_rows + 2 * r + (kk & 1);
  return base + 2 * s.scale_fields * s.group_rows + r * s.payload_bytes + (kk - 2 * s.scale_fields);
}

// ---- Planning (host and device) ----

// Fills the parts of the shape common to every path; false for an invalid
// type, negative sizes, cols % 32 != 0, group_rows < 1 or a group (with the
// staging pad) past 2 GiB.
RL_HD bool InitRelayoutShape(QuantType type, int64_t rows, int64_t cols, int32_t group_rows,
                             RelayoutShape* s) {
  const QuantFormat f = FormatOf(type);
  if (f.block_bytes == 0 || rows < 0 || cols < 0 || cols % kQuantBlock != 0 || group_rows < 1) {
    return false;
  }
  const int64_t nb = cols / kQuantBlock;
  const int64_t row_bytes = nb * f.block_bytes;
  if ((row_bytes + 16) * group_rows > INT32_MAX) return false;
  s->block_bytes = f.block_bytes;
  s->scale_fields = f.scale_fields;
  s->payload_bytes = f.payload_bytes;
  s->group_rows = group_rows;
  s->blocks_per_row = static_cast<int32_t>(nb);
  s->row_bytes = static_cast<int32_t>(row_bytes);
  s->group_bytes = static_cast<int32_t>(row_bytes * group_rows);
  s->chunk_blocks = static_cast<int32_t>(nb);
  s->chunks = 1;
  s->pitch = s->row_bytes;
  s->stage_bytes = s->group_bytes;
  s->full_groups = nb == 0 ? 0 : rows / group_rows;  // an empty row moves nothing
  s->items = s->full_groups;
  s->tail_bytes = 0;
  return true;
}

// Bytes of one row group: G * K/32 * B (0 for invalid arguments).
RL_HD int64_t RelayoutGroupBytes(QuantType type, int64_t cols, int32_t group_rows) {
  RelayoutShape s{};
  if (!InitRelayoutShape(type, 0, cols, group_rows, &s)) return 0;
  return s.group_bytes;
}

// The device scratch the in-place transform needs: 0 when a group fits
// max_shared_bytes of shared memory (or nothing moves: no full group),
// else concurrent_ctas (at least 1) slots of one group each. UINT64_MAX for
// invalid arguments.
RL_HD uint64_t RelayoutScratchBytes(QuantType type, int64_t rows, int64_t cols, int32_t group_rows,
                                    size_t max_shared_bytes, int32_t concurrent_ctas) {
  RelayoutShape s{};
  if (!InitRelayoutShape(type, rows, cols, group_rows, &s)) return UINT64_MAX;
  if (s.full_groups == 0 || static_cast<uint64_t>(s.group_bytes) <= max_shared_bytes) return 0;
  return static_cast<uint64_t>(Max(concurrent_ctas, 1)) * static_cast<uint64_t>(s.group_bytes);
}

// Threads for a CTA staging `stage_bytes`: one per 16 bytes, whole warps,
// at most kRelayoutMaxThreads.
RL_HD int32_t RelayoutThreads(int64_t stage_bytes) {
  const int64_t units = CeilDiv<int64_t>(Max<int64_t>(stage_bytes, 1), 16);
  return static_cast<int32_t>(Min<int64_t>(CeilDiv<int64_t>(units, 32) * 32, kRelayoutMaxThreads));
}

// Padding that makes a staging pitch of `bytes` (a multiple of 16) an odd
// multiple of 16, so a group's 8 rows start 4 banks apart.
RL_HD int32_t RelayoutPitchPad(int32_t bytes) { return (bytes / 16) % 2 == 0 ? 16 : 0; }

// In place over `data` (group by group; tail rows untouched).
// data_aligned / scratch_aligned: the pointers are 16-byte aligned.
RL_HD RelayoutPlan PlanRelayoutInPlace(QuantType type, int64_t rows, int64_t cols,
                                       int32_t group_rows, bool data_aligned, bool scratch_aligned,
                                       uint64_t scratch_bytes, size_t max_shared_bytes,
                                       int32_t concurrent_ctas) {
  RelayoutPlan p{};
  if (!InitRelayoutShape(type, rows, cols, group_rows, &p.shape)) return p;
  RelayoutShape& s = p.shape;
  p.ok = true;
  if (s.items == 0) return p;
  const bool vector_shape = group_rows % 8 == 0 && s.payload_bytes % 16 == 0;
  if (static_cast<uint64_t>(s.group_bytes) <= max_shared_bytes) {
    p.shared_stage = true;
    p.vector = vector_shape && data_aligned;
    if (p.vector && s.row_bytes % 16 == 0) {
      const int32_t padded = s.row_bytes + RelayoutPitchPad(s.row_bytes);
      if (static_cast<uint64_t>(padded) * group_rows <= max_shared_bytes) s.pitch = padded;
    }
    s.stage_bytes = s.pitch * group_rows;
    p.shared_bytes = static_cast<size_t>(s.stage_bytes);
    p.grid = Min(s.items, kRelayoutMaxGrid);
  } else {
    const int64_t slots = Min<int64_t>(
        Min<int64_t>(concurrent_ctas, s.full_groups),
        static_cast<int64_t>(Min<uint64_t>(scratch_bytes / static_cast<uint64_t>(s.group_bytes),
                                           static_cast<uint64_t>(INT32_MAX))));
    if (slots < 1) {
      p.ok = false;
      return p;
    }
    p.vector = vector_shape && data_aligned && scratch_aligned;
    p.grid = slots;
  }
  p.threads = RelayoutThreads(s.stage_bytes);
  return p;
}

// Out of place, src -> dst (every byte of dst written; tail rows copied).
// aligned: src and dst are both 16-byte aligned.
RL_HD RelayoutPlan PlanRelayoutCopy(QuantType type, int64_t rows, int64_t cols, int32_t group_rows,
                                    bool aligned, size_t max_shared_bytes) {
  RelayoutPlan p{};
  if (!InitRelayoutShape(type, rows, cols, group_rows, &p.shape)) return p;
  RelayoutShape& s = p.shape;
  s.tail_bytes = s.blocks_per_row == 0
                     ? 0
                     : (rows - s.full_groups * group_rows) * static_cast<int64_t>(s.row_bytes);
  p.ok = true;
  p.shared_stage = true;
  if (s.items == 0 && s.tail_bytes == 0) return p;
  const int64_t target = static_cast<int64_t>(Min(max_shared_bytes, kRelayoutCopyStageTarget));
  const int64_t max_shared = static_cast<int64_t>(Min<size_t>(max_shared_bytes, INT32_MAX));
  const int64_t B = s.block_bytes;
  const int64_t G = group_rows;
  const int64_t nb = s.blocks_per_row;
  p.vector = group_rows % 8 == 0 && s.payload_bytes % 16 == 0 && aligned;
  if (p.vector && s.full_groups > 0) {
    if (s.row_bytes % 16 == 0) {
      // Chunks of a multiple of 8 blocks (8 * B is a multiple of 16), padded.
      auto fits = [&](int64_t cb, int64_t limit) {
        const int64_t bytes = cb * B;
        return G * (bytes + RelayoutPitchPad(static_cast<int32_t>(bytes))) <= limit;
      };
      int64_t cb = Max<int64_t>((target / G - 16) / B / 8 * 8, 8);
      while (cb > 8 && !fits(cb, target)) cb -= 8;
      if (cb >= nb) cb = nb;
      if (fits(cb, max_shared)) {
        s.chunk_blocks = static_cast<int32_t>(cb);
        s.pitch = static_cast<int32_t>(cb * B + RelayoutPitchPad(static_cast<int32_t>(cb * B)));
      } else if (cb == nb && G * cb * B <= max_shared) {
        s.chunk_blocks = static_cast<int32_t>(cb);  // whole rows, unpadded
        s.pitch = static_cast<int32_t>(cb * B);
      } else {
        p.vector = false;
      }
    } else if (s.group_bytes > max_shared) {
      p.vector = false;  // rows not 16-byte multiples: only whole contiguous groups
    }
  }
  if (!p.vector) {
    const int64_t cb = Min<int64_t>(nb, Max<int64_t>(1, target / (G * B)));
    if (s.full_groups > 0 && G * cb * B > max_shared) {
      p.ok = false;
      return p;
    }
    s.chunk_blocks = static_cast<int32_t>(Max<int64_t>(cb, 1));
    s.pitch = static_cast<int32_t>(s.chunk_blocks * B);
  }
  s.chunks = s.full_groups > 0 ? static_cast<int32_t>(CeilDiv<int64_t>(nb, s.chunk_blocks)) : 0;
  s.items = s.full_groups * s.chunks + (s.tail_bytes > 0 ? 1 : 0);
  s.stage_bytes = s.full_groups > 0 ? s.pitch * group_rows : 0;
  p.shared_bytes = static_cast<size_t>(s.stage_bytes);
  p.grid = Min(s.items, kRelayoutMaxGrid);
  p.threads = RelayoutThreads(s.full_groups > 0 ? s.stage_bytes : s.tail_bytes);
  return p;
}

// ---- Device helpers ----

// 16-byte and 2-byte accesses. On the host through memcpy (the buffers are
// byte arrays; no type punning for the optimizer to exploit).
__device__ __forceinline__ uint4 RelayoutLoad16(const uint8_t* p) { return VecLoad<uint4>(p); }
__device__ __forceinline__ void RelayoutStore16(uint8_t* p, uint4 v) { VecStore<uint4>(p, v); }
__device__ __forceinline__ uint32_t RelayoutLoad2(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint16_t*>(p);
#else
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}
__device__ __forceinline__ void RelayoutStore2(uint8_t* p, uint32_t v) {
  const uint16_t h = static_cast<uint16_t>(v);
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint16_t*>(p) = h;
#else
  std::memcpy(p, &h, sizeof h);
#endif
}

// Copies `rows` rows of `seg` bytes (a multiple of 16) from src (rows
// src_pitch apart) to dst (rows dst_pitch apart), both 16-byte aligned, in
// 16-byte units: consecutive threads take consecutive units (coalesced), and
// each thread issues kRelayoutUnroll loads before its stores.
__device__ __forceinline__ void RelayoutCopyRows16(uint8_t* dst, int32_t dst_pitch,
                                                   const uint8_t* src, int32_t src_pitch,
                                                   int32_t rows, int32_t seg) {
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  const int32_t nthreads = static_cast<int32_t>(blockDim.x);
  const int32_t per_row = seg / 16;
  const int32_t units = rows * per_row;
  for (int32_t base = tid; base < units; base += kRelayoutUnroll * nthreads) {
    uint4 v[kRelayoutUnroll];
    int32_t to[kRelayoutUnroll];
    RL_UNROLL
    for (int32_t k = 0; k < kRelayoutUnroll; ++k) {
      const int32_t u = base + k * nthreads;
      to[k] = -1;
      v[k] = make_uint4(0, 0, 0, 0);
      if (u < units) {
        const int32_t r = u / per_row;
        const int32_t w = (u - r * per_row) * 16;
        to[k] = r * dst_pitch + w;
        v[k] = RelayoutLoad16(src + r * src_pitch + w);
      }
    }
    RL_UNROLL
    for (int32_t k = 0; k < kRelayoutUnroll; ++k) {
      if (to[k] >= 0) RelayoutStore16(dst + to[k], v[k]);
    }
  }
}

// Forward write phase of the vector path: grouped unit t of the chunk (of
// `blocks` group blocks) <- 8 u16 of the native staging; one 16-byte store.
__device__ __forceinline__ void RelayoutGatherUnits(uint8_t* dst, const uint8_t* stage,
                                                    const RelayoutShape& s, int32_t blocks) {
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  const int32_t nthreads = static_cast<int32_t>(blockDim.x);
  const int32_t units_per_block = s.group_rows * s.block_bytes / 16;
  const int32_t units = blocks * units_per_block;
  for (int32_t t = tid; t < units; t += nthreads) {
    const int32_t block = t / units_per_block;
    const UnitSpan span = GroupUnitSpan(s, block, t - block * units_per_block);
    const uint8_t* from = stage + span.first;
    uint32_t h[8];
    RL_UNROLL
    for (int32_t i = 0; i < 8; ++i) h[i] = RelayoutLoad2(from + i * span.stride);
    RelayoutStore16(dst + t * 16, make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16,
                                             h[4] | h[5] << 16, h[6] | h[7] << 16));
  }
}

// Inverse load phase of the vector path: grouped unit t of the chunk
// (coalesced 16-byte loads, kRelayoutUnroll in flight per thread) -> its 8
// u16 scattered into the native staging.
__device__ __forceinline__ void RelayoutScatterUnits(uint8_t* stage, const uint8_t* src,
                                                     const RelayoutShape& s, int32_t blocks) {
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  const int32_t nthreads = static_cast<int32_t>(blockDim.x);
  const int32_t units_per_block = s.group_rows * s.block_bytes / 16;
  const int32_t units = blocks * units_per_block;
  for (int32_t base = tid; base < units; base += kRelayoutUnroll * nthreads) {
    uint4 v[kRelayoutUnroll];
    RL_UNROLL
    for (int32_t k = 0; k < kRelayoutUnroll; ++k) {
      const int32_t u = base + k * nthreads;
      v[k] = u < units ? RelayoutLoad16(src + u * 16) : make_uint4(0, 0, 0, 0);
    }
    RL_UNROLL
    for (int32_t k = 0; k < kRelayoutUnroll; ++k) {
      const int32_t u = base + k * nthreads;
      if (u < units) {
        const int32_t block = u / units_per_block;
        const UnitSpan span = GroupUnitSpan(s, block, u - block * units_per_block);
        uint8_t* to = stage + span.first;
        const uint32_t words[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
        RL_UNROLL
        for (int32_t i = 0; i < 4; ++i) {
          RelayoutStore2(to + (2 * i) * span.stride, words[i] & 0xffffu);
          RelayoutStore2(to + (2 * i + 1) * span.stride, words[i] >> 16);
        }
      }
    }
  }
}

// Byte copy of n bytes by the block's threads (the generic path and the
// sub-16-byte end of a tail).
__device__ __forceinline__ void RelayoutCopyBytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

// ---- The kernel ----

// Grid-strides over the work items: item < full_groups * chunks is chunk
// (item % chunks) of group (item / chunks); the item after them (out of
// place only) copies the tail rows. For each chunk: load phase (source ->
// staging), __syncthreads, store phase (staging -> destination),
// __syncthreads (the staging is reused). In place src == dst and chunks == 1:
// the load phase reads the whole group before any thread writes it.
// kSharedStage: staging in dynamic shared memory, else the scratch slot
// blockIdx.x (stage_bytes each).
template <bool kForward, bool kVector, bool kSharedStage>
__global__ void __launch_bounds__(kRelayoutMaxThreads)
    QuantRowGroupRelayoutKernel(const uint8_t* src, uint8_t* dst, uint8_t* scratch,
                                RelayoutShape s) {
  uint8_t* stage;
  if constexpr (kSharedStage) {
    RL_DYNAMIC_SHARED(uint8_t, smem);
    stage = smem;
  } else {
    stage = scratch + static_cast<int64_t>(blockIdx.x) * s.stage_bytes;
  }
  const int64_t chunked_items = s.full_groups * s.chunks;
  const int32_t group_block = s.group_rows * s.block_bytes;
  for (int64_t item = blockIdx.x; item < s.items; item += gridDim.x) {
    if (item >= chunked_items) {  // the tail rows, copied unchanged (out of place)
      const int64_t start = s.full_groups * s.group_bytes;
      if constexpr (kVector) {
        const int32_t bulk = static_cast<int32_t>(s.tail_bytes / 16 * 16);
        RelayoutCopyRows16(dst + start, 0, src + start, 0, 1, bulk);
        RelayoutCopyBytes(dst + start + bulk, src + start + bulk, s.tail_bytes - bulk);
      } else {
        RelayoutCopyBytes(dst + start, src + start, s.tail_bytes);
      }
      continue;  // uniform over the block: no barrier is skipped by some threads only
    }
    const int64_t group = item / s.chunks;
    const int32_t b0 = static_cast<int32_t>(item - group * s.chunks) * s.chunk_blocks;
    const int32_t blocks = Min(s.chunk_blocks, s.blocks_per_row - b0);
    const int32_t seg = blocks * s.block_bytes;  // bytes of each native row in the chunk
    const int64_t base = group * s.group_bytes;
    const uint8_t* src_native = src + base + b0 * s.block_bytes;
    const uint8_t* src_grouped = src + base + b0 * group_block;
    uint8_t* dst_native = dst + base + b0 * s.block_bytes;
    uint8_t* dst_grouped = dst + base + b0 * group_block;
    // Whole unpadded rows are one contiguous run (rows need not be 16-byte
    // multiples then, the group is).
    const bool contiguous = seg == s.row_bytes && s.pitch == s.row_bytes;
    const int32_t copy_rows = contiguous ? 1 : s.group_rows;
    const int32_t copy_seg = contiguous ? s.group_bytes : seg;
    if constexpr (kVector) {
      if constexpr (kForward) {
        RelayoutCopyRows16(stage, s.pitch, src_native, s.row_bytes, copy_rows, copy_seg);
      } else {
        RelayoutScatterUnits(stage, src_grouped, s, blocks);
      }
      __syncthreads();
      if constexpr (kForward) {
        RelayoutGatherUnits(dst_grouped, stage, s, blocks);
      } else {
        RelayoutCopyRows16(dst_native, s.row_bytes, stage, s.pitch, copy_rows, copy_seg);
      }
    } else {
      const int32_t tid = static_cast<int32_t>(threadIdx.x);
      const int32_t nthreads = static_cast<int32_t>(blockDim.x);
      const int32_t native_bytes = s.group_rows * seg;
      if constexpr (kForward) {  // native rows -> staging (rows `pitch` apart)
        for (int32_t i = tid; i < native_bytes; i += nthreads) {
          const int32_t r = i / seg;
          const int32_t k = i - r * seg;
          stage[r * s.pitch + k] = src_native[r * s.row_bytes + k];
        }
      } else {  // the grouped chunk, as it is
        RelayoutCopyBytes(stage, src_grouped, native_bytes);
      }
      __syncthreads();
      if constexpr (kForward) {
        for (int32_t o = tid; o < native_bytes; o += nthreads) {
          dst_grouped[o] = stage[GroupedByteSource(s, o)];
        }
      } else {
        for (int32_t i = tid; i < native_bytes; i += nthreads) {
          const int32_t r = i / seg;
          const int32_t k = i - r * seg;
          dst_native[r * s.row_bytes + k] = stage[NativeByteSource(s, r, k)];
        }
      }
    }
    __syncthreads();
  }
}

// ---- Host entries ----

template <bool kForward, bool kVector, bool kSharedStage, class Launcher>
void LaunchRelayoutPlan(const Launcher& launch, const RelayoutPlan& p, const uint8_t* src,
                        uint8_t* dst, uint8_t* scratch) {
  void (*kernel)(const uint8_t*, uint8_t*, uint8_t*, RelayoutShape) =
      QuantRowGroupRelayoutKernel<kForward, kVector, kSharedStage>;
  const size_t shared = kSharedStage ? p.shared_bytes : 0;
  if (shared > 0) launch.AllowSharedBytes(kernel, shared);
  launch(dim3(static_cast<unsigned>(p.grid)), dim3(static_cast<unsigned>(p.threads)), shared,
         kernel, src, dst, scratch, p.shape);
}

template <bool kForward, class Launcher>
void DispatchRelayoutPlan(const Launcher& launch, const RelayoutPlan& p, const uint8_t* src,
                          uint8_t* dst, uint8_t* scratch) {
  if (p.vector) {
    if (p.shared_stage)
      return LaunchRelayoutPlan<kForward, true, true>(launch, p, src, dst, scratch);
    return LaunchRelayoutPlan<kForward, true, false>(launch, p, src, dst, scratch);
  }
  if (p.shared_stage)
    return LaunchRelayoutPlan<kForward, false, true>(launch, p, src, dst, scratch);
  LaunchRelayoutPlan<kForward, false, false>(launch, p, src, dst, scratch);
}

RL_HD bool RelayoutAligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// In place: the [rows, cols] tensor of `type` at `data` (device memory) from
// native to the quant row-group layout with `group_rows` rows per group
// (forward) or back; the rows % group_rows tail rows are not touched. When a
// group exceeds max_shared_bytes (the device's per-block opt-in limit:
// 227 KiB on sm_90, 163 KiB on sm_80, 48 KiB without opt-in) it is staged in
// `scratch`: min(concurrent_ctas, scratch_bytes / group bytes) CTAs, each
// owning one group-sized slot (RelayoutScratchBytes gives the bytes for
// concurrent_ctas slots). Touches nothing but the tensor and those slots.
// Returns false, launching nothing, for invalid arguments (see
// InitRelayoutShape) or a scratch without one slot where one is needed.
template <class Launcher>
bool QuantRowGroupTransform(const Launcher& launch, QuantType type, bool forward, uint8_t* data,
                            int64_t rows, int64_t cols, int32_t group_rows, uint8_t* scratch,
                            uint64_t scratch_bytes, size_t max_shared_bytes,
                            int32_t concurrent_ctas) {
  const RelayoutPlan p = PlanRelayoutInPlace(
      type, rows, cols, group_rows, RelayoutAligned16(data), RelayoutAligned16(scratch),
      scratch == nullptr ? 0 : scratch_bytes, max_shared_bytes, concurrent_ctas);
  if (!p.ok) return false;
  if (p.grid == 0) return true;
  if (data == nullptr) return false;
  if (forward) {
    DispatchRelayoutPlan<true>(launch, p, data, data, scratch);
  } else {
    DispatchRelayoutPlan<false>(launch, p, data, data, scratch);
  }
  return true;
}

// Out of place: dst (distinct from src, same size) gets src's tensor in the
// other layout, tail rows copied; no scratch (groups are cut into column
// chunks staged in at most max_shared_bytes of shared memory). Returns false
// for invalid arguments.
template <class Launcher>
bool QuantRowGroupTransformOutOfPlace(const Launcher& launch, QuantType type, bool forward,
                                      const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols,
                                      int32_t group_rows, size_t max_shared_bytes) {
  const RelayoutPlan p =
      PlanRelayoutCopy(type, rows, cols, group_rows,
                       RelayoutAligned16(src) && RelayoutAligned16(dst), max_shared_bytes);
  if (!p.ok) return false;
  if (p.grid == 0) return true;
  if (src == nullptr || dst == nullptr) return false;
  if (forward) {
    DispatchRelayoutPlan<true>(launch, p, src, dst, nullptr);
  } else {
    DispatchRelayoutPlan<false>(launch, p, src, dst, nullptr);
  }
  return true;
}

}  // namespace relayout::cuda
