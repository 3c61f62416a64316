// Layout: how a tensor's elements sit in memory, as a small value type.
//
// Common layouts are how checkpoints store tensors: kRowMajor ([out, in],
// outermost first) for elementwise dtypes, kGgufBlocks (GGUF quantization
// blocks in file order) for block-quantized ones. Preferred layouts are what
// fast kernels read; each is described byte by byte in docs/LAYOUTS.md and in
// its kernel header:
//   kRowGroupInterleave       kernels/cpu/layout/row_group_interleave.h  (G, KB)
//   kQuantRowGroupInterleave  kernels/cpu/layout/quant_row_group.h       (G)
//   kBf16KPair                kernels/cpu/layout/bf16_kpair.h            (G)
//   kTransposed               [in, out] row-major; no parameters beyond the
//                             shape (its transforms live with the transpose
//                             kernels)
//   kWidenedF32               F16/BF16 elements widened to F32, row-major:
//                             the one size-changing layout (twice the bytes),
//                             for CPUs without a fast half-precision path
//
// Every layout has a stable name, parsed back by ParseLayoutName:
//   "row-major", "gguf-blocks", "rowgroup-g8k8", "q-rowgroup-g8",
//   "bf16-kpair-g16", "transposed", "f32-widened".
// ("native" is not a layout name: LayoutPolicy uses it to mean "the dtype's
// common layout", which is row-major or gguf-blocks depending on the dtype.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/tensor/dtype.h"

namespace relayout {

enum class LayoutKind : uint8_t {
  kRowMajor,
  kGgufBlocks,
  kRowGroupInterleave,
  kQuantRowGroupInterleave,
  kBf16KPair,
  kTransposed,
  kWidenedF32,
};

// Parameter bounds accepted by the factories' callers and by parsing.
inline constexpr uint32_t kMaxGroupRows = 256;
inline constexpr uint32_t kMaxKBlock = 4096;

struct Layout {
  LayoutKind kind = LayoutKind::kRowMajor;
  uint32_t group_rows = 0;  // G; 0 for kinds without row groups
  uint32_t k_block = 0;     // KB, in elements; 0 unless kRowGroupInterleave

  static Layout RowMajor() { return {LayoutKind::kRowMajor, 0, 0}; }
  static Layout GgufBlocks() { return {LayoutKind::kGgufBlocks, 0, 0}; }
  static Layout RowGroupInterleave(uint32_t g, uint32_t kb) {
    return {LayoutKind::kRowGroupInterleave, g, kb};
  }
  static Layout QuantRowGroupInterleave(uint32_t g) {
    return {LayoutKind::kQuantRowGroupInterleave, g, 0};
  }
  static Layout Bf16KPair(uint32_t g = 16) { return {LayoutKind::kBf16KPair, g, 0}; }
  static Layout Transposed() { return {LayoutKind::kTransposed, 0, 0}; }
  static Layout WidenedF32() { return {LayoutKind::kWidenedF32, 0, 0}; }

  // True for the checkpoint layouts (row-major, GGUF blocks).
  bool IsCommon() const { return kind == LayoutKind::kRowMajor || kind == LayoutKind::kGgufBlocks; }
  // The stable name, e.g. "rowgroup-g8k8".
  std::string Name() const;

  friend bool operator==(const Layout&, const Layout&) = default;
};

// The layout a checkpoint stores this dtype in.
Layout CommonLayoutFor(DType dtype);

// The layout with this name. InvalidArgument naming the input and listing the
// valid names when it is unknown, malformed ("rowgroup-g08k8", "rowgroup-g8")
// or has parameters out of bounds (G in [1, kMaxGroupRows], KB in
// [1, kMaxKBlock]).
Result<Layout> ParseLayoutName(std::string_view name);

// The name patterns, for help texts and error messages.
std::string_view LayoutNamePatterns();

// OK when a tensor of this dtype and shape can be stored in `layout`:
// common layouts match the dtype's kind; preferred layouts need a 2-D shape
// and a dtype their kernels handle (row-group and transposed: F32/F16/BF16;
// quant row-group: Q8_0/Q4_0/Q4_1; K-pair: BF16; widened: F16/BF16) and
// valid parameters.
// Otherwise InvalidArgument "layout <name> does not apply to <dtype> <shape>: why".
Status CheckLayoutApplies(const Layout& layout, DType dtype, std::span<const int64_t> shape);

// Whether q-rowgroup-g<G> exists for the dtype: every GGUF block type the
// kernels read (kernels/cpu/layout/quant_row_group.h).
bool HasQuantRowGroupLayout(DType dtype);

}  // namespace relayout
