#include "engine/conversion/transform.h"

#include <algorithm>
#include <cstring>

#include "engine/device/device_weight.h"
#include "kernels/cpu/layout/bf16_kpair.h"
#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/layout/row_group_interleave.h"
#include "kernels/cpu/layout/transpose.h"
#include "kernels/cpu/layout/widen.h"

namespace relayout {
namespace {

namespace k = kernels;

// Per-strategy DRAM traffic factors (see StrategyOption::cost).
constexpr double kBlockedInPlaceFactor = 2.0;
constexpr double kOutOfPlaceFactor = 4.0;
constexpr double kCycleFollowingFactor = 8.0;
constexpr double kCkgFactor = 6.0;

// The layout check (CheckLayoutApplies) admits only the kernels' row-group
// block types here.
k::QuantBlockFormat QuantFormatOf(DType dtype) {
  k::QuantBlockFormat format;
  Result<k::WeightType> type = WeightTypeFor("", dtype);
  if (!type.ok() || !k::QuantRowGroupFormatOf(*type, &format)) return {};
  return format;
}

// The non-common side of a supported non-identity spec.
const Layout& PreferredSide(const TransformSpec& spec) {
  return spec.from.IsCommon() ? spec.to : spec.from;
}

k::RowGroupParams RowGroupParamsOf(const TransformSpec& spec, const Layout& pref) {
  return k::RowGroupParams{.rows = static_cast<size_t>(spec.shape[0]),
                           .cols = static_cast<size_t>(spec.shape[1]),
                           .elem_bytes = Traits(spec.dtype).block_bytes,
                           .group_rows = pref.group_rows,
                           .k_block = pref.k_block};
}

k::QuantRowGroupParams QuantParamsOf(const TransformSpec& spec, const Layout& pref) {
  return k::QuantRowGroupParams{
      .rows = static_cast<size_t>(spec.shape[0]),
      .blocks_per_row = static_cast<size_t>(spec.shape[1]) / Traits(spec.dtype).block_elems,
      .format = QuantFormatOf(spec.dtype),
      .group_rows = pref.group_rows};
}

k::Bf16KPairParams KPairParamsOf(const TransformSpec& spec, const Layout& pref) {
  return k::Bf16KPairParams{.rows = static_cast<size_t>(spec.shape[0]),
                            .cols = static_cast<size_t>(spec.shape[1]),
                            .group_rows = pref.group_rows};
}

// Runs one of a kernel family's four entry points over every group.
template <typename Params>
struct KernelFamily {
  bool (*forward)(const void*, void*, const Params&, size_t, size_t);
  bool (*inverse)(const void*, void*, const Params&, size_t, size_t);
  bool (*forward_in_place)(void*, const Params&, size_t, size_t, void*, size_t);
  bool (*inverse_in_place)(void*, const Params&, size_t, size_t, void*, size_t);
  size_t (*group_count)(const Params&);
};

template <typename Params>
bool Run(const KernelFamily<Params>& family, const Params& params, bool forward, bool in_place,
         std::byte* data, std::byte* scratch, size_t scratch_bytes) {
  const size_t groups = family.group_count(params);
  if (in_place) {
    return forward ? family.forward_in_place(data, params, 0, groups, scratch, scratch_bytes)
                   : family.inverse_in_place(data, params, 0, groups, scratch, scratch_bytes);
  }
  return forward ? family.forward(data, scratch, params, 0, groups)
                 : family.inverse(data, scratch, params, 0, groups);
}

constexpr KernelFamily<k::RowGroupParams> kRowGroupFamily{
    k::RowGroupInterleaveForward, k::RowGroupInterleaveInverse, k::RowGroupInterleaveForwardInPlace,
    k::RowGroupInterleaveInverseInPlace, k::RowGroupCount};
constexpr KernelFamily<k::QuantRowGroupParams> kQuantFamily{
    k::QuantRowGroupForward, k::QuantRowGroupInverse, k::QuantRowGroupForwardInPlace,
    k::QuantRowGroupInverseInPlace, k::QuantRowGroupCount};
constexpr KernelFamily<k::Bf16KPairParams> kKPairFamily{
    k::Bf16KPairForward, k::Bf16KPairInverse, k::Bf16KPairForwardInPlace,
    k::Bf16KPairInverseInPlace, k::Bf16KPairGroupCount};

// `moves_nothing`: the two layouts coincide byte for byte (every row is a
// tail row, G == 1, or one K-block spans the whole row), so the planner can
// skip the tensor.
void AddRowGroupStrategies(TransformSpec& spec, uint64_t group_bytes, uint64_t full_groups,
                           bool moves_nothing) {
  const double bytes = static_cast<double>(spec.from_bytes);
  if (moves_nothing || full_groups == 0) {
    spec.strategies.push_back({Strategy::kNone, 0, 0.0});
    return;
  }
  spec.row_group_bytes = group_bytes;
  spec.row_groups = full_groups;
  spec.strategies.push_back(
      {Strategy::kBlockedInPlace, group_bytes, bytes * kBlockedInPlaceFactor});
  spec.strategies.push_back({Strategy::kOutOfPlace, spec.from_bytes, bytes * kOutOfPlaceFactor});
}

void AddTransposeStrategies(TransformSpec& spec) {
  const uint64_t rows = static_cast<uint64_t>(spec.shape[0]);
  const uint64_t cols = static_cast<uint64_t>(spec.shape[1]);
  const double bytes = static_cast<double>(spec.from_bytes);
  if (rows <= 1 || cols <= 1) {  // a vector: transposing moves nothing
    spec.strategies.push_back({Strategy::kNone, 0, 0.0});
    return;
  }
  // The transpose kernels declare their own scratch (kernels/cpu/layout/transpose.h);
  // the inverse transposes [cols, rows] and needs the same bytes, as each
  // formula is symmetric in the two dims up to the CKG strip width, which
  // is why both directions are asked and the larger kept.
  const auto r = static_cast<int64_t>(rows), c = static_cast<int64_t>(cols);
  const size_t elem = Traits(spec.dtype).block_bytes;
  const uint64_t bitmap = k::CycleFollowingScratchBytes(r, c);
  const uint64_t ckg = std::max(k::CkgScratchBytes(r, c, elem), k::CkgScratchBytes(c, r, elem));
  if (ckg < spec.from_bytes) {
    spec.strategies.push_back({Strategy::kCkgInPlace, ckg, bytes * kCkgFactor});
  }
  spec.strategies.push_back({Strategy::kCycleFollowing, bitmap, bytes * kCycleFollowingFactor});
  spec.strategies.push_back({Strategy::kOutOfPlace, spec.from_bytes, bytes * kOutOfPlaceFactor});
  std::stable_sort(spec.strategies.begin(), spec.strategies.end(),
                   [](const StrategyOption& a, const StrategyOption& b) {
                     return a.scratch_bytes < b.scratch_bytes;
                   });
}

// Runs a transpose of spec's [rows, cols] tensor (forward) or of its
// [cols, rows] transpose back (inverse) with the chosen kernel.
bool ApplyTranspose(const TransformSpec& spec, Strategy strategy, bool forward,
                    std::span<std::byte> data, std::span<std::byte> scratch) {
  int64_t rows = spec.shape[0], cols = spec.shape[1];
  if (!forward) std::swap(rows, cols);
  const size_t elem = Traits(spec.dtype).block_bytes;
  switch (strategy) {
    case Strategy::kCkgInPlace:
      return k::TransposeCkgInPlace(data.data(), rows, cols, elem, scratch);
    case Strategy::kCycleFollowing:
      return k::TransposeCycleFollowing(data.data(), rows, cols, elem, scratch);
    case Strategy::kOutOfPlace:
      if (!k::TransposeOutOfPlace(data.data(), scratch.data(), rows, cols, elem)) return false;
      std::memcpy(data.data(), scratch.data(), data.size());
      return true;
    default:
      return false;
  }
}

std::string OfferedList(const TransformSpec& spec) {
  std::string out;
  for (const StrategyOption& o : spec.strategies) {
    if (!out.empty()) out += ", ";
    out += StrategyName(o.strategy);
  }
  return out;
}

}  // namespace

const StrategyOption* TransformSpec::Find(Strategy strategy) const {
  for (const StrategyOption& o : strategies) {
    if (o.strategy == strategy) return &o;
  }
  return nullptr;
}

std::string TransformSpec::Describe() const {
  return StrCat(DTypeName(dtype), " ", ShapeToString(shape), " ", from.Name(), " -> ", to.Name());
}

Result<TransformSpec> DescribeTransform(DType dtype, std::span<const int64_t> shape,
                                        const Layout& from, const Layout& to) {
  TransformSpec spec;
  spec.dtype = dtype;
  spec.shape.assign(shape.begin(), shape.end());
  spec.from = from;
  spec.to = to;
  const std::string subject = StrCat("transform ", spec.Describe());
  Result<uint64_t> bytes = ByteSizeOf(dtype, shape);
  if (!bytes.ok()) return bytes.status().WithPrefix(subject);
  spec.from_bytes = spec.to_bytes = *bytes;
  RETURN_IF_ERROR(CheckLayoutApplies(from, dtype, shape).WithPrefix(subject));
  RETURN_IF_ERROR(CheckLayoutApplies(to, dtype, shape).WithPrefix(subject));

  if (from == to) {
    spec.strategies.push_back({Strategy::kNone, 0, 0.0});
    return spec;
  }
  if (from.IsCommon() == to.IsCommon()) {
    return Status::InvalidArgument(
        subject, "only common <-> preferred transforms are supported (convert through " +
                     CommonLayoutFor(dtype).Name() + ")");
  }
  const Layout& pref = PreferredSide(spec);
  switch (pref.kind) {
    case LayoutKind::kRowGroupInterleave: {
      const k::RowGroupParams p = RowGroupParamsOf(spec, pref);
      AddRowGroupStrategies(spec, k::RowGroupScratchBytes(p), p.rows / p.group_rows,
                            p.group_rows == 1 || p.cols <= p.k_block);
      break;
    }
    case LayoutKind::kQuantRowGroupInterleave: {
      const k::QuantRowGroupParams p = QuantParamsOf(spec, pref);
      AddRowGroupStrategies(spec, k::QuantRowGroupScratchBytes(p), p.rows / p.group_rows,
                            p.group_rows == 1);
      break;
    }
    case LayoutKind::kBf16KPair: {
      const k::Bf16KPairParams p = KPairParamsOf(spec, pref);
      AddRowGroupStrategies(spec, k::Bf16KPairScratchBytes(p), p.rows / p.group_rows,
                            p.group_rows == 1 || p.cols <= 2);
      break;
    }
    case LayoutKind::kTransposed:
      AddTransposeStrategies(spec);
      break;
    case LayoutKind::kWidenedF32: {
      // Size-changing: the source and the widened buffer coexist while the
      // elements are converted, so the scratch is the source's bytes.
      const uint64_t elems = spec.from_bytes / 2;
      if (to.kind == LayoutKind::kWidenedF32) {
        spec.to_bytes = elems * 4;
      } else {
        spec.from_bytes = elems * 4;
        spec.to_bytes = elems * 2;
      }
      spec.is_permutation = false;
      spec.strategies.push_back({Strategy::kAllocateThenFree, spec.from_bytes,
                                 static_cast<double>(spec.from_bytes + spec.to_bytes)});
      break;
    }
    case LayoutKind::kRowMajor:
    case LayoutKind::kGgufBlocks:
      return Status::Internal(subject, "common layout on the preferred side");
  }
  return spec;
}

Status ApplyTransform(const TransformSpec& spec, Strategy strategy, std::span<std::byte> data,
                      std::span<std::byte> scratch, Direction direction) {
  const std::string subject = StrCat("transform ", spec.Describe());
  const StrategyOption* option = spec.Find(strategy);
  if (option == nullptr) {
    return Status::InvalidArgument(subject,
                                   StrCat("strategy ", StrategyName(strategy),
                                          " not offered (offered: ", OfferedList(spec), ")"));
  }
  if (data.size() != spec.from_bytes) {
    return Status::InvalidArgument(
        subject, StrCat("data is ", data.size(), " bytes, tensor is ", spec.from_bytes));
  }
  if (scratch.size() < option->scratch_bytes) {
    return Status::InvalidArgument(
        subject, StrCat("scratch is ", scratch.size(), " bytes, ", StrategyName(strategy),
                        " needs ", option->scratch_bytes));
  }
  if (strategy == Strategy::kNone) return Status::OK();
  const Layout& pref = PreferredSide(spec);
  // The kernels' "forward" is common -> preferred.
  const bool kernel_forward = spec.from.IsCommon() == (direction == Direction::kForward);
  const bool in_place = strategy == Strategy::kBlockedInPlace;
  if (!spec.is_permutation) {
    return Status::InvalidArgument(subject, "size-changing: use ApplySizeChangingTransform");
  }
  if (pref.kind == LayoutKind::kTransposed) {
    return ApplyTranspose(spec, strategy, kernel_forward, data, scratch)
               ? Status::OK()
               : Status::Internal(subject, "transpose kernel refused validated parameters");
  }
  if (strategy != Strategy::kBlockedInPlace && strategy != Strategy::kOutOfPlace) {
    return Status::Internal(
        subject, StrCat("strategy ", StrategyName(strategy), " offered for an interleave"));
  }
  const size_t scratch_bytes = static_cast<size_t>(option->scratch_bytes);
  bool ran = false;
  switch (pref.kind) {
    case LayoutKind::kRowGroupInterleave:
      ran = Run(kRowGroupFamily, RowGroupParamsOf(spec, pref), kernel_forward, in_place,
                data.data(), scratch.data(), scratch_bytes);
      break;
    case LayoutKind::kQuantRowGroupInterleave:
      ran = Run(kQuantFamily, QuantParamsOf(spec, pref), kernel_forward, in_place, data.data(),
                scratch.data(), scratch_bytes);
      break;
    case LayoutKind::kBf16KPair:
      ran = Run(kKPairFamily, KPairParamsOf(spec, pref), kernel_forward, in_place, data.data(),
                scratch.data(), scratch_bytes);
      break;
    case LayoutKind::kTransposed:  // handled above
    case LayoutKind::kWidenedF32:
    case LayoutKind::kRowMajor:
    case LayoutKind::kGgufBlocks:
      return Status::Internal(subject, "common layout on the preferred side");
  }
  if (!ran) return Status::Internal(subject, "kernel refused validated parameters");
  if (!in_place && !data.empty()) std::memcpy(data.data(), scratch.data(), data.size());
  return Status::OK();
}

Status ApplySizeChangingTransform(const TransformSpec& spec, std::span<const std::byte> src,
                                  std::span<std::byte> dst, Direction direction) {
  const std::string subject = StrCat("transform ", spec.Describe());
  if (spec.is_permutation)
    return Status::InvalidArgument(subject, "not size-changing: use ApplyTransform");
  const bool forward = direction == Direction::kForward;
  const uint64_t src_bytes = forward ? spec.from_bytes : spec.to_bytes;
  const uint64_t dst_bytes = forward ? spec.to_bytes : spec.from_bytes;
  if (src.size() != src_bytes || dst.size() != dst_bytes) {
    return Status::InvalidArgument(subject, StrCat("buffers of ", src.size(), " and ", dst.size(),
                                                   " bytes, need ", src_bytes, " and ", dst_bytes));
  }
  // kWidenedF32 is the only size-changing layout; which side is wide decides
  // whether this call widens or narrows.
  const bool widen = forward == (spec.to.kind == LayoutKind::kWidenedF32);
  const bool bf16 = spec.dtype == DType::kBF16;
  const auto* in16 = reinterpret_cast<const uint16_t*>(src.data());
  const auto* in32 = reinterpret_cast<const float*>(src.data());
  if (widen) {
    const size_t n = src.size() / 2;
    auto* out = reinterpret_cast<float*>(dst.data());
    bf16 ? k::WidenBF16ToF32(in16, out, n) : k::WidenF16ToF32(in16, out, n);
  } else {
    const size_t n = src.size() / 4;
    auto* out = reinterpret_cast<uint16_t*>(dst.data());
    bf16 ? k::NarrowF32ToBF16(in32, out, n) : k::NarrowF32ToF16(in32, out, n);
  }
  return Status::OK();
}

}  // namespace relayout
