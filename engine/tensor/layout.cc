#include "engine/tensor/layout.h"

#include <optional>

namespace relayout {
namespace {

constexpr std::string_view kPatterns =
    "row-major, gguf-blocks, rowgroup-g<G>k<KB>, q-rowgroup-g<G>, bf16-kpair-g<G>, transposed, "
    "f32-widened";

// Parses a decimal number in [1, max] at the front of `s`, consuming it.
// No sign, no leading zero, so every layout has exactly one name.
std::optional<uint32_t> ConsumeNumber(std::string_view& s, uint32_t max) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    if (v > max) return std::nullopt;
    ++i;
  }
  if (i == 0 || s[0] == '0') return std::nullopt;
  s.remove_prefix(i);
  return static_cast<uint32_t>(v);
}

bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

bool IsFloatDType(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

}  // namespace

bool HasQuantRowGroupLayout(DType d) {
  switch (d) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kIQ4_NL:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

std::string Layout::Name() const {
  switch (kind) {
    case LayoutKind::kRowMajor:
      return "row-major";
    case LayoutKind::kGgufBlocks:
      return "gguf-blocks";
    case LayoutKind::kRowGroupInterleave:
      return StrCat("rowgroup-g", group_rows, "k", k_block);
    case LayoutKind::kQuantRowGroupInterleave:
      return StrCat("q-rowgroup-g", group_rows);
    case LayoutKind::kBf16KPair:
      return StrCat("bf16-kpair-g", group_rows);
    case LayoutKind::kTransposed:
      return "transposed";
    case LayoutKind::kWidenedF32:
      return "f32-widened";
  }
  return "unknown";
}

Layout CommonLayoutFor(DType dtype) {
  return Traits(dtype).is_quantized ? Layout::GgufBlocks() : Layout::RowMajor();
}

std::string_view LayoutNamePatterns() { return kPatterns; }

Result<Layout> ParseLayoutName(std::string_view name) {
  std::string_view s = name;
  std::optional<Layout> layout;
  if (s == "row-major") {
    layout = Layout::RowMajor();
  } else if (s == "gguf-blocks") {
    layout = Layout::GgufBlocks();
  } else if (s == "transposed") {
    layout = Layout::Transposed();
  } else if (s == "f32-widened") {
    layout = Layout::WidenedF32();
  } else if (ConsumePrefix(s, "rowgroup-g")) {
    const std::optional<uint32_t> g = ConsumeNumber(s, kMaxGroupRows);
    if (g && ConsumePrefix(s, "k")) {
      const std::optional<uint32_t> kb = ConsumeNumber(s, kMaxKBlock);
      if (kb && s.empty()) layout = Layout::RowGroupInterleave(*g, *kb);
    }
  } else if (ConsumePrefix(s, "q-rowgroup-g")) {
    const std::optional<uint32_t> g = ConsumeNumber(s, kMaxGroupRows);
    if (g && s.empty()) layout = Layout::QuantRowGroupInterleave(*g);
  } else if (ConsumePrefix(s, "bf16-kpair-g")) {
    const std::optional<uint32_t> g = ConsumeNumber(s, kMaxGroupRows);
    if (g && s.empty()) layout = Layout::Bf16KPair(*g);
  }
  if (!layout) {
    return Status::InvalidArgument(StrCat("layout \"", name, "\""),
                                   StrCat("unknown layout name (valid: ", kPatterns, "; G in [1, ",
                                          kMaxGroupRows, "], KB in [1, ", kMaxKBlock, "])"));
  }
  return *layout;
}

Status CheckLayoutApplies(const Layout& layout, DType dtype, std::span<const int64_t> shape) {
  auto refuse = [&](std::string_view why) {
    return Status::InvalidArgument(StrCat("layout ", layout.Name(), " does not apply to ",
                                          DTypeName(dtype), " ", ShapeToString(shape)),
                                   why);
  };
  const bool quantized = Traits(dtype).is_quantized;
  switch (layout.kind) {
    case LayoutKind::kRowMajor:
      if (quantized) return refuse("quantized dtypes are stored as gguf-blocks");
      return Status::OK();
    case LayoutKind::kGgufBlocks:
      if (!quantized) return refuse("only quantized dtypes are stored as GGUF blocks");
      return Status::OK();
    case LayoutKind::kRowGroupInterleave:
    case LayoutKind::kTransposed:
      if (!IsFloatDType(dtype)) return refuse("needs F32, F16 or BF16");
      break;
    case LayoutKind::kQuantRowGroupInterleave:
      if (!HasQuantRowGroupLayout(dtype))
        return refuse(
            "needs a GGUF block type the kernels read (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, "
            "Q2_K..Q6_K)");
      break;
    case LayoutKind::kBf16KPair:
      if (dtype != DType::kBF16) return refuse("needs BF16");
      break;
    case LayoutKind::kWidenedF32:
      if (dtype != DType::kF16 && dtype != DType::kBF16) return refuse("needs F16 or BF16");
      return Status::OK();
  }
  if (shape.size() != 2) return refuse("needs a 2-D [out, in] shape");
  if (quantized && shape[1] % Traits(dtype).block_elems != 0) {
    return refuse(
        StrCat("K is not a multiple of the ", Traits(dtype).block_elems, "-element block"));
  }
  if (layout.kind != LayoutKind::kTransposed &&
      (layout.group_rows < 1 || layout.group_rows > kMaxGroupRows)) {
    return refuse("group rows out of range");
  }
  if (layout.kind == LayoutKind::kRowGroupInterleave &&
      (layout.k_block < 1 || layout.k_block > kMaxKBlock)) {
    return refuse("K block out of range");
  }
  return Status::OK();
}

}  // namespace relayout
