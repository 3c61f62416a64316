// Matmul dispatch: picks the kernels of the best ISA once, prepares the
// activations once per call (Q8 blocks for quantized weights, bf16 pairs for
// vdpbf16ps), and splits the output rows across the pool in whole row groups.
//
// The kernels (matmul_internal.h) loop over token blocks, then row tiles,
// then register tiles of tokens, so a weight tile is loaded once per token
// block and used for every token in it; the activations of one token block
// are sized to stay in L2.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/matmul/matmul_testing.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout::kernels {
namespace {

using matmul_internal::IsaKernels;
using matmul_internal::MatmulArgs;

// Activations of one token block. Quantized: they stay in L1 (32 of 48 KiB)
// beside one 8-row weight tile while the tile loop streams the weights once
// per block; a larger block made every tile re-read them from L2 and measured
// about 1.5x slower at K = 4096. Float: half of L2.
constexpr int64_t kQuantTokenBlockBytes = 32 << 10;
// K-quant activations: a tile unpacks one super-block of its 8 rows at a
// time and dots it with every token of the block, so the block's activations
// stream from L2 once per tile; a larger block amortizes the unpacking.
constexpr int64_t kKQuantTokenBlockBytes = 128 << 10;
constexpr int64_t kFloatTokenBlockBytes = 192 << 10;
// Weight bytes per row panel: a quarter of a 1 MiB L2, with the activations.
constexpr int64_t kRowPanelBytes = 256 << 10;
using matmul_internal::kFloatGemmMinTokens;
using matmul_internal::kFloatGemmTokens;
// Below this many weight bytes x tokens per chunk, waking a worker costs more
// than the work it takes over.
constexpr int64_t kMinChunkWork = 48 << 10;

// The ISA files compile their kernels exactly when the target is x86-64
// (kernels/CMakeLists.txt gives them their -m flags only then).
#if defined(__x86_64__)
constexpr bool kX86KernelsBuilt = true;
#else
constexpr bool kX86KernelsBuilt = false;
#endif

std::atomic<MatmulIsa> g_forced{MatmulIsa::kAuto};

bool HasAvx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool HasAvx512(const CpuFeatures& f) {
  return HasAvx2(f) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
}

MatmulIsa BestIsa() {
  static const MatmulIsa best = [] {
    const CpuFeatures& f = DetectCpuFeatures();
    if (HasAvx512(f)) return MatmulIsa::kAvx512;
    if (HasAvx2(f)) return MatmulIsa::kAvx2;
    return MatmulIsa::kScalar;
  }();
  return best;
}

// Block shape of a weight type: elements and bytes per block (1 and the
// element size for floats).
struct BlockShape {
  int64_t elems;
  int64_t bytes;
};

BlockShape BlockShapeOf(WeightType t) {
  switch (t) {
    case WeightType::kF32:
      return {1, 4};
    case WeightType::kF16:
    case WeightType::kBF16:
      return {1, 2};
    case WeightType::kQ8_0:
      return {32, 34};
    case WeightType::kQ4_0:
    case WeightType::kIQ4_NL:
      return {32, 18};
    case WeightType::kQ4_1:
      return {32, 20};
    case WeightType::kQ5_0:
      return {32, 22};
    case WeightType::kQ5_1:
      return {32, 24};
    case WeightType::kQ2_K:
      return {256, 84};
    case WeightType::kQ3_K:
      return {256, 110};
    case WeightType::kQ4_K:
      return {256, 144};
    case WeightType::kQ5_K:
      return {256, 176};
    case WeightType::kQ6_K:
      return {256, 210};
  }
  return {1, 0};
}

bool IsKQuant(WeightType t) { return BlockShapeOf(t).elems == 256; }
bool IsQuant(WeightType t) { return BlockShapeOf(t).elems == 32; }

int64_t WeightBytes(const MatmulWeight& w) {
  const BlockShape b = BlockShapeOf(w.type);
  return w.rows * (w.cols / b.elems) * b.bytes;
}

// Per-thread scratch for the prepared activations, grown as needed and kept.
unsigned char* Scratch(size_t bytes) {
  thread_local std::vector<unsigned char> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

size_t AlignUp(size_t n) { return (n + 63) / 64 * 64; }

// Runs fn(i) for i in [0, n), on the pool when there is one.
template <typename Fn>
void ForEach(ThreadPool* pool, int64_t n, const Fn& fn) {
  if (pool == nullptr || n < 2) {
    for (int64_t i = 0; i < n; ++i) fn(i);
  } else {
    pool->Run(n, fn);
  }
}

void PrepareQ8(const IsaKernels& k, MatmulArgs& a, ThreadPool* pool) {
  const int64_t kk = a.w.cols;
  const int64_t nb = kk / 32;
  const size_t q_bytes = AlignUp(static_cast<size_t>(a.tokens * kk));
  const size_t f_bytes = AlignUp(static_cast<size_t>(a.tokens * nb) * 4);
  unsigned char* p = Scratch(q_bytes + 3 * f_bytes);
  auto* q = reinterpret_cast<int8_t*>(p);
  auto* d = reinterpret_cast<float*>(p + q_bytes);
  auto* sum = reinterpret_cast<int32_t*>(p + q_bytes + f_bytes);
  auto* s = reinterpret_cast<float*>(p + q_bytes + 2 * f_bytes);
  const float* x = a.x;
  ForEach(a.tokens >= 4 ? pool : nullptr, a.tokens, [&](int64_t t) {
    k.quantize(x + t * kk, kk, q + t * kk, d + t * nb, sum + t * nb, s + t * nb);
  });
  a.xq = {q, d, sum, s};
}

void PrepareQ8K(const IsaKernels& k, MatmulArgs& a, ThreadPool* pool) {
  const int64_t kk = a.w.cols;
  const int64_t nb = kk / matmul_internal::kKBlock;
  const int64_t ns = kk / matmul_internal::kKSub;
  const size_t q_bytes = AlignUp(static_cast<size_t>(a.tokens * kk));
  const size_t d_bytes = AlignUp(static_cast<size_t>(a.tokens * nb) * 4);
  const size_t s_bytes = AlignUp(static_cast<size_t>(a.tokens * ns) * 2);
  unsigned char* p = Scratch(q_bytes + d_bytes + s_bytes);
  auto* q = reinterpret_cast<int8_t*>(p);
  auto* d = reinterpret_cast<float*>(p + q_bytes);
  auto* bsum = reinterpret_cast<int16_t*>(p + q_bytes + d_bytes);
  const float* x = a.x;
  ForEach(a.tokens >= 4 ? pool : nullptr, a.tokens,
          [&](int64_t t) { k.quantize_k(x + t * kk, kk, q + t * kk, d + t * nb, bsum + t * ns); });
  a.xk = {q, d, bsum};
}

void PrepareBf16(const IsaKernels& k, MatmulArgs& a, ThreadPool* pool) {
  const int64_t pairs = (a.w.cols + 1) / 2;
  const size_t bytes = AlignUp(static_cast<size_t>(a.tokens * pairs) * 4);
  unsigned char* p = Scratch(2 * bytes);
  auto* hi = reinterpret_cast<uint32_t*>(p);
  auto* lo = reinterpret_cast<uint32_t*>(p + bytes);
  const float* x = a.x;
  const int64_t kk = a.w.cols;
  ForEach(a.tokens >= 4 ? pool : nullptr, a.tokens,
          [&](int64_t t) { k.split_bf16(x + t * kk, kk, hi + t * pairs, lo + t * pairs); });
  a.xb = {hi, lo};
}

// x in token groups for the float GEMM (FloatPackedActivations).
void PrepareFloatPacked(const IsaKernels& k, MatmulArgs& a, ThreadPool* pool) {
  const int64_t kk = a.w.cols;
  const int64_t groups = (a.tokens + kFloatGemmTokens - 1) / kFloatGemmTokens;
  const int64_t group_floats = kk * kFloatGemmTokens;
  auto* out = reinterpret_cast<float*>(Scratch(static_cast<size_t>(groups * group_floats) * 4));
  const float* x = a.x;
  const int64_t tokens = a.tokens;
  ForEach(pool, groups, [&](int64_t g) {
    const int64_t t0 = g * kFloatGemmTokens;
    const int n = static_cast<int>(std::min<int64_t>(kFloatGemmTokens, tokens - t0));
    k.pack_float(x + t0 * kk, kk, n, out + g * group_floats);
  });
  a.xp = {out};
}

}  // namespace

int64_t MatmulWeightBytes(const MatmulWeight& w) { return WeightBytes(w); }

bool MatmulIsaAvailable(MatmulIsa isa) {
  const CpuFeatures& f = DetectCpuFeatures();
  switch (isa) {
    case MatmulIsa::kAuto:
    case MatmulIsa::kScalar:
      return true;
    case MatmulIsa::kAvx2:
      return HasAvx2(f) && kX86KernelsBuilt;
    case MatmulIsa::kAvx512:
    case MatmulIsa::kAvx512NoBf16:
      return HasAvx512(f) && kX86KernelsBuilt;
  }
  return false;
}

bool SetMatmulIsaForTesting(MatmulIsa isa) {
  if (!MatmulIsaAvailable(isa)) return false;
  g_forced.store(isa);
  return true;
}

MatmulIsa ActiveMatmulIsa() {
  const MatmulIsa forced = g_forced.load();
  if (forced != MatmulIsa::kAuto) return forced;
  const MatmulIsa best = BestIsa();
  if (best != MatmulIsa::kScalar && !MatmulIsaAvailable(best)) return MatmulIsa::kScalar;
  return best;
}

const char* MatmulIsaName(MatmulIsa isa) {
  switch (isa) {
    case MatmulIsa::kAuto:
      return "auto";
    case MatmulIsa::kScalar:
      return "scalar";
    case MatmulIsa::kAvx2:
      return "avx2";
    case MatmulIsa::kAvx512:
      return "avx512";
    case MatmulIsa::kAvx512NoBf16:
      return "avx512-nobf16";
  }
  return "?";
}

bool Matmul(const MatmulWeight& w, const float* x, int64_t tokens, float* y, ThreadPool* pool) {
  if (!MatmulSupported(w) || tokens < 1 || x == nullptr || y == nullptr) return false;
  const MatmulIsa isa = ActiveMatmulIsa();
  // The ISA tables are only touched once the CPU is known to run them.
  const IsaKernels& k = isa == MatmulIsa::kScalar ? matmul_internal::ScalarKernels()
                        : isa == MatmulIsa::kAvx2 ? matmul_internal::Avx2Kernels()
                                                  : matmul_internal::Avx512Kernels();
  MatmulArgs a;
  a.w = w;
  a.x = x;
  a.tokens = tokens;
  a.y = y;
  matmul_internal::RowsKernel kernel = k.flt;
  int64_t token_bytes = w.cols * 4;
  int64_t block_bytes = kFloatTokenBlockBytes;
  if (IsQuant(w.type)) {
    PrepareQ8(k, a, pool);
    kernel = k.quant;
    token_bytes = w.cols + w.cols / 32 * 12;
    block_bytes = kQuantTokenBlockBytes;
  } else if (IsKQuant(w.type)) {
    PrepareQ8K(k, a, pool);
    kernel = k.kquant;
    token_bytes = w.cols + w.cols / 256 * 4 + w.cols / 16 * 2;
    block_bytes = kKQuantTokenBlockBytes;
  } else if (w.type == WeightType::kBF16 && w.layout == WeightLayout::kBf16KPair &&
             isa == MatmulIsa::kAvx512 && DetectCpuFeatures().avx512bf16 &&
             tokens < kFloatGemmMinTokens) {
    // From kFloatGemmMinTokens the float GEMM (k.flt) reads K-pair groups too,
    // at about 3x vdpbf16ps with the hi/lo split of x here.
    const IsaKernels& bf16 = matmul_internal::Avx512Bf16Kernels();
    if (bf16.bf16_kpair != nullptr && w.group_rows % 16 == 0 && w.cols > 2) {
      PrepareBf16(bf16, a, pool);
      kernel = bf16.bf16_kpair;
      token_bytes = w.cols * 8;
    }
  }
  if (kernel == k.flt && k.pack_float != nullptr && tokens >= kFloatGemmMinTokens &&
      (w.type == WeightType::kF16 || w.type == WeightType::kBF16)) {
    PrepareFloatPacked(k, a, pool);
  }
  a.token_block = std::clamp<int64_t>(block_bytes / token_bytes / 4 * 4, 4, 256);

  const int64_t row_bytes = std::max<int64_t>(1, WeightBytes(w) / w.rows);
  a.row_panel = std::max<int64_t>(16, kRowPanelBytes / row_bytes / 16 * 16);

  const int64_t unit = matmul_internal::SplitUnitRows(w);
  const int64_t units = (w.rows + unit - 1) / unit;
  const int64_t unit_work = std::max<int64_t>(1, WeightBytes(w) / units * tokens);
  const int64_t grain = std::max<int64_t>(1, kMinChunkWork / unit_work);
  if (pool == nullptr || pool->size() == 1 || units <= grain) {
    kernel(a, 0, w.rows);
    return true;
  }
  pool->RunRanges(units, grain, [&](int64_t begin, int64_t end) {
    kernel(a, begin * unit, std::min(w.rows, end * unit));
  });
  return true;
}

}  // namespace relayout::kernels
