// Row-group interleave of an elementwise weight matrix W[N, K] (N rows = out
// features, K columns = in features; F32, F16 or BF16), and its inverse.
//
// Byte layout (docs/LAYOUTS.md has diagrams). With G = group_rows, KB = k_block:
//   - rows are taken in groups of G; group i holds rows [i*G, i*G + G);
//   - inside a full group, for each K-block c (columns [c*KB, c*KB + w),
//     w = min(KB, K - c*KB)), the G rows' w elements are stored one row after
//     the other: the group is [K/KB][G][KB], then [G][K%KB] when K%KB != 0;
//   - the N % G tail rows stay row-major after the last full group.
// A SIMD GEMV then reads one KB-wide slice of G rows as one contiguous run
// and keeps G accumulators while x[c*KB, c*KB + KB) stays in a register.
//
// The transform is a byte permutation that moves bytes only within a group of
// G rows, so it runs in place one group at a time with one group of scratch.
// The BF16 K-pair layout (G = 16, KB = 2) is this layout with those parameters
// (bf16_kpair.h).
//
// Range functions work on "row groups" numbered 0 .. RowGroupCount(p) - 1: the
// full groups, then (when N % G != 0) one last pseudo-group made of the tail
// rows, which every transform leaves unchanged (the out-of-place ones copy it).
// Disjoint group ranges touch disjoint bytes, so threads may each take a range.
//
// All functions return false, having written nothing, when the parameters are
// invalid (RowGroupParamsValid), the range exceeds RowGroupCount, or the
// scratch is smaller than RowGroupScratchBytes; true otherwise.
// REQUIRES for the pointers: src/dst/data hold RowGroupTensorBytes(p) bytes;
// src and dst do not overlap; scratch overlaps neither.
#pragma once

#include <cstddef>

namespace relayout::kernels {

struct RowGroupParams {
  size_t rows = 0;        // N
  size_t cols = 0;        // K, elements per row
  size_t elem_bytes = 0;  // 4 for F32, 2 for F16/BF16
  size_t group_rows = 0;  // G >= 1
  size_t k_block = 0;     // KB >= 1, in elements
};

// True when elem_bytes, group_rows and k_block are non-zero and the tensor's
// byte size fits in size_t.
bool RowGroupParamsValid(const RowGroupParams& p);
// N * K * elem_bytes.
size_t RowGroupTensorBytes(const RowGroupParams& p);
// N / G full groups, plus one when N % G != 0.
size_t RowGroupCount(const RowGroupParams& p);
// Scratch the in-place functions use: G * K * elem_bytes when there is at
// least one full group, else 0 (the tensor is all tail and nothing moves).
size_t RowGroupScratchBytes(const RowGroupParams& p);

// Out of place: writes groups [first_group, first_group + num_groups) of dst
// from the same groups of src. Forward: row-major -> interleaved.
[[nodiscard]] bool RowGroupInterleaveForward(const void* src, void* dst, const RowGroupParams& p,
                                             size_t first_group, size_t num_groups);
[[nodiscard]] bool RowGroupInterleaveInverse(const void* src, void* dst, const RowGroupParams& p,
                                             size_t first_group, size_t num_groups);

// In place over data, staging each group through scratch (scratch_bytes >=
// RowGroupScratchBytes(p); only that many bytes are touched). Gives the same
// bytes as the out-of-place functions.
[[nodiscard]] bool RowGroupInterleaveForwardInPlace(void* data, const RowGroupParams& p,
                                                    size_t first_group, size_t num_groups,
                                                    void* scratch, size_t scratch_bytes);
[[nodiscard]] bool RowGroupInterleaveInverseInPlace(void* data, const RowGroupParams& p,
                                                    size_t first_group, size_t num_groups,
                                                    void* scratch, size_t scratch_bytes);

}  // namespace relayout::kernels
