#include "engine/conversion/layout_tuner.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "engine/conversion/transform.h"
#include "engine/device/device_weight.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The layouts tried besides native (layout_tuner.h: the CPU kernels' group
// layouts; each is kept only where it applies and the device runs it).
const Layout kCandidateLayouts[] = {
    Layout::RowGroupInterleave(8, 8),
    Layout::RowGroupInterleave(16, 16),
    Layout::Bf16KPair(16),
    Layout::QuantRowGroupInterleave(8),
};

// Rows of the timed slice are a multiple of this when the tensor is cut.
constexpr int64_t kSliceRowMultiple = 16;
// Kept for the setup (transform, upload) of the timings still to come.
constexpr double kSetupReserve = 0.1;

std::string LayoutLabel(const Layout& layout) {
  return layout.IsCommon() ? std::string("native") : layout.Name();
}

struct Group {
  TensorRole role = TensorRole::kOther;  // of the representative
  int64_t tensors = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t timed_rows = 0;
  std::vector<Layout> candidates;  // native first
  bool fixed = false;              // by the user's overrides
};

// Bytes where every f16/bf16/f32 read at any alignment is a positive
// normal number below 1: each byte in [0x04, 0x3b] (layout_tuner.h).
void FillRandom(std::span<std::byte> out) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  size_t i = 0;
  while (i < out.size()) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    uint64_t bits = state * 0x2545f4914f6cdd1dull;
    for (int b = 0; b < 8 && i < out.size(); ++b, ++i, bits >>= 8) {
      out[i] = static_cast<std::byte>(0x04 + ((bits & 0xff) * 56 >> 8));
    }
  }
}

// A candidate this many times slower than the best at decode is out.
constexpr double kGiveUpFactor = 4.0;

// Best seconds of one Matmul + Synchronize: a warm-up call, then timed
// calls until `slice` seconds (warm-up included) or `max_repeats`. When the
// warm-up alone used the slice, it is the measurement. With give_up_above
// > 0, a first timed call slower than it ends the timing: a candidate that
// far behind is not worth the rest of its slice (the warm-up, which picks
// kernels and grows their scratch, is not judged).
Result<double> TimeMatmul(Device* device, const DeviceMatmulWeight& w, DeviceRef x, int64_t tokens,
                          DeviceRef y, double slice, int max_repeats, double give_up_above,
                          int* repeats) {
  Clock::time_point start = Clock::now();
  RETURN_IF_ERROR(device->Matmul(w, x, tokens, y));
  RETURN_IF_ERROR(device->Synchronize());
  double best = SecondsSince(start);
  double spent = best;
  *repeats = 0;
  while (*repeats < max_repeats && spent < slice &&
         !(give_up_above > 0 && *repeats == 1 && best > give_up_above)) {
    start = Clock::now();
    RETURN_IF_ERROR(device->Matmul(w, x, tokens, y));
    RETURN_IF_ERROR(device->Synchronize());
    const double dt = SecondsSince(start);
    best = std::min(best, dt);
    spent += dt;
    ++*repeats;
  }
  return best;
}

// The static part of the candidate list: applies, not all tail, and a
// transform from the common layout exists.
std::vector<Layout> StaticCandidates(DType dtype, std::span<const int64_t> shape) {
  std::vector<Layout> out = {CommonLayoutFor(dtype)};
  for (const Layout& layout : kCandidateLayouts) {
    if (!CheckLayoutApplies(layout, dtype, shape).ok()) continue;
    if (layout.group_rows > 0 && shape[0] < static_cast<int64_t>(layout.group_rows)) continue;
    if (!DescribeTransform(dtype, shape, CommonLayoutFor(dtype), layout).ok()) continue;
    out.push_back(layout);
  }
  return out;
}

}  // namespace

std::vector<TunableTensor> TunableTensorsOf(const Checkpoint& checkpoint) {
  std::vector<TunableTensor> out;
  const std::vector<TensorInfo>& infos = checkpoint.source->tensors();
  for (const BoundTensor& bound : checkpoint.model.tensors) {
    const TensorInfo& info = infos[bound.source_index];
    if (!TensorClassOf(bound.ref.role).has_value() || info.shape.size() != 2) continue;
    out.push_back({bound.ref.role, info.dtype, info.shape});
  }
  return out;
}

Result<LayoutPolicy> TuneLayouts(const Checkpoint& checkpoint, const DeviceCaps& caps,
                                 Device* device, const TuningOptions& options,
                                 LayoutTuningReport* report) {
  const std::vector<TunableTensor> tensors = TunableTensorsOf(checkpoint);
  return TuneLayouts(tensors, caps, device, options, report);
}

