#include "engine/conversion/layout_policy.h"

#include <map>
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
    "q-rowgroup-g<G>, bf16-kpair-g<G>, transposed)";

}  // namespace

Result<LayoutPolicy> LayoutPolicy::Create(const DeviceCaps& caps, std::string_view override_name) {
  if (override_name == "auto") return LayoutPolicy(caps, Mode::kAuto, Layout());
  if (override_name == "native") return LayoutPolicy(caps, Mode::kNative, Layout());
  Result<Layout> forced = ParseLayoutName(override_name);
  if (!forced.ok()) {
    return Status::InvalidArgument(StrCat("--layout \"", override_name, "\""),
                                   StrCat("unknown layout (valid: ", kValidOverrides, ")"));
  }
  return LayoutPolicy(caps, Mode::kForced, *forced);
}

std::string LayoutPolicy::mode_name() const {
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
