// gpu_check_conformance: every op of the device ABI (kernels/device_abi.h)
// on a plugin device, against the CPU device (CpuDevice) on the same fresh
// random inputs, within tolerances derived from the ABI's numerics.
//
//   gpu_check_conformance --device cuda|hostref [--scale small|full]
//                         [--seed N] [--plugin-dir DIR] [--json FILE]
//                         [--only SUBSTRING] [--threads N] [--perturb]
//
// It talks to the device only through engine/device's Device (opened by the
// plugin loader, as relayoutd does), so it needs no CUDA: CI runs it on the
// host-reference plugin, a GPU session on librelayout_cuda.so. One line per
// case (PASS, FAIL or SKIP: a matmul type or layout the device does not run,
// a transform it cannot do in place), then one JSON line with the summary;
// exit 0 when nothing failed, 1 otherwise, 2 when the device does not open.
//
// Every output buffer is poisoned (0xFF bytes: NaN) with 256 guard bytes
// after it, so an element left unwritten fails as NaN and a write past the
// end fails as a changed guard. Inputs are drawn from --seed (default: the
// clock; the seed is printed). NaN never passes. --perturb changes one byte
// of every result read back from the device (or one argmax index) before
// the comparison: every case must then fail, which tests the checks.
//
// Tolerances, |device - cpu| per element (both sides are within the ABI's
// bound of exact arithmetic, so the bound between them is twice it):
//   matmul F32         2^-23 |cpu| + 4 K 2^-53 S    (double accumulation,
//                                                   rounded once to float)
//   matmul F16, BF16   2 max(1e-5 sqrt(K), 2 K 2^-24) S   (matmul.h)
//   matmul Q8_0/Q4_*   2 (K/32 + 8) 2^-24 Sq  (activations quantized bit for
//                      bit as the CPU does; exact int32 block dots; only the
//                      order of the float additions differs)
//     where S = sum_k |w_k x_k| and Sq = sum_k |w_k| (|x_k| + amax_b / 254),
//     amax_b the largest |x| of k's block of 32 (the Q8 rounding bound).
//   embedding, add, add_row_bias, kv_write, argmax, transform_in_place:
//                      exact (a dequantization, a float add, an f16 rounding,
//                      an index, a permutation of bytes)
//   rms_norm           (dim + 16) 2^-24 |cpu|  (sum of squares in float in
//                      any order, then a square root and two products)
//   rope               8 2^-24 (|x_a| + |x_b|) per rotated pair (cos and sin
//                      within 3 ulp, fused or not); other dims exact
//   silu_gate          1e-6 |cpu|  (exp within 4e-7 relative on both sides)
//   attention          per output element d of a (row, head) over ctx
//                      positions: max_j |v_jd| (4 ds + (3 ctx + 16) 2^-23),
//                      ds = head_dim 2^-24 scale max_j sum_i |q_i k_ji| +
//                      2^-22 max_j |s_j| (the scores' rounding and an exp2
//                      rescale), from the softmax's relative error
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/conversion/transform.h"
#include "engine/device/cpu_device.h"
#include "engine/device/device.h"
#include "engine/device/device_loader.h"
#include "engine/device/device_weight.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"
#include "engine/text/json_writer.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {
namespace {

constexpr uint64_t kGuard = 256;
constexpr uint8_t kPoison = 0xFF;  // a float of 0xFF bytes is NaN
constexpr double kUlp24 = 1.0 / (1 << 24);

struct CaseResult {
  std::string op;
  std::string detail;
  std::string state;  // PASS, FAIL, SKIP
  double max_err = 0;
  double worst_ratio = 0;  // max err / tol over the elements (0 when exact)
  std::string message;
};

struct Options {
  std::string device = "hostref";
  std::string scale = "small";
  std::string plugin_dir;
  std::string json;
  std::string only;
  uint64_t seed = 0;
  bool seed_given = false;
  bool perturb = false;
  int threads = 0;
};

// ---- Random inputs ----

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  float Uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng_); }
  int64_t Int(int64_t lo, int64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  std::vector<float> Floats(size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (float& x : v) x = Uniform(lo, hi);
    return v;
  }
  std::mt19937_64& engine() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

std::span<const std::byte> Bytes(const void* p, size_t n) {
  return {static_cast<const std::byte*>(p), n};
}
template <class T>
std::span<const std::byte> Bytes(const std::vector<T>& v) {
  return Bytes(v.data(), v.size() * sizeof(T));
}

// ---- Buffers on both devices ----

// One operand on the device under test and on the CPU: `bytes` long,
// followed by kGuard guard bytes (outputs only).
struct Operand {
  DeviceBuffer dev;
  DeviceBuffer cpu;
  uint64_t bytes = 0;
};

class Checker {
 public:
  Checker(Device* dev, Device* cpu, kernels::ThreadPool* pool, const Options& o, uint64_t seed)
      : dev_(dev), cpu_(cpu), pool_(pool), opt_(o), rnd_(seed) {}

  Random& rnd() { return rnd_; }
  bool full() const { return opt_.scale == "full"; }
  bool perturb() const { return opt_.perturb; }
  const std::vector<CaseResult>& results() const { return results_; }

  // An input with the same bytes on both devices.
  Result<Operand> Input(std::span<const std::byte> data, std::string_view what) {
    Operand o;
    o.bytes = data.size();
    ASSIGN_OR_RETURN(o.dev, dev_->Allocate(data.size(), MemoryCategory::kActivations, what));
    ASSIGN_OR_RETURN(o.cpu, cpu_->Allocate(data.size(), MemoryCategory::kActivations, what));
    RETURN_IF_ERROR(dev_->Upload(o.dev, 0, data));
    RETURN_IF_ERROR(cpu_->Upload(o.cpu, 0, data));
    return o;
  }
  // An output: poisoned, with a guard after it.
  Result<Operand> Output(uint64_t bytes, std::string_view what) {
    Operand o;
    o.bytes = bytes;
    ASSIGN_OR_RETURN(o.dev, dev_->Allocate(bytes + kGuard, MemoryCategory::kActivations, what));
    ASSIGN_OR_RETURN(o.cpu, cpu_->Allocate(bytes + kGuard, MemoryCategory::kActivations, what));
    RETURN_IF_ERROR(dev_->Fill(o.dev, 0, kPoison, bytes + kGuard));
    RETURN_IF_ERROR(cpu_->Fill(o.cpu, 0, kPoison, bytes + kGuard));
    return o;
  }
  // Both sides' bytes of an output; a changed guard on the device is an error.
  Result<std::pair<std::vector<std::byte>, std::vector<std::byte>>> Read(const Operand& o) {
    std::vector<std::byte> d(o.dev.size()), c(o.bytes);
    RETURN_IF_ERROR(dev_->Download(o.dev, 0, d));
    RETURN_IF_ERROR(cpu_->Download(o.cpu, 0, c));
    for (uint64_t i = o.bytes; i < d.size(); ++i) {
      if (d[i] != std::byte{kPoison}) {
        return Status::DataLoss("output guard", StrCat("the device wrote byte ", i - o.bytes,
                                                       " past the output's end"));
      }
    }
    d.resize(o.bytes);
    if (opt_.perturb && !d.empty()) d[std::min<size_t>(3, d.size() - 1)] ^= std::byte{0x40};
    return std::make_pair(std::move(d), std::move(c));
  }
  Result<std::pair<std::vector<float>, std::vector<float>>> ReadFloats(const Operand& o) {
    ASSIGN_OR_RETURN(auto bytes, Read(o));
    std::vector<float> d(o.bytes / 4), c(o.bytes / 4);
    std::memcpy(d.data(), bytes.first.data(), o.bytes);
    std::memcpy(c.data(), bytes.second.data(), o.bytes);
    return std::make_pair(std::move(d), std::move(c));
  }

  bool Selected(const std::string& op, const std::string& detail) const {
    return opt_.only.empty() || (op + " " + detail).find(opt_.only) != std::string::npos;
  }

  // Records a case run by `body`, which returns an error or fills the result.
  void Case(const std::string& op, const std::string& detail,
            const std::function<Status(CaseResult&)>& body) {
    if (!Selected(op, detail)) return;
    CaseResult r{op, detail, "PASS", 0, 0, ""};
    const auto start = std::chrono::steady_clock::now();
    Status s = body(r);
    if (!s.ok()) {
      r.state = "FAIL";
      r.message = s.ToString();
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (r.state == "SKIP") {
      std::printf("SKIP  %-14s %s: %s\n", op.c_str(), detail.c_str(), r.message.c_str());
    } else {
      std::printf("%s  %-14s %-48s max|err| %.3g  err/tol %.3g  (%.0f ms)%s%s\n", r.state.c_str(),
                  op.c_str(), detail.c_str(), r.max_err, r.worst_ratio, ms,
                  r.message.empty() ? "" : "  ", r.message.c_str());
    }
    std::fflush(stdout);
    results_.push_back(std::move(r));
  }

  Device* dev() { return dev_; }
  Device* cpu() { return cpu_; }
  kernels::ThreadPool* pool() { return pool_; }

 private:
  Device* dev_;
  Device* cpu_;
  kernels::ThreadPool* pool_;
  Options opt_;
  Random rnd_;
  std::vector<CaseResult> results_;
};

// Compares got (device) with want (cpu) element by element under tol[i]
// (empty: exact); fills r and fails naming the first bad element.
void CompareFloats(const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<double>& tol, CaseResult& r) {
  int64_t first_bad = -1;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    const double err = std::fabs(g - w);
    const double t = tol.empty() ? 0.0 : tol[i];
    const bool ok = std::isfinite(g) && std::isfinite(w) ? err <= t
                    : tol.empty() ? std::memcmp(&got[i], &want[i], 4) == 0 && !std::isnan(g)
                                  : false;
    if (std::isfinite(err)) {
      r.max_err = std::max(r.max_err, err);
      if (t > 0) r.worst_ratio = std::max(r.worst_ratio, err / t);
    }
    if (!ok) {
      ++bad;
      if (first_bad < 0) first_bad = static_cast<int64_t>(i);
    }
  }
  if (bad > 0) {
    const size_t i = static_cast<size_t>(first_bad);
    r.state = "FAIL";
    r.message = StrCat(bad, " of ", got.size(), " elements off; first [", i, "]: device ", got[i],
                       " cpu ", want[i], " tol ", tol.empty() ? 0.0 : tol[i]);
  }
}

// ---- matmul, embedding and transform inputs ----

struct TypeInfo {
  DType dtype;
  kernels::WeightType type;
  std::vector<std::string> layouts;  // the first is the common one
};

std::vector<TypeInfo> MatmulTypes() {
  using WT = kernels::WeightType;
  const std::vector<std::string> floats = {"row-major", "rowgroup-g8k8", "rowgroup-g16k16"};
  const std::vector<std::string> quants = {"gguf-blocks", "q-rowgroup-g8", "q-rowgroup-g16"};
  std::vector<std::string> bf16 = floats;
  bf16.push_back("bf16-kpair-g16");
  return {{DType::kF32, WT::kF32, floats},   {DType::kF16, WT::kF16, floats},
          {DType::kBF16, WT::kBF16, bf16},   {DType::kQ8_0, WT::kQ8_0, quants},
          {DType::kQ4_0, WT::kQ4_0, quants}, {DType::kQ4_1, WT::kQ4_1, quants}};
}

bool IsQuant(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_1; }

// splitmix64: a fast stream of random words, one per row of a tensor, so
// that rows are drawn in parallel and the tensor depends on the seed only.
uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A [rows, cols] tensor of `dtype` in its common layout from random
// weight-like values (rows of different magnitudes, so per-block scales
// vary; quantized with the reference quantizers), drawn a row per task on
// `pool`; and, when `values` is given, what the bytes hold as floats.
std::vector<std::byte> RandomTensor(Random& rnd, kernels::ThreadPool* pool, DType dtype,
                                    int64_t rows, int64_t cols, std::vector<float>* values) {
  namespace ref = kernels::reference;
  const uint64_t seed = rnd.engine()();
  const uint64_t bytes = ByteSizeOf(dtype, std::vector<int64_t>{rows, cols}).value();
  const uint64_t row_bytes = bytes / static_cast<uint64_t>(rows);
  std::vector<std::byte> out(bytes);
  if (values != nullptr) values->resize(static_cast<size_t>(rows * cols));
  pool->Run(rows, [&](int64_t r) {
    uint64_t state = seed ^ (static_cast<uint64_t>(r) * 0xD1B54A32D192ED03ull);
    const float scale = 0.02f * std::exp2(static_cast<float>(SplitMix(state) % 7) - 3.0f);
    std::vector<float> v(static_cast<size_t>(cols));
    for (float& x : v) {
      // 24 random bits -> [-scale, scale).
      x = (static_cast<float>(SplitMix(state) >> 40) * 0x1p-23f - 1.0f) * scale;
    }
    std::byte* dst = out.data() + static_cast<uint64_t>(r) * row_bytes;
    switch (dtype) {
      case DType::kF32:
        std::memcpy(dst, v.data(), row_bytes);
        break;
      case DType::kF16:
      case DType::kBF16:
        for (int64_t i = 0; i < cols; ++i) {
          const float x = v[static_cast<size_t>(i)];
          const uint16_t h = dtype == DType::kF16 ? ref::F32ToF16(x) : ref::F32ToBF16(x);
          std::memcpy(dst + 2 * i, &h, 2);
        }
        break;
      case DType::kQ8_0:
        ref::QuantizeRowQ8_0(v.data(), dst, cols);
        break;
      case DType::kQ4_0:
        ref::QuantizeRowQ4_0(v.data(), dst, cols);
        break;
      case DType::kQ4_1:
        ref::QuantizeRowQ4_1(v.data(), dst, cols);
        break;
      default:
        break;
    }
    if (values == nullptr) return;
    float* val = values->data() + r * cols;
    switch (dtype) {
      case DType::kF32:
        ref::DequantizeRowF32(dst, val, cols);
        break;
      case DType::kF16:
        ref::DequantizeRowF16(dst, val, cols);
        break;
      case DType::kBF16:
        ref::DequantizeRowBF16(dst, val, cols);
        break;
      case DType::kQ8_0:
        ref::DequantizeRowQ8_0(dst, val, cols);
        break;
      case DType::kQ4_0:
        ref::DequantizeRowQ4_0(dst, val, cols);
        break;
      case DType::kQ4_1:
        ref::DequantizeRowQ4_1(dst, val, cols);
        break;
      default:
        break;
    }
  });
  return out;
}

// The tensor's bytes in `layout` (the CPU's transform), or an error when the
// layout does not apply.
Result<std::vector<std::byte>> InLayout(const std::vector<std::byte>& common, DType dtype,
                                        int64_t rows, int64_t cols, const Layout& layout) {
  if (layout.IsCommon()) return common;
  const std::vector<int64_t> shape = {rows, cols};
  ASSIGN_OR_RETURN(TransformSpec spec,
                   DescribeTransform(dtype, shape, CommonLayoutFor(dtype), layout));
  std::vector<std::byte> data = common;
  const StrategyOption& option = spec.strategies.front();
  std::vector<std::byte> scratch(std::max<uint64_t>(option.scratch_bytes, 1));
  RETURN_IF_ERROR(ApplyTransform(spec, option.strategy, data, scratch, Direction::kForward));
  return data;
}

std::string Shape(int64_t rows, int64_t cols) { return StrCat(rows, "x", cols); }

// ---- The ops ----

void CheckMatmul(Checker& c, const TypeInfo& t, const std::string& layout_name, int64_t rows,
                 int64_t cols, std::span<const int64_t> token_counts) {
  const std::string detail0 = StrCat(DTypeName(t.dtype), " ", layout_name, " ", Shape(rows, cols));
  Result<Layout> layout = ParseLayoutName(layout_name);
  if (!layout.ok()) {
    c.Case("matmul", detail0, [&](CaseResult&) { return layout.status(); });
    return;
  }
  if (!CheckLayoutApplies(*layout, t.dtype, std::vector<int64_t>{rows, cols}).ok()) return;
  bool any = false;
  for (int64_t tokens : token_counts)
    any = any || c.Selected("matmul", StrCat(detail0, " T=", tokens));
  if (!any) return;
  std::vector<float> w;
  const std::vector<std::byte> common = RandomTensor(c.rnd(), c.pool(), t.dtype, rows, cols, &w);
  Result<std::vector<std::byte>> bytes = InLayout(common, t.dtype, rows, cols, *layout);
  Result<Operand> weight = bytes.ok() ? c.Input(*bytes, "weight") : Result<Operand>(bytes.status());
  Result<DeviceMatmulWeight> dw =
      weight.ok() ? MatmulWeightFor("weight", t.dtype, {rows, cols}, *layout, weight->dev.ref())
                  : Result<DeviceMatmulWeight>(weight.status());
  if (!dw.ok()) {
    c.Case("matmul", detail0, [&](CaseResult&) { return dw.status(); });
    return;
  }
  if (!c.dev()->MatmulSupported(*dw)) {
    c.Case("matmul", detail0, [&](CaseResult& r) {
      r.state = "SKIP";
      r.message = "the device does not run this type and layout";
      return Status::OK();
    });
    return;
  }
  DeviceMatmulWeight cw = *dw;
  cw.data = weight->cpu.ref();
  for (int64_t tokens : token_counts) {
    c.Case("matmul", StrCat(detail0, " T=", tokens), [&](CaseResult& r) -> Status {
      std::vector<float> x = c.rnd().Floats(static_cast<size_t>(tokens * cols), -1.0f, 1.0f);
      // Token rows of different sizes, and one all-zero block (the Q8
      // activations' zero-scale rule).
      for (int64_t tk = 0; tk < tokens; ++tk) {
        const float s = std::exp2(static_cast<float>(c.rnd().Int(-4, 4)));
        for (int64_t k = 0; k < cols; ++k) x[static_cast<size_t>(tk * cols + k)] *= s;
      }
      for (int64_t k = 0; k < std::min<int64_t>(32, cols); ++k) x[static_cast<size_t>(k)] = 0;
      ASSIGN_OR_RETURN(Operand xin, c.Input(Bytes(x), "x"));
      ASSIGN_OR_RETURN(Operand y, c.Output(static_cast<uint64_t>(tokens * rows) * 4, "y"));
      RETURN_IF_ERROR(c.dev()->Matmul(*dw, xin.dev.ref(), tokens, y.dev.ref()));
      RETURN_IF_ERROR(c.cpu()->Matmul(cw, xin.cpu.ref(), tokens, y.cpu.ref()));
      ASSIGN_OR_RETURN(auto out, c.ReadFloats(y));
      // The bound per output element.
      std::vector<double> xq_abs(x.size());
      for (int64_t tk = 0; tk < tokens; ++tk) {
        for (int64_t b = 0; b < cols; b += 32) {
          double amax = 0;
          const int64_t end = std::min(cols, b + 32);
          for (int64_t k = b; k < end; ++k) {
            amax = std::max(amax, std::fabs(double{x[static_cast<size_t>(tk * cols + k)]}));
          }
          for (int64_t k = b; k < end; ++k) {
            const size_t i = static_cast<size_t>(tk * cols + k);
            xq_abs[i] = std::fabs(double{x[i]}) + amax / 254;
          }
        }
      }
      const double k = static_cast<double>(cols);
      std::vector<double> tol(out.first.size());
      c.pool()->Run(rows, [&](int64_t n) {
        for (int64_t tk = 0; tk < tokens; ++tk) {
          double s = 0, sq = 0;
          for (int64_t j = 0; j < cols; ++j) {
            const double wa = std::fabs(double{w[static_cast<size_t>(n * cols + j)]});
            s += wa * std::fabs(double{x[static_cast<size_t>(tk * cols + j)]});
            sq += wa * xq_abs[static_cast<size_t>(tk * cols + j)];
          }
          const size_t i = static_cast<size_t>(tk * rows + n);
          double t_i;
          if (t.dtype == DType::kF32) {
            t_i = 2 * kUlp24 * std::fabs(double{out.second[i]}) + 4 * k * std::ldexp(1.0, -53) * s;
          } else if (IsQuant(t.dtype)) {
            t_i = 2 * (k / 32 + 8) * kUlp24 * sq;
          } else {
            t_i = 2 * std::max(1e-5 * std::sqrt(k), 2 * k * kUlp24) * s;
          }
          tol[i] = std::max(t_i, 1e-30);
        }
      });
      CompareFloats(out.first, out.second, tol, r);
      return Status::OK();
    });
  }
}

void CheckEmbedding(Checker& c, DType dtype, int64_t vocab, int64_t dim) {
  const std::string detail = StrCat(DTypeName(dtype), " ", Shape(vocab, dim));
  c.Case("embedding", detail, [&](CaseResult& r) -> Status {
    const std::vector<std::byte> table =
        RandomTensor(c.rnd(), c.pool(), dtype, vocab, dim, nullptr);
    ASSIGN_OR_RETURN(kernels::WeightType type, WeightTypeFor("table", dtype));
    std::vector<int32_t> tokens = {0, static_cast<int32_t>(vocab - 1)};
    for (int i = 0; i < 7; ++i) tokens.push_back(static_cast<int32_t>(c.rnd().Int(0, vocab - 1)));
    tokens.push_back(tokens[2]);  // a repeat
    ASSIGN_OR_RETURN(Operand in, c.Input(table, "table"));
    const uint64_t out_bytes = tokens.size() * static_cast<uint64_t>(dim) * 4;
    ASSIGN_OR_RETURN(Operand out, c.Output(out_bytes, "out"));
    RETURN_IF_ERROR(c.dev()->Embedding(in.dev.ref(), type, vocab, dim, tokens, out.dev.ref()));
    RETURN_IF_ERROR(c.cpu()->Embedding(in.cpu.ref(), type, vocab, dim, tokens, out.cpu.ref()));
    ASSIGN_OR_RETURN(auto got, c.ReadFloats(out));
    CompareFloats(got.first, got.second, {}, r);
    return Status::OK();
  });
}

void CheckRmsNorm(Checker& c, int64_t rows, int64_t dim, bool in_place) {
  c.Case("rms_norm", StrCat(Shape(rows, dim), in_place ? " in place" : ""),
         [&](CaseResult& r) -> Status {
           std::vector<float> x = c.rnd().Floats(static_cast<size_t>(rows * dim), -3, 3);
           std::vector<float> w = c.rnd().Floats(static_cast<size_t>(dim), 0.5f, 1.5f);
           const float eps = 1e-5f;
           ASSIGN_OR_RETURN(Operand wi, c.Input(Bytes(w), "weight"));
           ASSIGN_OR_RETURN(Operand out, c.Output(x.size() * 4, "out"));
           Operand xi;
           if (in_place) {
             RETURN_IF_ERROR(c.dev()->Upload(out.dev, 0, Bytes(x)));
             RETURN_IF_ERROR(c.cpu()->Upload(out.cpu, 0, Bytes(x)));
             RETURN_IF_ERROR(
                 c.dev()->RmsNorm(out.dev.ref(), wi.dev.ref(), rows, dim, eps, out.dev.ref()));
             RETURN_IF_ERROR(
                 c.cpu()->RmsNorm(out.cpu.ref(), wi.cpu.ref(), rows, dim, eps, out.cpu.ref()));
           } else {
             ASSIGN_OR_RETURN(xi, c.Input(Bytes(x), "x"));
             RETURN_IF_ERROR(
                 c.dev()->RmsNorm(xi.dev.ref(), wi.dev.ref(), rows, dim, eps, out.dev.ref()));
             RETURN_IF_ERROR(
                 c.cpu()->RmsNorm(xi.cpu.ref(), wi.cpu.ref(), rows, dim, eps, out.cpu.ref()));
           }
           ASSIGN_OR_RETURN(auto got, c.ReadFloats(out));
           std::vector<double> tol(got.second.size());
           for (size_t i = 0; i < tol.size(); ++i) {
             tol[i] = (static_cast<double>(dim) + 16) * kUlp24 * std::fabs(double{got.second[i]}) +
                      1e-30;
           }
           CompareFloats(got.first, got.second, tol, r);
           return Status::OK();
         });
}

void CheckRope(Checker& c, kernels::RopePairing pairing, int64_t rows, int64_t heads,
               int64_t head_dim, int64_t rope_dim, int32_t max_position) {
  const char* name = pairing == kernels::RopePairing::kInterleaved ? "interleaved" : "halves";
  c.Case(
      "rope",
      StrCat(name, " rows ", rows, " heads ", heads, " head_dim ", head_dim, " rope_dim ", rope_dim,
             " pos<=", max_position),
      [&](CaseResult& r) -> Status {
        std::vector<float> x = c.rnd().Floats(static_cast<size_t>(rows * heads * head_dim), -2, 2);
        std::vector<int32_t> positions(static_cast<size_t>(rows));
        for (auto& p : positions) p = static_cast<int32_t>(c.rnd().Int(0, max_position));
        positions[0] = 0;
        positions.back() = max_position;
        std::vector<float> inv(static_cast<size_t>(rope_dim / 2));
        for (size_t p = 0; p < inv.size(); ++p) {
          inv[p] = static_cast<float>(1.0 / std::pow(500000.0, 2.0 * static_cast<double>(p) /
                                                                   static_cast<double>(rope_dim)));
        }
        ASSIGN_OR_RETURN(Operand freq, c.Input(Bytes(inv), "inv_freq"));
        ASSIGN_OR_RETURN(Operand out, c.Output(x.size() * 4, "x"));
        RETURN_IF_ERROR(c.dev()->Upload(out.dev, 0, Bytes(x)));
        RETURN_IF_ERROR(c.cpu()->Upload(out.cpu, 0, Bytes(x)));
        RETURN_IF_ERROR(c.dev()->Rope(out.dev.ref(), rows, heads, head_dim, rope_dim, positions,
                                      freq.dev.ref(), pairing));
        RETURN_IF_ERROR(c.cpu()->Rope(out.cpu.ref(), rows, heads, head_dim, rope_dim, positions,
                                      freq.cpu.ref(), pairing));
        ASSIGN_OR_RETURN(auto got, c.ReadFloats(out));
        std::vector<double> tol(x.size(), 0.0);
        const int64_t pairs = rope_dim / 2;
        const int64_t a_step = pairing == kernels::RopePairing::kInterleaved ? 2 : 1;
        const int64_t b_off = pairing == kernels::RopePairing::kInterleaved ? 1 : pairs;
        for (int64_t h = 0; h < rows * heads; ++h) {
          for (int64_t p = 0; p < pairs; ++p) {
            const size_t a = static_cast<size_t>(h * head_dim + p * a_step);
            const size_t b = a + static_cast<size_t>(b_off);
            const double t = 8 * kUlp24 * (std::fabs(double{x[a]}) + std::fabs(double{x[b]}));
            tol[a] = tol[b] = std::max(t, 1e-30);
          }
        }
        // Dims past rope_dim must be untouched: exact.
        for (size_t i = 0; i < tol.size(); ++i) {
          if (tol[i] == 0.0 && got.first[i] != x[i]) {
            r.state = "FAIL";
            r.message = StrCat("dim ", i % static_cast<size_t>(head_dim),
                               " past rope_dim changed: ", x[i], " -> ", got.first[i]);
            return Status::OK();
          }
        }
        CompareFloats(got.first, got.second, tol, r);
        return Status::OK();
      });
}

void CheckElementwise(Checker& c, int64_t n) {
  c.Case("add", StrCat("n ", n), [&](CaseResult& r) -> Status {
    std::vector<float> a = c.rnd().Floats(static_cast<size_t>(n), -10, 10);
    std::vector<float> b = c.rnd().Floats(static_cast<size_t>(n), -10, 10);
    ASSIGN_OR_RETURN(Operand src, c.Input(Bytes(a), "src"));
    ASSIGN_OR_RETURN(Operand dst, c.Output(b.size() * 4, "dst"));
    RETURN_IF_ERROR(c.dev()->Upload(dst.dev, 0, Bytes(b)));
    RETURN_IF_ERROR(c.cpu()->Upload(dst.cpu, 0, Bytes(b)));
    RETURN_IF_ERROR(c.dev()->Add(src.dev.ref(), n, dst.dev.ref()));
    RETURN_IF_ERROR(c.cpu()->Add(src.cpu.ref(), n, dst.cpu.ref()));
    ASSIGN_OR_RETURN(auto got, c.ReadFloats(dst));
    CompareFloats(got.first, got.second, {}, r);
    return Status::OK();
  });
  const int64_t cols = 1000, rows = std::max<int64_t>(1, n / cols);
  c.Case("add_row_bias", Shape(rows, cols), [&](CaseResult& r) -> Status {
    std::vector<float> bias = c.rnd().Floats(static_cast<size_t>(cols), -1, 1);
    std::vector<float> y = c.rnd().Floats(static_cast<size_t>(rows * cols), -10, 10);
    ASSIGN_OR_RETURN(Operand bi, c.Input(Bytes(bias), "bias"));
    ASSIGN_OR_RETURN(Operand out, c.Output(y.size() * 4, "y"));
    RETURN_IF_ERROR(c.dev()->Upload(out.dev, 0, Bytes(y)));
    RETURN_IF_ERROR(c.cpu()->Upload(out.cpu, 0, Bytes(y)));
    RETURN_IF_ERROR(c.dev()->AddRowBias(bi.dev.ref(), rows, cols, out.dev.ref()));
    RETURN_IF_ERROR(c.cpu()->AddRowBias(bi.cpu.ref(), rows, cols, out.cpu.ref()));
    ASSIGN_OR_RETURN(auto got, c.ReadFloats(out));
    CompareFloats(got.first, got.second, {}, r);
    return Status::OK();
  });
  for (bool in_place : {false, true}) {
    c.Case("silu_gate", StrCat("n ", n, in_place ? " out=gate" : ""), [&](CaseResult& r) -> Status {
      std::vector<float> g = c.rnd().Floats(static_cast<size_t>(n), -20, 20);
      std::vector<float> u = c.rnd().Floats(static_cast<size_t>(n), -5, 5);
      ASSIGN_OR_RETURN(Operand up, c.Input(Bytes(u), "up"));
      ASSIGN_OR_RETURN(Operand gate, c.Output(g.size() * 4, "gate"));
      RETURN_IF_ERROR(c.dev()->Upload(gate.dev, 0, Bytes(g)));
      RETURN_IF_ERROR(c.cpu()->Upload(gate.cpu, 0, Bytes(g)));
      Operand out;
      if (in_place) {
        RETURN_IF_ERROR(c.dev()->SiluGate(gate.dev.ref(), up.dev.ref(), n, gate.dev.ref()));
        RETURN_IF_ERROR(c.cpu()->SiluGate(gate.cpu.ref(), up.cpu.ref(), n, gate.cpu.ref()));
      } else {
        ASSIGN_OR_RETURN(out, c.Output(g.size() * 4, "out"));
        RETURN_IF_ERROR(c.dev()->SiluGate(gate.dev.ref(), up.dev.ref(), n, out.dev.ref()));
        RETURN_IF_ERROR(c.cpu()->SiluGate(gate.cpu.ref(), up.cpu.ref(), n, out.cpu.ref()));
      }
      ASSIGN_OR_RETURN(auto got, c.ReadFloats(in_place ? gate : out));
      std::vector<double> tol(got.second.size());
      for (size_t i = 0; i < tol.size(); ++i) {
        tol[i] = 1e-6 * std::fabs(double{got.second[i]}) + 1e-37;
      }
      CompareFloats(got.first, got.second, tol, r);
      return Status::OK();
    });
  }
}

void CheckArgmax(Checker& c, int64_t rows, int64_t cols) {
  c.Case("argmax", Shape(rows, cols), [&](CaseResult& r) -> Status {
    std::vector<float> x = c.rnd().Floats(static_cast<size_t>(rows * cols), -30, 30);
    for (int64_t row = 0; row < rows; ++row) {
      float* p = x.data() + row * cols;
      if (row % 2 == 1) {  // a tie of two maxima: the first index wins
        const int64_t a = c.rnd().Int(0, cols - 1), b = c.rnd().Int(0, cols - 1);
        p[a] = p[b] = 100.0f;
      }
      if (row == 2) p[cols - 1] = 1000.0f;  // the last column
      if (row == 3) {
        for (int64_t i = 0; i < cols; ++i) p[i] = -std::numeric_limits<float>::infinity();
        p[cols / 2] = -1e30f;
      }
    }
    ASSIGN_OR_RETURN(Operand in, c.Input(Bytes(x), "x"));
    std::vector<int32_t> got(static_cast<size_t>(rows), -7), want(static_cast<size_t>(rows), -7);
    RETURN_IF_ERROR(c.dev()->Argmax(in.dev.ref(), rows, cols, got));
    RETURN_IF_ERROR(c.cpu()->Argmax(in.cpu.ref(), rows, cols, want));
    if (c.perturb()) got[0] += 1;
    for (int64_t row = 0; row < rows; ++row) {
      if (got[static_cast<size_t>(row)] != want[static_cast<size_t>(row)]) {
        r.state = "FAIL";
        r.message = StrCat("row ", row, ": device ", got[static_cast<size_t>(row)], " cpu ",
                           want[static_cast<size_t>(row)]);
        break;
      }
    }
    return Status::OK();
  });
}

// The paged KV cache of one layer for attention cases.
struct AttentionShape {
  int64_t heads, kv_heads, head_dim, block_size;
  kernels::KvElem kv;
};

std::string AttentionName(const AttentionShape& a) {
  return StrCat("heads ", a.heads, "/", a.kv_heads, " head_dim ", a.head_dim, " block ",
                a.block_size, a.kv == kernels::KvElem::kF16 ? " kv F16" : " kv F32");
}

// Spans of `rows_per_span` rows ending at positions ends[i] (inclusive),
// with block tables of distinct shuffled blocks of a pool.
struct Spans {
  std::vector<kernels::AttentionSpan> spans;
  std::vector<std::vector<int32_t>> tables;
  int64_t pool_blocks = 0;
  int64_t rows = 0;
};

Spans MakeSpans(Random& rnd, const AttentionShape& a, const std::vector<int64_t>& span_rows,
                const std::vector<int64_t>& start_positions) {
  Spans s;
  int64_t blocks = 0;
  for (size_t i = 0; i < span_rows.size(); ++i) {
    blocks += (start_positions[i] + span_rows[i] + a.block_size - 1) / a.block_size;
  }
  s.pool_blocks = blocks + 3;  // spare blocks nobody uses
  std::vector<int32_t> ids(static_cast<size_t>(s.pool_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rnd.engine());
  size_t next = 0;
  s.tables.resize(span_rows.size());
  for (size_t i = 0; i < span_rows.size(); ++i) {
    const int64_t n = (start_positions[i] + span_rows[i] + a.block_size - 1) / a.block_size;
    for (int64_t b = 0; b < n; ++b) s.tables[i].push_back(ids[next++]);
  }
  for (size_t i = 0; i < span_rows.size(); ++i) {
    s.spans.push_back({s.rows, span_rows[i], start_positions[i], s.tables[i].data()});
    s.rows += span_rows[i];
  }
  return s;
}

uint64_t KvElemBytes(kernels::KvElem e) { return e == kernels::KvElem::kF16 ? 2 : 4; }

void CheckKvWrite(Checker& c, const AttentionShape& a, const std::vector<int64_t>& span_rows,
                  const std::vector<int64_t>& starts, const std::string& what) {
  c.Case("kv_write", StrCat(what, " ", AttentionName(a)), [&](CaseResult& r) -> Status {
    Spans s = MakeSpans(c.rnd(), a, span_rows, starts);
    kernels::PagedAttentionParams p{a.heads,
                                    a.kv_heads,
                                    a.head_dim,
                                    a.block_size,
                                    static_cast<float>(1.0 / std::sqrt(double(a.head_dim))),
                                    a.kv};
    const int64_t width = a.kv_heads * a.head_dim;
    std::vector<float> k = c.rnd().Floats(static_cast<size_t>(s.rows * width), -4, 4);
    std::vector<float> v = c.rnd().Floats(static_cast<size_t>(s.rows * width), -4, 4);
    const uint64_t pool_bytes =
        static_cast<uint64_t>(s.pool_blocks * a.block_size * width) * KvElemBytes(a.kv);
    ASSIGN_OR_RETURN(Operand ki, c.Input(Bytes(k), "k"));
    ASSIGN_OR_RETURN(Operand vi, c.Input(Bytes(v), "v"));
    ASSIGN_OR_RETURN(Operand kp, c.Output(pool_bytes, "k pool"));
    ASSIGN_OR_RETURN(Operand vp, c.Output(pool_bytes, "v pool"));
    RETURN_IF_ERROR(c.dev()->KvWrite(p, s.pool_blocks, ki.dev.ref(), vi.dev.ref(), s.spans,
                                     kp.dev.ref(), vp.dev.ref()));
    RETURN_IF_ERROR(c.cpu()->KvWrite(p, s.pool_blocks, ki.cpu.ref(), vi.cpu.ref(), s.spans,
                                     kp.cpu.ref(), vp.cpu.ref()));
    for (const Operand* pool : {&kp, &vp}) {
      ASSIGN_OR_RETURN(auto got, c.Read(*pool));
      if (got.first != got.second) {
        size_t i = 0;
        while (got.first[i] == got.second[i]) ++i;
        r.state = "FAIL";
        r.message = StrCat(pool == &kp ? "k" : "v", " pool differs at byte ", i, " (slot ",
                           i / (width * KvElemBytes(a.kv)), ")");
        break;
      }
    }
    return Status::OK();
  });
}

void CheckAttention(Checker& c, const AttentionShape& a, const std::vector<int64_t>& span_rows,
                    const std::vector<int64_t>& starts, const std::string& what) {
  c.Case("attention", StrCat(what, " ", AttentionName(a)), [&](CaseResult& r) -> Status {
    namespace ref = kernels::reference;
    Spans s = MakeSpans(c.rnd(), a, span_rows, starts);
    const float scale = static_cast<float>(1.0 / std::sqrt(double(a.head_dim)));
    kernels::PagedAttentionParams p{a.heads, a.kv_heads, a.head_dim, a.block_size, scale, a.kv};
    const int64_t width = a.kv_heads * a.head_dim, qwidth = a.heads * a.head_dim;
    const int64_t slots = s.pool_blocks * a.block_size;
    // Pools of random K and V (every slot, so unused ones hold values too).
    std::vector<float> kf = c.rnd().Floats(static_cast<size_t>(slots * width), -2, 2);
    std::vector<float> vf = c.rnd().Floats(static_cast<size_t>(slots * width), -2, 2);
    std::vector<std::byte> kb, vb;
    auto encode = [&](std::vector<float>& f, std::vector<std::byte>& out) {
      if (a.kv == kernels::KvElem::kF32) {
        out.resize(f.size() * 4);
        std::memcpy(out.data(), f.data(), out.size());
        return;
      }
      out.resize(f.size() * 2);
      for (size_t i = 0; i < f.size(); ++i) {
        const uint16_t h = ref::F32ToF16(f[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
        f[i] = ref::F16ToF32(h);  // the values the pool holds
      }
    };
    encode(kf, kb);
    encode(vf, vb);
    std::vector<float> q = c.rnd().Floats(static_cast<size_t>(s.rows * qwidth), -2, 2);
    ASSIGN_OR_RETURN(Operand kp, c.Input(kb, "k pool"));
    ASSIGN_OR_RETURN(Operand vp, c.Input(vb, "v pool"));
    ASSIGN_OR_RETURN(Operand qi, c.Input(Bytes(q), "q"));
    ASSIGN_OR_RETURN(Operand out, c.Output(q.size() * 4, "out"));
    RETURN_IF_ERROR(c.dev()->Attention(p, s.pool_blocks, qi.dev.ref(), s.spans, kp.dev.ref(),
                                       vp.dev.ref(), out.dev.ref()));
    RETURN_IF_ERROR(c.cpu()->Attention(p, s.pool_blocks, qi.cpu.ref(), s.spans, kp.cpu.ref(),
                                       vp.cpu.ref(), out.cpu.ref()));
    ASSIGN_OR_RETURN(auto got, c.ReadFloats(out));
    std::vector<double> tol(got.second.size());
    const int64_t group = a.heads / a.kv_heads;
    for (size_t si = 0; si < s.spans.size(); ++si) {
      const kernels::AttentionSpan& span = s.spans[si];
      for (int64_t i = 0; i < span.rows; ++i) {
        const int64_t row = span.first_row + i, pos = span.start_position + i;
        for (int64_t h = 0; h < a.heads; ++h) {
          const int64_t g = h / group;
          const float* qh = q.data() + row * qwidth + h * a.head_dim;
          double dot_max = 0, s_max = 0;
          std::vector<double> vmax(static_cast<size_t>(a.head_dim), 0.0);
          for (int64_t j = 0; j <= pos; ++j) {
            const int64_t slot =
                s.tables[si][static_cast<size_t>(j / a.block_size)] * a.block_size +
                j % a.block_size;
            const float* kj = kf.data() + slot * width + g * a.head_dim;
            const float* vj = vf.data() + slot * width + g * a.head_dim;
            double dot_abs = 0, dot = 0;
            for (int64_t d = 0; d < a.head_dim; ++d) {
              dot_abs += std::fabs(double{qh[d]} * kj[d]);
              dot += double{qh[d]} * kj[d];
              vmax[static_cast<size_t>(d)] =
                  std::max(vmax[static_cast<size_t>(d)], std::fabs(double{vj[d]}));
            }
            dot_max = std::max(dot_max, dot_abs);
            s_max = std::max(s_max, std::fabs(dot * scale));
          }
          const double ds =
              static_cast<double>(a.head_dim) * kUlp24 * scale * dot_max + std::ldexp(s_max, -22);
          const double ctx = static_cast<double>(pos + 1);
          for (int64_t d = 0; d < a.head_dim; ++d) {
            tol[static_cast<size_t>(row * qwidth + h * a.head_dim + d)] =
                vmax[static_cast<size_t>(d)] * (4 * ds + (3 * ctx + 16) * 2 * kUlp24) + 1e-30;
          }
        }
      }
    }
    CompareFloats(got.first, got.second, tol, r);
    return Status::OK();
  });
}

void CheckTransform(Checker& c, const TypeInfo& t, const std::string& layout_name, int64_t rows,
                    int64_t cols) {
  const std::string detail =
      StrCat(DTypeName(t.dtype), " -> ", layout_name, " ", Shape(rows, cols));
  Result<Layout> layout = ParseLayoutName(layout_name);
  if (!layout.ok() || layout->IsCommon()) return;
  if (!CheckLayoutApplies(*layout, t.dtype, std::vector<int64_t>{rows, cols}).ok()) return;
  c.Case("transform", detail, [&](CaseResult& r) -> Status {
    const std::vector<std::byte> common =
        RandomTensor(c.rnd(), c.pool(), t.dtype, rows, cols, nullptr);
    ASSIGN_OR_RETURN(std::vector<std::byte> want, InLayout(common, t.dtype, rows, cols, *layout));
    const uint64_t bytes = common.size();
    // [guard][tensor][guard] on the device: the transform may touch the
    // tensor and its scratch only.
    ASSIGN_OR_RETURN(DeviceBuffer data,
                     c.dev()->Allocate(bytes + 2 * kGuard, MemoryCategory::kWeights, "tensor"));
    ASSIGN_OR_RETURN(DeviceMatmulWeight w,
                     MatmulWeightFor("tensor", t.dtype, {rows, cols}, *layout, data.ref(kGuard)));
    const std::optional<uint64_t> scratch_bytes = c.dev()->TransformScratchBytes(w);
    if (!scratch_bytes.has_value()) {
      r.state = "SKIP";
      r.message = "the device does not transform this layout in place";
      return Status::OK();
    }
    ASSIGN_OR_RETURN(DeviceBuffer scratch, c.dev()->Allocate(*scratch_bytes + kGuard,
                                                             MemoryCategory::kScratch, "scratch"));
    constexpr uint8_t kGuardByte = 0xA5;
    RETURN_IF_ERROR(c.dev()->Fill(data, 0, kGuardByte, bytes + 2 * kGuard));
    RETURN_IF_ERROR(c.dev()->Fill(scratch, 0, kPoison, *scratch_bytes + kGuard));
    RETURN_IF_ERROR(c.dev()->Upload(data, kGuard, common));
    RETURN_IF_ERROR(c.dev()->TransformInPlace(w, scratch.ref()));
    std::vector<std::byte> got(bytes + 2 * kGuard), tail(kGuard);
    RETURN_IF_ERROR(c.dev()->Download(data, 0, got));
    RETURN_IF_ERROR(c.dev()->Download(scratch, *scratch_bytes, tail));
    if (c.perturb()) got[kGuard + 3] ^= std::byte{0x40};
    for (uint64_t i = 0; i < kGuard; ++i) {
      if (got[i] != std::byte{kGuardByte} || got[kGuard + bytes + i] != std::byte{kGuardByte}) {
        r.state = "FAIL";
        r.message = "wrote outside the tensor";
        return Status::OK();
      }
      if (tail[i] != std::byte{kPoison}) {
        r.state = "FAIL";
        r.message = StrCat("wrote past its ", *scratch_bytes, " bytes of scratch");
        return Status::OK();
      }
    }
    if (std::memcmp(got.data() + kGuard, want.data(), bytes) != 0) {
      size_t i = 0;
      while (got[kGuard + i] == want[i]) ++i;
      r.state = "FAIL";
      r.message = StrCat("bytes differ from the CPU's transform at byte ", i, " of ", bytes);
      return Status::OK();
    }
    r.message = StrCat("scratch ", *scratch_bytes, " bytes");
    return Status::OK();
  });
}

// ---- Main ----

int Usage() {
  std::fprintf(stderr,
               "usage: gpu_check_conformance --device cuda|hostref [--scale small|full] "
               "[--seed N] [--plugin-dir DIR] [--json FILE] [--only SUBSTRING] [--threads N] "
               "[--perturb]\n");
  return 2;
}

std::string SummaryJson(const Options& o, const DeviceInfo& info, uint64_t seed,
                        const std::vector<CaseResult>& results, double seconds) {
  int pass = 0, fail = 0, skip = 0;
  for (const CaseResult& r : results) {
    (r.state == "PASS" ? pass : r.state == "FAIL" ? fail : skip) += 1;
  }
  std::string json;
  JsonWriter w(&json, /*pretty=*/false);
  w.BeginObject();
  w.Key("device").String(o.device);
  w.Key("device_name").String(info.name);
  w.Key("compute_capability").String(StrCat(info.compute_major, ".", info.compute_minor));
  w.Key("scale").String(o.scale);
  w.Key("seed").Uint(seed);
  w.Key("cases").Int(static_cast<int64_t>(results.size()));
  w.Key("passed").Int(pass);
  w.Key("failed").Int(fail);
  w.Key("skipped").Int(skip);
  w.Key("seconds").Double(seconds);
  w.Key("failures").BeginArray();
  for (const CaseResult& r : results) {
    if (r.state == "FAIL") w.String(r.op + " " + r.detail + ": " + r.message);
  }
  w.EndArray();
  w.Key("skips").BeginArray();
  for (const CaseResult& r : results) {
    if (r.state == "SKIP") w.String(r.op + " " + r.detail);
  }
  w.EndArray();
  w.Key("results").BeginArray();
  for (const CaseResult& r : results) {
    w.BeginObject();
    w.Key("op").String(r.op);
    w.Key("case").String(r.detail);
    w.Key("state").String(r.state);
    w.Key("max_err").Double(r.max_err);
    w.Key("err_over_tol").Double(r.worst_ratio);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return json;
}

int Run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--perturb") {
      o.perturb = true;
      continue;
    }
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (flag == "--device") {
      o.device = v;
    } else if (flag == "--scale") {
      o.scale = v;
    } else if (flag == "--seed") {
      o.seed = std::strtoull(v, nullptr, 10);
      o.seed_given = true;
    } else if (flag == "--plugin-dir") {
      o.plugin_dir = v;
    } else if (flag == "--json") {
      o.json = v;
    } else if (flag == "--only") {
      o.only = v;
    } else if (flag == "--threads") {
      o.threads = std::atoi(v);
    } else {
      return Usage();
    }
  }
  if (o.scale != "small" && o.scale != "full") return Usage();
  const uint64_t seed =
      o.seed_given
          ? o.seed
          : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  DeviceRequest request;
  request.spec = o.device;
  if (!o.plugin_dir.empty()) request.plugin_dirs = {o.plugin_dir};
  Result<OpenedDevice> opened = OpenDevice(request);
  if (!opened.ok()) {
    std::fprintf(stderr, "gpu_check_conformance: %s\n", opened.status().ToString().c_str());
    return 2;
  }
  Device* dev = opened->device.get();
  kernels::ThreadPool pool(o.threads);
  MemoryLedger cpu_ledger;
  CpuDevice cpu(&cpu_ledger, &pool);
  const DeviceInfo info = dev->QueryInfo();
  std::printf("device %s (%s, compute %d.%d), scale %s, seed %llu\n", dev->spec().c_str(),
              info.name.c_str(), info.compute_major, info.compute_minor, o.scale.c_str(),
              static_cast<unsigned long long>(seed));
  const auto start = std::chrono::steady_clock::now();
  Checker c(dev, &cpu, &pool, o, seed);
  const bool full = c.full();

  // matmul: every type x layout the device runs; tokens 1, 4 and 33.
  const int64_t tokens[] = {1, 4, 33};
  struct Mm {
    int64_t rows, cols;
  };
  // 72 rows: a tail of 8 rows past the groups of 16; 256 columns: 8 blocks
  // of 32, 16 K-blocks of 16. The full scale adds model-sized K.
  std::vector<Mm> shapes = {{72, 256}};
  if (full) shapes.insert(shapes.end(), {{1030, 4096}, {264, 14336}});
  for (const TypeInfo& t : MatmulTypes()) {
    for (const std::string& layout : t.layouts) {
      for (const Mm& s : shapes) CheckMatmul(c, t, layout, s.rows, s.cols, tokens);
    }
  }
  // embedding: every type.
  for (const TypeInfo& t : MatmulTypes()) {
    CheckEmbedding(c, t.dtype, full ? 8192 : 300, full ? 4096 : 256);
  }
  CheckRmsNorm(c, 5, full ? 4096 : 576, false);
  CheckRmsNorm(c, 3, full ? 4096 : 576, true);
  for (auto pairing : {kernels::RopePairing::kInterleaved, kernels::RopePairing::kHalves}) {
    CheckRope(c, pairing, 7, 4, 64, 64, 2048);
    CheckRope(c, pairing, 5, 8, 128, 64, full ? 131071 : 8191);  // partial rotation
  }
  CheckElementwise(c, full ? 14336 * 33 : 10007);
  CheckArgmax(c, 4, full ? 128256 : 50000);
  // kv_write and attention with GQA: decode (one row per sequence) and
  // prefill (spans of many rows, one continuing after a cached prefix).
  std::vector<AttentionShape> attn = {{8, 2, 64, 16, kernels::KvElem::kF16},
                                      {4, 4, 32, 16, kernels::KvElem::kF32}};
  if (full) attn.push_back({32, 8, 128, 16, kernels::KvElem::kF16});
  for (const AttentionShape& a : attn) {
    const int64_t ctx = full ? 1500 : 200;
    CheckKvWrite(c, a, {1, 1, 1, 1, 1}, {0, 15, 16, 47, ctx}, "decode 5 spans");
    CheckKvWrite(c, a, {37, 20}, {0, 29}, "prefill 2 spans");
    CheckAttention(c, a, {1, 1, 1, 1, 1, 1}, {0, 1, 15, 16, 63, ctx}, "decode 6 spans");
    CheckAttention(c, a, {full ? 300 : 45}, {0}, "prefill");
    CheckAttention(c, a, {33, 17}, {0, full ? 700 : 40}, "prefill 2 spans, one after a prefix");
  }
  // transform_in_place: every preferred layout the device transforms.
  std::vector<Mm> tshapes = {{72, 256}};
  if (full) tshapes.push_back({14336, 4096});
  for (const TypeInfo& t : MatmulTypes()) {
    for (const std::string& layout : t.layouts) {
      for (const Mm& s : tshapes) CheckTransform(c, t, layout, s.rows, s.cols);
    }
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string json = SummaryJson(o, info, seed, c.results(), seconds);
  std::printf("%s\n", json.c_str());
  if (!o.json.empty()) {
    std::FILE* f = std::fopen(o.json.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "gpu_check_conformance: cannot write %s\n", o.json.c_str());
      return 2;
    }
    std::fprintf(f, "%s\n", json.c_str());
    std::fclose(f);
  }
  bool failed = false;
  for (const CaseResult& r : c.results()) failed = failed || r.state == "FAIL";
  if (dev->corrupted_frees() > 0) {
    std::printf("FAIL  %llu buffers were written outside their bounds (found on free)\n",
                static_cast<unsigned long long>(dev->corrupted_frees()));
    failed = true;
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace relayout

int main(int argc, char** argv) { return relayout::Run(argc, argv); }
