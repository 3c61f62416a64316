// Matrix transpose of a row-major [rows, cols] matrix of fixed-size elements
// into the row-major [cols, rows] matrix, by three strategies that differ only
// in the scratch memory they need (see docs/TRANSPOSE.md):
//
//   out of place      scratch = the whole destination (rows * cols * elem bytes)
//   cycle following   in place; scratch = a visited bitmap of ceil(rows*cols/8)
//                     bytes; random access, slow on large matrices
//   CKG decomposition in place; scratch = O(max(rows, cols)) elements; the
//                     column/row/column decomposition of Catanzaro, Keller and
//                     Garland, "A decomposition for in-place matrix
//                     transposition" (PPoPP 2014)
//
// Each strategy's scratch is a pure function of the shape, so a planner can
// budget it before anything is allocated. The in-place functions use only the
// caller's scratch span (and O(1) stack): they never allocate.
//
// Elements are opaque byte strings of elem_bytes bytes (any size >= 1; sizes
// 1, 2, 4, 8 and 16 take specialised paths). No alignment is required of any
// pointer.
//
// The inverse of transposing an [m, n] matrix is transposing the [n, m]
// result, so no inverse functions are provided.
//
// Thread safety: the functions keep no state; calls on disjoint buffers may run
// concurrently. A call must not share its data or scratch with another call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace relayout::kernels {

// Saturating sentinel returned by the scratch functions when the byte count
// does not fit in 64 bits or the arguments are invalid (negative dimensions,
// elem_bytes == 0): no budget can satisfy it.
inline constexpr uint64_t kTransposeScratchUnsatisfiable = UINT64_MAX;

// Bytes of memory, beyond the source, that TransposeOutOfPlace needs: the
// destination, rows * cols * elem_bytes.
uint64_t TransposeOutOfPlaceScratchBytes(int64_t rows, int64_t cols, size_t elem_bytes);

// Exact size of the visited bitmap TransposeCycleFollowing needs:
// ceil(rows * cols / 8) bytes (one bit per element), independent of elem size.
uint64_t CycleFollowingScratchBytes(int64_t rows, int64_t cols);

// Exact scratch bytes TransposeCkgInPlace needs:
//   0 when rows <= 1 or cols <= 1 (the transpose leaves the bytes unchanged),
//   else max(cols, rows * s * w) * elem_bytes, where
//     w = min(cols, max(1, kCkgStripBytes / elem_bytes)) columns per strip and
//     s = 2 strip buffers when cols > w, else 1.
// The row pass needs one row (cols elements); each column pass holds the strip
// being written back and the next one being read. With 4-byte elements this
// is max(cols, 32 * rows) elements; when cols <= w it is the whole matrix.
uint64_t CkgScratchBytes(int64_t rows, int64_t cols, size_t elem_bytes);

// Width in bytes of the column strips the CKG column passes move at once. A
// multiple of the cache line so each strip row is whole lines.
inline constexpr size_t kCkgStripBytes = 64;

// Writes the transpose of src ([rows, cols], row-major) into dst ([cols, rows],
// row-major). Cache-blocked.
// Returns true on success; false, with dst untouched, when rows or cols is
// negative, elem_bytes is 0, or the byte size overflows size_t.
// REQUIRES: src and dst each hold rows * cols * elem_bytes bytes and do not
// overlap.
[[nodiscard]] bool TransposeOutOfPlace(const void* src, void* dst, int64_t rows, int64_t cols,
                                       size_t elem_bytes);

// Transposes data in place ([rows, cols] -> [cols, rows]) by following the
// permutation's cycles, marking moved elements in visited_bitmap. Zeroes the
// bitmap first; the caller owns it and may reuse it afterwards.
// Returns true on success; false, with data untouched, on invalid arguments
// (as TransposeOutOfPlace) or when visited_bitmap is smaller than
// CycleFollowingScratchBytes(rows, cols). Only that many bytes are touched.
// REQUIRES: data holds rows * cols * elem_bytes bytes; the bitmap does not
// overlap data.
[[nodiscard]] bool TransposeCycleFollowing(void* data, int64_t rows, int64_t cols,
                                           size_t elem_bytes, std::span<std::byte> visited_bitmap);

// Transposes data in place ([rows, cols] -> [cols, rows]) by the CKG
// decomposition: an optional column rotation (when gcd(rows, cols) > 1),
// independent row shuffles, and column shuffles, each through scratch.
// Returns true on success; false, with data untouched, on invalid arguments or
// when scratch is smaller than CkgScratchBytes(rows, cols, elem_bytes). Only
// that many bytes of scratch are touched; its contents on return are
// unspecified.
// REQUIRES: data holds rows * cols * elem_bytes bytes; scratch does not overlap
// data.
[[nodiscard]] bool TransposeCkgInPlace(void* data, int64_t rows, int64_t cols, size_t elem_bytes,
                                       std::span<std::byte> scratch);

}  // namespace relayout::kernels
