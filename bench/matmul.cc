// bench_matmul: the CPU Matmul kernels on SmolLM2-135M's shapes, a 1B-class
// model's (hidden 2048, ffn 8192, 8 KV heads of 64: its Q4_K_M and Q6_K
// files' types) and an 8B-class 4096x4096, native (common) layout versus the
// layout the policy prefers on this CPU, measured in the same run.
//
//   build/bench/bench_matmul [--reps N] [--isa auto|scalar|avx2|avx512|avx512-nobf16]
//                            [--quick] [--threads 1,2] [--tokens 1,8,64] [--case SUBSTRING]
//
// Per case, token count T and thread count: GFLOP/s (2 N K T per call) and
// GB/s of weight bytes (the weights once per call), best of N calls after one
// warm-up, for both layouts, and preferred / native. T = 1 is decode (GEMV,
// bandwidth-bound unless the weights fit in cache), T = 64 and 512 prefill
// (GEMM, compute-bound).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/conversion/layout_policy.h"
#include "kernels/cpu/layout/bf16_kpair.h"
#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/layout/row_group_interleave.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_testing.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout {
namespace {

using kernels::MatmulWeight;
using kernels::WeightLayout;
using kernels::WeightType;
using Clock = std::chrono::steady_clock;

struct Case {
  const char* name;
  DType dtype;
  int64_t rows;
  int64_t cols;
  std::vector<int64_t> tokens;
};

WeightType WeightTypeOf(DType d) {
  switch (d) {
    case DType::kF32:
      return WeightType::kF32;
    case DType::kF16:
      return WeightType::kF16;
    case DType::kBF16:
      return WeightType::kBF16;
    case DType::kQ8_0:
      return WeightType::kQ8_0;
    case DType::kQ4_0:
      return WeightType::kQ4_0;
    case DType::kQ2_K:
      return WeightType::kQ2_K;
    case DType::kQ3_K:
      return WeightType::kQ3_K;
    case DType::kQ4_K:
      return WeightType::kQ4_K;
    case DType::kQ5_K:
      return WeightType::kQ5_K;
    case DType::kQ6_K:
      return WeightType::kQ6_K;
    default:
      return WeightType::kQ4_1;
  }
}

// Where a block type keeps its f16 scales (d, and dmin or m where it has
// one): random bytes there could be NaN or infinity, which would time
// something else than the kernels' usual work.
struct BlockScales {
  int64_t elems;  // elements per block
  int count;
  size_t offsets[2];
};

BlockScales BlockScalesOf(WeightType t) {
  switch (t) {
    case WeightType::kQ4_1:
    case WeightType::kQ5_1:
      return {32, 2, {0, 2}};
    case WeightType::kQ2_K:
      return {256, 2, {80, 82}};
    case WeightType::kQ3_K:
      return {256, 1, {108, 0}};
    case WeightType::kQ4_K:
    case WeightType::kQ5_K:
      return {256, 2, {0, 2}};
    case WeightType::kQ6_K:
      return {256, 1, {208, 0}};
    default:  // Q8_0, Q4_0, Q5_0, IQ4_NL: d leads the block
      return {32, 1, {0, 0}};
  }
}

int64_t TensorBytes(WeightType t, int64_t rows, int64_t cols) {
  return kernels::MatmulWeightBytes(
      MatmulWeight{nullptr, t, WeightLayout::kRowMajor, rows, cols, 1, 0});
}

// Random weights: float values in [-1, 1); quantized blocks with random
// quants and sub-block scales (every byte pattern is a valid one) and small
// positive f16 scales.
std::vector<uint8_t> RandomWeights(WeightType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<uint8_t> bytes(static_cast<size_t>(TensorBytes(t, rows, cols)));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  if (t == WeightType::kF32) {
    for (size_t i = 0; i < bytes.size(); i += 4) {
      const float f = dist(rng);
      std::memcpy(&bytes[i], &f, 4);
    }
    return bytes;
  }
  if (t == WeightType::kF16 || t == WeightType::kBF16) {
    for (size_t i = 0; i < bytes.size(); i += 2) {
      const float f = dist(rng);
      const uint16_t h = t == WeightType::kF16 ? kernels::reference::F32ToF16(f)
                                               : kernels::reference::F32ToBF16(f);
      std::memcpy(&bytes[i], &h, 2);
    }
    return bytes;
  }
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const BlockScales scales = BlockScalesOf(t);
  const size_t block = static_cast<size_t>(TensorBytes(t, 1, scales.elems));
  for (size_t off = 0; off < bytes.size(); off += block) {
    for (int f = 0; f < scales.count; ++f) {
      const uint16_t h = kernels::reference::F32ToF16(0.01f * (1.0f + dist(rng)));
      std::memcpy(&bytes[off + scales.offsets[f]], &h, 2);
    }
  }
  return bytes;
}

// The preferred copy of `native` in `layout`; false when the layout is common.
bool MakePreferred(const MatmulWeight& native, const Layout& layout, std::vector<uint8_t>& bytes,
                   MatmulWeight& out) {
  out = native;
  out.group_rows = static_cast<int32_t>(layout.group_rows);
  out.k_block = static_cast<int32_t>(layout.k_block);
  const size_t rows = static_cast<size_t>(native.rows);
  const size_t cols = static_cast<size_t>(native.cols);
  const size_t g = layout.group_rows;
  bytes.resize(static_cast<size_t>(TensorBytes(native.type, native.rows, native.cols)));
  out.data = bytes.data();
  bool ok = false;
  switch (layout.kind) {
    case LayoutKind::kQuantRowGroupInterleave: {
      out.layout = WeightLayout::kQuantRowGroup;
      kernels::QuantBlockFormat f;
      if (!kernels::QuantRowGroupFormatOf(native.type, &f)) std::abort();
      const size_t block_elems = static_cast<size_t>(BlockScalesOf(native.type).elems);
      const kernels::QuantRowGroupParams p{rows, cols / block_elems, f, g};
      ok = kernels::QuantRowGroupForward(native.data, bytes.data(), p, 0,
                                         kernels::QuantRowGroupCount(p));
      break;
    }
    case LayoutKind::kBf16KPair: {
      out.layout = WeightLayout::kBf16KPair;
      const kernels::Bf16KPairParams p{rows, cols, g};
      ok = kernels::Bf16KPairForward(native.data, bytes.data(), p, 0,
                                     kernels::Bf16KPairGroupCount(p));
      break;
    }
    case LayoutKind::kRowGroupInterleave: {
      out.layout = WeightLayout::kRowGroup;
      const kernels::RowGroupParams p{rows, cols, native.type == WeightType::kF32 ? 4u : 2u, g,
                                      layout.k_block};
      ok = kernels::RowGroupInterleaveForward(native.data, bytes.data(), p, 0,
                                              kernels::RowGroupCount(p));
      break;
    }
    default:
      return false;
  }
  if (!ok) std::abort();
  return true;
}

// Best seconds per call: one warm-up, then at least `reps` calls and 0.2 s.
double TimeCall(const MatmulWeight& w, const std::vector<float>& x, int64_t tokens,
                std::vector<float>& y, kernels::ThreadPool* pool, int reps) {
  if (!kernels::Matmul(w, x.data(), tokens, y.data(), pool)) std::abort();
  double best = 1e30;
  double total = 0.0;
  for (int r = 0; r < reps || (total < 0.2 && r < 1000); ++r) {
    const auto start = Clock::now();
    if (!kernels::Matmul(w, x.data(), tokens, y.data(), pool)) std::abort();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

int Run(int argc, char** argv) {
  int reps = 3;
  bool quick = false;
  std::string filter;
  std::vector<int> thread_counts = {1, 2};
  std::vector<int64_t> token_override;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--case" && i + 1 < argc) {
      filter = argv[++i];
    } else if (arg == "--quick") {
      quick = true;
    } else if ((arg == "--threads" || arg == "--tokens") && i + 1 < argc) {
      std::vector<int64_t> list;
      for (const char* p = argv[++i]; *p != '\0';) {
        list.push_back(std::max(1, std::atoi(p)));
        while (*p != '\0' && *p != ',') ++p;
        if (*p == ',') ++p;
      }
      if (arg == "--tokens") {
        token_override = list;
      } else {
        thread_counts.assign(list.begin(), list.end());
      }
    } else if (arg == "--isa" && i + 1 < argc) {
      const std::string name = argv[++i];
      bool found = false;
      for (kernels::MatmulIsa isa :
           {kernels::MatmulIsa::kAuto, kernels::MatmulIsa::kScalar, kernels::MatmulIsa::kAvx2,
            kernels::MatmulIsa::kAvx512, kernels::MatmulIsa::kAvx512NoBf16}) {
        if (name == kernels::MatmulIsaName(isa)) {
          found = kernels::SetMatmulIsaForTesting(isa);
          if (!found) std::fprintf(stderr, "bench_matmul: this CPU cannot run %s\n", name.c_str());
        }
      }
      if (!found) return 2;
    } else {
      std::fprintf(
          stderr,
          "usage: bench_matmul [--reps N] [--isa NAME] [--quick] [--threads 1,2] [--tokens "
          "1,8,64] [--case SUBSTRING]\n");
      return 2;
    }
  }
  const std::vector<int64_t> decode_prefill =
      quick ? std::vector<int64_t>{1, 64} : std::vector<int64_t>{1, 64, 512};
  const std::vector<int64_t> short_list = {1, 64};
  const std::vector<Case> cases = {
      {"smollm2 q/o    Q4_1", DType::kQ4_1, 576, 576, decode_prefill},
      {"smollm2 k/v    Q4_1", DType::kQ4_1, 192, 576, decode_prefill},
      {"smollm2 gate/up Q4_1", DType::kQ4_1, 1536, 576, decode_prefill},
      {"smollm2 down   Q4_1", DType::kQ4_1, 576, 1536, decode_prefill},
      {"smollm2 output Q8_0", DType::kQ8_0, 49152, 576, short_list},
      // A 1B-class layer in Q4_0 and in the K types of its Q4_K_M and Q6_K
      // files (Q4_K_M: Q4_K, with attn_v and ffn_down Q6_K in some layers).
      {"1b q/o         Q4_0", DType::kQ4_0, 2048, 2048, decode_prefill},
      {"1b gate/up     Q4_0", DType::kQ4_0, 8192, 2048, decode_prefill},
      {"1b down        Q4_0", DType::kQ4_0, 2048, 8192, decode_prefill},
      {"1b q/o         Q4_K", DType::kQ4_K, 2048, 2048, decode_prefill},
      {"1b k/v         Q4_K", DType::kQ4_K, 512, 2048, decode_prefill},
      {"1b gate/up     Q4_K", DType::kQ4_K, 8192, 2048, decode_prefill},
      {"1b down        Q4_K", DType::kQ4_K, 2048, 8192, decode_prefill},
      {"1b q/o         Q6_K", DType::kQ6_K, 2048, 2048, decode_prefill},
      {"1b k/v         Q6_K", DType::kQ6_K, 512, 2048, decode_prefill},
      {"1b gate/up     Q6_K", DType::kQ6_K, 8192, 2048, decode_prefill},
      {"1b down        Q6_K", DType::kQ6_K, 2048, 8192, decode_prefill},
      {"1b output      Q6_K", DType::kQ6_K, 49152, 2048, short_list},
      {"8b-class       Q4_1", DType::kQ4_1, 4096, 4096, decode_prefill},
      {"8b-class       Q4_0", DType::kQ4_0, 4096, 4096, short_list},
      {"8b-class       Q4_K", DType::kQ4_K, 4096, 4096, short_list},
      {"8b-class       Q6_K", DType::kQ6_K, 4096, 4096, short_list},
      {"8b-class       Q8_0", DType::kQ8_0, 4096, 4096, short_list},
      {"8b-class       F16", DType::kF16, 4096, 4096, short_list},
      {"8b-class       BF16", DType::kBF16, 4096, 4096, short_list},
      {"8b-class       F32", DType::kF32, 4096, 4096, short_list},
  };

  const kernels::CpuFeatures& cpu = kernels::DetectCpuFeatures();
  Result<LayoutPolicy> policy = LayoutPolicy::Create(DeviceCaps{cpu}, "auto");
  if (!policy.ok()) return 2;
  std::printf("cpu: %s\nmatmul isa: %s\n", kernels::CpuFeaturesToString(cpu).c_str(),
              kernels::MatmulIsaName(kernels::ActiveMatmulIsa()));
  std::printf("%-21s %-11s %4s %3s | %9s %8s | %9s %8s | %6s\n", "case (N x K)", "preferred", "T",
              "thr", "nat GF/s", "nat GB/s", "pref GF/s", "pref GB/s", "ratio");
  std::mt19937 rng(1);
  for (const Case& c : cases) {
    if (std::string(c.name).find(filter) == std::string::npos) continue;
    const WeightType type = WeightTypeOf(c.dtype);
    std::vector<uint8_t> native_bytes = RandomWeights(type, c.rows, c.cols, rng);
    const MatmulWeight native{
        native_bytes.data(), type, WeightLayout::kRowMajor, c.rows, c.cols, 1, 0};
    const int64_t shape[2] = {c.rows, c.cols};
    const Layout layout = policy->Choose(c.dtype, TensorRole::kAttnQ, shape);
    std::vector<uint8_t> preferred_bytes;
    MatmulWeight preferred;
    const bool has_preferred = MakePreferred(native, layout, preferred_bytes, preferred);
    const double weight_gb = static_cast<double>(TensorBytes(type, c.rows, c.cols)) / 1e9;
    for (int64_t tokens : token_override.empty() ? c.tokens : token_override) {
      std::vector<float> x(static_cast<size_t>(tokens * c.cols));
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (float& v : x) v = dist(rng);
      std::vector<float> y(static_cast<size_t>(tokens * c.rows));
      const double gflop = 2.0 * static_cast<double>(c.rows * c.cols * tokens) / 1e9;
      for (int threads : thread_counts) {
        kernels::ThreadPool pool(threads);
        const double nat = TimeCall(native, x, tokens, y, &pool, reps);
        std::printf("%-15s %5lldx%-5lld %-11s %4lld %3d | %9.1f %8.1f |", c.name,
                    static_cast<long long>(c.rows), static_cast<long long>(c.cols),
                    has_preferred ? layout.Name().c_str() : "native",
                    static_cast<long long>(tokens), threads, gflop / nat, weight_gb / nat);
        if (has_preferred) {
          const double pref = TimeCall(preferred, x, tokens, y, &pool, reps);
          std::printf(" %9.1f %8.1f | %5.2fx\n", gflop / pref, weight_gb / pref, nat / pref);
        } else {
          std::printf(" %9s %8s | %6s\n", "-", "-", "-");
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace relayout

int main(int argc, char** argv) { return relayout::Run(argc, argv); }
