#include "engine/conversion/layout_policy.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

namespace relayout {
namespace {

// Per-ISA parameters. A GEMV kernel keeps one accumulator register per row of
// a group and loads one register-wide K-block per row:
//   AVX-512 (32 zmm): KB = 16 fp32 lanes (16 halves convert to one zmm), and
//     G = 16 accumulators leaves half the register file for x and loads.
//   AVX2 (16 ymm): KB = 8 fp32 lanes, G = 8 accumulators leaves 8 registers.
//   K-pair: vdpbf16ps has 16 fp32 lanes, one per row: G = 16.
//   Quant: G = 8 scales are one 16-byte f16 load and one vcvtph2ps to a ymm;
//     AVX-512 keeps G = 8 (a 16-row quant group doubles scratch for no gain
//     in a memory-bound GEMV).
constexpr uint32_t kAvx512Rows = 16;
constexpr uint32_t kAvx512KBlock = 16;
constexpr uint32_t kAvx2Rows = 8;
constexpr uint32_t kAvx2KBlock = 8;
constexpr uint32_t kKPairRows = 16;
constexpr uint32_t kQuantRows = 8;
// GPU: 8 rows of Q4_0 blocks are 144 = 9 x 16 bytes (Q4_1 160, Q8_0 272).
constexpr uint32_t kGpuQuantRows = 8;
constexpr int kGpuMinComputeMajor = 8;

std::string_view kValidOverrides =
    "auto, native, or a layout name (row-major, gguf-blocks, rowgroup-g<G>k<KB>, "
    "q-rowgroup-g<G>, bf16-kpair-g<G>, transposed), then optional ,CLASS=LAYOUT or "
    ",CLASS:DTYPE=LAYOUT entries";
std::string_view kValidEntryLayouts =
    "native or a layout name (row-major, gguf-blocks, rowgroup-g<G>k<KB>, q-rowgroup-g<G>, "
    "bf16-kpair-g<G>, transposed)";

constexpr std::string_view kClassNames[kNumTensorClasses] = {"attn_qkv", "attn_output",
                                                             "ffn_gate_up", "ffn_down", "output"};

std::string ValidClassNames() {
  std::string out;
  for (std::string_view name : kClassNames) out += StrCat(out.empty() ? "" : ", ", name);
  return out;
}

std::string LayoutEntryName(const Layout& layout) {
  return layout.IsCommon() ? std::string("native") : layout.Name();
}

// One ",CLASS[:DTYPE]=LAYOUT" entry of the --layout grammar.
Result<LayoutOverride> ParseEntry(std::string_view whole, std::string_view entry) {
  const std::string subject = StrCat("--layout \"", whole, "\"");
  const size_t eq = entry.find('=');
  if (eq == std::string_view::npos) {
    return Status::InvalidArgument(
        subject, StrCat("entry \"", entry, "\" is not CLASS=LAYOUT or CLASS:DTYPE=LAYOUT"));
  }
  std::string_view key = entry.substr(0, eq);
  const std::string_view value = entry.substr(eq + 1);
  LayoutOverride out;
  if (const size_t colon = key.find(':'); colon != std::string_view::npos) {
    const std::string_view dtype = key.substr(colon + 1);
    out.dtype = DTypeFromName(dtype);
    if (!out.dtype.has_value()) {
      return Status::InvalidArgument(subject, StrCat("unknown dtype \"", dtype,
                                                     "\" (valid: a dtype name such as F32, F16, "
                                                     "BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"));
    }
    key = key.substr(0, colon);
  }
  const std::optional<TensorClass> tensor_class = TensorClassFromName(key);
  if (!tensor_class.has_value()) {
    return Status::InvalidArgument(
        subject, StrCat("unknown tensor class \"", key, "\" (valid: ", ValidClassNames(), ")"));
  }
  out.tensor_class = *tensor_class;
  if (value == "native") {
    out.layout = Layout::RowMajor();
    return out;
  }
  Result<Layout> layout = ParseLayoutName(value);
  if (!layout.ok()) {
    return Status::InvalidArgument(
        subject, StrCat("unknown layout \"", value, "\" (valid: ", kValidEntryLayouts, ")"));
  }
  out.layout = *layout;
  return out;
}

}  // namespace

std::optional<TensorClass> TensorClassOf(TensorRole role) {
  switch (role) {
    case TensorRole::kAttnQ:
    case TensorRole::kAttnK:
    case TensorRole::kAttnV:
      return TensorClass::kAttnQkv;
    case TensorRole::kAttnOutput:
      return TensorClass::kAttnOutput;
    case TensorRole::kFfnGate:
    case TensorRole::kFfnUp:
      return TensorClass::kFfnGateUp;
    case TensorRole::kFfnDown:
      return TensorClass::kFfnDown;
    case TensorRole::kOutput:
      return TensorClass::kOutput;
    default:
      return std::nullopt;
  }
}

std::string_view TensorClassName(TensorClass tensor_class) {
  const auto i = static_cast<size_t>(tensor_class);
  return i < kNumTensorClasses ? kClassNames[i] : std::string_view("unknown");
}

std::optional<TensorClass> TensorClassFromName(std::string_view name) {
  for (int i = 0; i < kNumTensorClasses; ++i) {
    if (kClassNames[i] == name) return static_cast<TensorClass>(i);
  }
  return std::nullopt;
}

std::string LayoutOverride::ToString() const {
  return StrCat(TensorClassName(tensor_class), dtype.has_value() ? ":" : "",
                dtype.has_value() ? DTypeName(*dtype) : std::string_view(), "=",
                LayoutEntryName(layout));
}

Result<LayoutPolicy> LayoutPolicy::Create(const DeviceCaps& caps, std::string_view override_name) {
  const size_t comma = override_name.find(',');
  const std::string_view base = override_name.substr(0, comma);
  std::optional<LayoutPolicy> policy;
  if (base == "auto") {
    policy = LayoutPolicy(caps, Mode::kAuto, Layout());
  } else if (base == "native") {
    policy = LayoutPolicy(caps, Mode::kNative, Layout());
  } else if (base == "tuned") {
    return Status::InvalidArgument(
        StrCat("--layout \"", override_name, "\""),
        "tuned is measured at load (PrepareLoad); a policy is created from auto, native or a "
        "layout name");
  } else if (Result<Layout> forced = ParseLayoutName(base); forced.ok()) {
    policy = LayoutPolicy(caps, Mode::kForced, *forced);
  } else {
    return Status::InvalidArgument(
        StrCat("--layout \"", override_name, "\""),
        StrCat("unknown layout \"", base, "\" (valid: ", kValidOverrides, ")"));
  }
  std::string_view rest =
      comma == std::string_view::npos ? std::string_view() : override_name.substr(comma + 1);
  while (comma != std::string_view::npos) {
    const size_t next = rest.find(',');
    ASSIGN_OR_RETURN(LayoutOverride entry, ParseEntry(override_name, rest.substr(0, next)));
    policy->SetOverride(entry);
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  return *policy;
}

void LayoutPolicy::SetOverride(const LayoutOverride& entry) {
  std::erase_if(overrides_, [&](const LayoutOverride& e) {
    return e.tensor_class == entry.tensor_class &&
           (e.dtype == entry.dtype || !entry.dtype.has_value());
  });
  overrides_.push_back(entry);
}

const LayoutOverride* LayoutPolicy::FindOverride(TensorClass tensor_class, DType dtype) const {
  const LayoutOverride* class_wide = nullptr;
  for (const LayoutOverride& e : overrides_) {
    if (e.tensor_class != tensor_class) continue;
    if (e.dtype == dtype) return &e;
    if (!e.dtype.has_value()) class_wide = &e;
  }
  return class_wide;
}

std::string LayoutPolicy::base_name() const {
  switch (mode_) {
    case Mode::kAuto:
      return "auto";
    case Mode::kNative:
      return "native";
    case Mode::kForced:
      return forced_.Name();
  }
  return "auto";
}

std::string LayoutPolicy::mode_name() const {
  std::string out = base_name();
  for (const LayoutOverride& e : overrides_) out += "," + e.ToString();
  return out;
}

Layout LayoutPolicy::ChooseAutoGpu(DType dtype) const {
  if (caps_.gpu_compute_major < kGpuMinComputeMajor) return CommonLayoutFor(dtype);
  switch (dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
      return Layout::QuantRowGroupInterleave(kGpuQuantRows);
    default:
      return CommonLayoutFor(dtype);
  }
}

Layout LayoutPolicy::ChooseAuto(DType dtype) const {
  if (caps_.gpu_compute_major > 0) return ChooseAutoGpu(dtype);
  const kernels::CpuFeatures& cpu = caps_.cpu;
  const bool avx2 = cpu.avx2 && cpu.fma;
  const Layout native = CommonLayoutFor(dtype);
  switch (dtype) {
    case DType::kBF16:
      if (cpu.avx512bf16) return Layout::Bf16KPair(kKPairRows);
      [[fallthrough]];
    case DType::kF32:
      if (cpu.avx512f) return Layout::RowGroupInterleave(kAvx512Rows, kAvx512KBlock);
      if (avx2) return Layout::RowGroupInterleave(kAvx2Rows, kAvx2KBlock);
      return native;
    case DType::kF16:
      if (cpu.avx512f) return Layout::RowGroupInterleave(kAvx512Rows, kAvx512KBlock);
      if (avx2 && cpu.f16c) return Layout::RowGroupInterleave(kAvx2Rows, kAvx2KBlock);
      // Without F16C every F16 load costs a scalar conversion in the inner
      // loop: widening once at load (twice the bytes, the planner counts both
      // sizes) makes the F32 kernels apply.
      if (avx2) return Layout::WidenedF32();
      return native;
    default:
      // Every GGUF block type the kernels read. The K-quant kernels read
      // tiles of 8 rows, one super-block of each at a time: grouped, those 8
      // super-blocks are one contiguous run instead of 8 streams a row apart,
      // which the prefetcher follows (measured 1.1-1.2x for prefill and
      // decode at 2048 x 2048).
      if (HasQuantRowGroupLayout(dtype) && avx2 && cpu.f16c) {
        return Layout::QuantRowGroupInterleave(kQuantRows);
      }
      return native;
  }
}

Layout LayoutPolicy::Choose(DType dtype, TensorRole role, std::span<const int64_t> shape) const {
  const std::optional<TensorClass> tensor_class = TensorClassOf(role);
  if (tensor_class.has_value() && shape.size() == 2) {
    if (const LayoutOverride* entry = FindOverride(*tensor_class, dtype); entry != nullptr) {
      const Layout& chosen = entry->layout;
      if (chosen.IsCommon()) return CommonLayoutFor(dtype);
      if (CheckLayoutApplies(chosen, dtype, shape).ok()) {
        // All tail rows: the same bytes as native (see ChooseBase).
        if (chosen.group_rows > 0 && shape[0] < static_cast<int64_t>(chosen.group_rows)) {
          return CommonLayoutFor(dtype);
        }
        return chosen;
      }
    }
  }
  return ChooseBase(dtype, role, shape);
}

Layout LayoutPolicy::ChooseBase(DType dtype, TensorRole role,
                                std::span<const int64_t> shape) const {
  const Layout native = CommonLayoutFor(dtype);
  if (mode_ == Mode::kNative || !IsMatmulWeight(role) || shape.size() != 2) return native;
  const Layout chosen = mode_ == Mode::kForced ? forced_ : ChooseAuto(dtype);
  if (chosen.IsCommon() || !CheckLayoutApplies(chosen, dtype, shape).ok()) return native;
  // All rows would be tail rows: the layout equals the common one byte for
  // byte, and naming it would only make kernels take a slower path.
  if (chosen.group_rows > 0 && shape[0] < static_cast<int64_t>(chosen.group_rows)) return native;
  return chosen;
}

std::string SummarizeLayoutChoices(std::span<const TensorLayoutChoice> choices) {
  // Keyed by (role, dtype, layout name) so the output is in role order.
  std::map<std::tuple<TensorRole, DType, std::string>, size_t> classes;
  for (const TensorLayoutChoice& c : choices) {
    ++classes[{c.role, c.dtype, c.layout.IsCommon() ? std::string("native") : c.layout.Name()}];
  }
  std::string out;
  for (const auto& [key, count] : classes) {
    const auto& [role, dtype, name] = key;
    out += StrCat(TensorRoleName(role), " ", DTypeName(dtype), " -> ", name, " (", count,
                  count == 1 ? " tensor)\n" : " tensors)\n");
  }
  return out;
}

}  // namespace relayout
