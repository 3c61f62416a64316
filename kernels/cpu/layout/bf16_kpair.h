// BF16 K-pair interleave for AVX-512 BF16 dot products, and its inverse.
//
// vdpbf16ps multiplies pairs of adjacent-K bf16 values, so the kernel wants,
// for each pair of columns (2p, 2p+1), the pairs of 16 rows side by side: one
// 64-byte load then feeds 16 row accumulators (one per fp32 lane) against a
// broadcast pair of x. Byte layout, with G = group_rows (16 for AVX-512):
//   - inside a full group of G rows: [K/2][G][2] bf16 values;
//   - when K is odd, the last column is stored after the pairs as [G][1]
//     (no zero padding, so the layout keeps the tensor's byte size and the
//     transform stays an in-place-able permutation);
//   - the N % G tail rows stay row-major after the last full group.
// This is exactly the row-group interleave (row_group_interleave.h) with
// elem_bytes = 2 and k_block = 2, and these functions are thin wrappers over
// it; group numbering, return values and requirements are as there.
#pragma once

#include <cstddef>

#include "kernels/cpu/layout/row_group_interleave.h"

namespace relayout::kernels {

struct Bf16KPairParams {
  size_t rows = 0;        // N
  size_t cols = 0;        // K
  size_t group_rows = 0;  // G, 16 for AVX-512 BF16
};

inline constexpr size_t kBf16KPairGroupRows = 16;

// The equivalent row-group parameters (elem_bytes = 2, k_block = 2).
RowGroupParams Bf16KPairAsRowGroup(const Bf16KPairParams& p);
// G * K * 2 when N >= G, else 0.
size_t Bf16KPairScratchBytes(const Bf16KPairParams& p);
size_t Bf16KPairGroupCount(const Bf16KPairParams& p);

[[nodiscard]] bool Bf16KPairForward(const void* src, void* dst, const Bf16KPairParams& p,
                                    size_t first_group, size_t num_groups);
[[nodiscard]] bool Bf16KPairInverse(const void* src, void* dst, const Bf16KPairParams& p,
                                    size_t first_group, size_t num_groups);
[[nodiscard]] bool Bf16KPairForwardInPlace(void* data, const Bf16KPairParams& p, size_t first_group,
                                           size_t num_groups, void* scratch, size_t scratch_bytes);
[[nodiscard]] bool Bf16KPairInverseInPlace(void* data, const Bf16KPairParams& p, size_t first_group,
                                           size_t num_groups, void* scratch, size_t scratch_bytes);

}  // namespace relayout::kernels