Result<LayoutPolicy> TuneLayouts(std::span<const TunableTensor> tensors, const DeviceCaps& caps,
                                 Device* device, const TuningOptions& options,
                                 LayoutTuningReport* report) {
  const Clock::time_point start = Clock::now();
  if (device == nullptr) return Status::InvalidArgument("layout tuning", "no device");
  if (!(options.max_seconds > 0) || options.decode_tokens < 1 || options.prefill_tokens < 1 ||
      options.max_repeats < 0) {
    return Status::InvalidArgument(
        "layout tuning",
        StrCat("max_seconds ", options.max_seconds, ", decode_tokens ", options.decode_tokens,
               ", prefill_tokens ", options.prefill_tokens, ", max_repeats ", options.max_repeats,
               ": need seconds > 0, tokens >= 1, repeats >= 0"));
  }
  ASSIGN_OR_RETURN(
      LayoutPolicy user,
      LayoutPolicy::Create(caps, options.overrides.empty() ? std::string("auto")
                                                           : StrCat("auto,", options.overrides)));
  const LayoutPolicy auto_policy = *LayoutPolicy::Create(caps, "auto");

  // (class, dtype) -> its representative, in class then dtype order.
  std::map<std::pair<TensorClass, DType>, Group> groups;
  for (const TunableTensor& t : tensors) {
    const std::optional<TensorClass> tensor_class = TensorClassOf(t.role);
    if (!tensor_class.has_value() || t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1) {
      continue;
    }
    Group& g = groups[{*tensor_class, t.dtype}];
    ++g.tensors;
    if (t.shape[0] * t.shape[1] > g.rows * g.cols) {
      g.role = t.role;
      g.rows = t.shape[0];
      g.cols = t.shape[1];
    }
  }
  int64_t timings_left = 0;
  uint64_t max_bytes = 0;
  for (auto& [key, g] : groups) {
    const auto& [tensor_class, dtype] = key;
    for (const LayoutOverride& e : user.overrides()) {
      if (e.tensor_class == tensor_class && (!e.dtype.has_value() || *e.dtype == dtype)) {
        g.fixed = true;
      }
    }
    const std::vector<int64_t> one_row = {1, g.cols};
    const Result<uint64_t> row_bytes = ByteSizeOf(dtype, one_row);
    if (!row_bytes.ok()) {
      g.fixed = true;  // no kernel reads it: nothing to time
      continue;
    }
    g.timed_rows = g.rows;
    if (*row_bytes * static_cast<uint64_t>(g.rows) > kMaxTuningWeightBytes) {
      const auto fit = static_cast<int64_t>(kMaxTuningWeightBytes / *row_bytes);
      g.timed_rows = std::max<int64_t>(
          1, fit >= kSliceRowMultiple ? fit / kSliceRowMultiple * kSliceRowMultiple : fit);
    }
    const std::vector<int64_t> shape = {g.timed_rows, g.cols};
    g.candidates = StaticCandidates(dtype, shape);
    if (g.fixed) continue;
    timings_left += 2 * static_cast<int64_t>(g.candidates.size());
    max_bytes = std::max(max_bytes, *row_bytes * static_cast<uint64_t>(g.timed_rows));
  }

  LayoutTuningReport out;
  out.device = device->spec();
  out.max_seconds = options.max_seconds;
  out.decode_tokens = options.decode_tokens;
  out.prefill_tokens = options.prefill_tokens;
  LayoutPolicy policy = auto_policy;
  std::vector<std::byte> common(max_bytes);
  FillRandom(common);
  std::vector<std::byte> staged;
  std::vector<std::byte> scratch;
  const double timing_seconds = options.max_seconds * (1 - kSetupReserve);
  bool out_of_time = false;

  for (auto& entry : groups) {
    // Named copies: a lambda below captures them, which bindings forbid.
    const TensorClass tensor_class = entry.first.first;
    const DType dtype = entry.first.second;
    Group& g = entry.second;
    ClassTuning c;
    c.tensor_class = tensor_class;
    c.dtype = dtype;
    c.tensors = g.tensors;
    c.rows = g.rows;
    c.cols = g.cols;
    c.timed_rows = g.timed_rows;
    const std::vector<int64_t> full_shape = {g.rows, g.cols};
    const std::vector<int64_t> shape = {g.timed_rows, g.cols};
    const std::string what =
        StrCat("layout tuning ", TensorClassName(tensor_class), " ", DTypeName(dtype));
    const auto unmeasured = [&](std::string note) {
      const LayoutPolicy& base = g.fixed ? user : auto_policy;
      c.chosen = LayoutLabel(base.Choose(dtype, g.role, full_shape));
      c.measured = false;
      c.note = std::move(note);
      // Candidates not timed are listed with zero seconds.
      for (const Layout& layout : g.candidates) {
        const std::string label = LayoutLabel(layout);
        if (std::none_of(c.candidates.begin(), c.candidates.end(),
                         [&](const CandidateTiming& t) { return t.layout == label; })) {
          c.candidates.push_back({label});
        }
      }
    };
    if (g.fixed) {
      unmeasured("fixed by --layout");
      out.classes.push_back(std::move(c));
      continue;
    }
    if (out_of_time || SecondsSince(start) >= timing_seconds) {
      out_of_time = true;
      unmeasured("time budget spent: auto's choice");
      out.classes.push_back(std::move(c));
      continue;
    }
    const uint64_t bytes = *ByteSizeOf(dtype, shape);
    const int64_t tokens = std::max(options.decode_tokens, options.prefill_tokens);
    ASSIGN_OR_RETURN(DeviceBuffer weight, device->Allocate(bytes, MemoryCategory::kScratch, what));
    ASSIGN_OR_RETURN(DeviceBuffer x,
                     device->Allocate(static_cast<uint64_t>(tokens * g.cols) * sizeof(float),
                                      MemoryCategory::kScratch, what));
    ASSIGN_OR_RETURN(DeviceBuffer y,
                     device->Allocate(static_cast<uint64_t>(tokens * g.rows) * sizeof(float),
                                      MemoryCategory::kScratch, what));
    {
      std::vector<float> xs(static_cast<size_t>(tokens * g.cols));
      for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i % 17) / 17.0f - 0.5f;
      RETURN_IF_ERROR(device->Upload(x, 0, std::as_bytes(std::span<const float>(xs))));
    }
    std::optional<Layout> best;
    double best_score = 0;
    double best_decode = 0;  // the fastest decode so far (0: none yet)
    for (const Layout& layout : g.candidates) {
      timings_left -= 2;
      const std::string subject = StrCat(what, " ", LayoutLabel(layout));
      Result<TransformSpec> spec = DescribeTransform(dtype, shape, CommonLayoutFor(dtype), layout);
      if (!spec.ok()) return spec.status().WithPrefix(subject);
      Result<DeviceMatmulWeight> w = MatmulWeightFor(subject, dtype, shape, layout, weight.ref());
      if (!w.ok() || !device->MatmulSupported(*w)) continue;
      if (SecondsSince(start) >= timing_seconds) {
        out_of_time = true;
        break;
      }
      staged.assign(common.begin(), common.begin() + static_cast<ptrdiff_t>(bytes));
      const StrategyOption& strategy = spec->strategies.front();
      scratch.resize(strategy.scratch_bytes);
      RETURN_IF_ERROR(ApplyTransform(*spec, strategy.strategy, staged, scratch, Direction::kForward)
                          .WithPrefix(subject));
      RETURN_IF_ERROR(device->Upload(weight, 0, staged).WithPrefix(subject));
      // Each timing's slice: the timing time left over the timings left.
      const auto slice = [&](int64_t left_after) {
        const double left = timing_seconds - SecondsSince(start);
        return std::max(0.0, left / static_cast<double>(left_after + 1));
      };
      CandidateTiming t;
      t.layout = LayoutLabel(layout);
      // A candidate whose first timed decode call is kGiveUpFactor times the
      // fastest decode so far is out: its prefill is not timed (score
      // infinite), which leaves the budget to the candidates in the race
      // (F16 rowgroup-g8k8 is 35-60x behind on AVX-512 and took most of
      // 2 s on a 2 GiB model's head).
      const double give_up = best_decode > 0 ? kGiveUpFactor * best_decode : 0;
      Result<double> decode =
          TimeMatmul(device, *w, x.ref(), options.decode_tokens, y.ref(), slice(timings_left + 1),
                     options.max_repeats, give_up, &t.decode_repeats);
      if (!decode.ok()) return decode.status().WithPrefix(subject);
      t.decode_seconds = *decode;
      if (give_up > 0 && t.decode_seconds > give_up) {
        t.score = std::numeric_limits<double>::infinity();
        c.candidates.push_back(std::move(t));
        continue;
      }
      best_decode = best_decode > 0 ? std::min(best_decode, t.decode_seconds) : t.decode_seconds;
      Result<double> prefill =
          TimeMatmul(device, *w, x.ref(), options.prefill_tokens, y.ref(), slice(timings_left),
                     options.max_repeats, 0, &t.prefill_repeats);
      if (!prefill.ok()) return prefill.status().WithPrefix(subject);
      t.prefill_seconds = *prefill;
      t.score = t.decode_seconds / static_cast<double>(options.decode_tokens) +
                t.prefill_seconds / static_cast<double>(options.prefill_tokens);
      if (!best.has_value() || t.score < best_score) {
        best = layout;
        best_score = t.score;
      }
      c.candidates.push_back(std::move(t));
    }
    if (out_of_time || !best.has_value()) {
      unmeasured(out_of_time ? "time budget spent: auto's choice"
                             : "the device runs no candidate: auto's choice");
    } else {
      c.measured = true;
      c.chosen = LayoutLabel(*best);
      policy.SetOverride({tensor_class, dtype, *best});
    }
    out.classes.push_back(std::move(c));
  }
  for (const LayoutOverride& e : user.overrides()) policy.SetOverride(e);
  out.mode = policy.mode_name();
  out.total_seconds = SecondsSince(start);
  if (report != nullptr) *report = std::move(out);
  return policy;
}

}  // namespace relayout
