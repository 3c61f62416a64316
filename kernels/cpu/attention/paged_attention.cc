#include "kernels/cpu/attention/paged_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention/paged_attention_testing.h"
#include "kernels/cpu/attention/paged_attention_tile.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout::kernels {
namespace {

using attention_internal::Tile;
using attention_internal::TileFn;

// F16 -> F32 for every 16-bit pattern (256 KiB): the portable path's
// conversion, one load per element instead of a branchy decode.
const float* F16Table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < t.size(); ++i) t[i] = reference::F16ToF32(static_cast<uint16_t>(i));
    return t;
  }();
  return table.data();
}

struct PortableOps {
  static void Scores(const float* q, int64_t stride, int64_t count, const float* kt, int64_t hd,
                     int64_t width, float* s) {
    for (int64_t c = 0; c < count; ++c) {
      float* sc = s + c * width;
      for (int64_t j = 0; j < width; ++j) sc[j] = 0.0f;
      for (int64_t d = 0; d < hd; ++d) {
        for (int64_t j = 0; j < width; ++j) sc[j] += q[c * stride + d] * kt[d * width + j];
      }
    }
  }
  static void AccumulatePv(const float* p, int64_t n, const float* v, int64_t hd, float* a) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t d = 0; d < hd; ++d) a[d] += p[j] * v[j * hd + d];
    }
  }
  static void Scale(float c, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= c;
  }
  static void Exp(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
  }
  static void WidenF16(const uint16_t* src, float* dst, int64_t n) {
    const float* table = F16Table();
    for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
  }
};

// The widest tile the CPU runs, chosen once.
TileFn ChooseTileFn() {
  const CpuFeatures& cpu = DetectCpuFeatures();
  if (cpu.avx512f && cpu.f16c) {
    if (TileFn fn = attention_internal::Avx512TileFn()) return fn;
  }
  if (cpu.avx2 && cpu.fma && cpu.f16c) {
    if (TileFn fn = attention_internal::Avx2TileFn()) return fn;
  }
  return &attention_internal::RunTile<PortableOps>;
}

std::atomic<TileFn> g_forced_tile{nullptr};

}  // namespace

bool SetAttentionIsaForTesting(AttentionIsa isa) {
  const CpuFeatures& cpu = DetectCpuFeatures();
  TileFn fn = nullptr;
  switch (isa) {
    case AttentionIsa::kAuto:
      break;
    case AttentionIsa::kPortable:
      fn = &attention_internal::RunTile<PortableOps>;
      break;
    case AttentionIsa::kAvx2:
      if (!(cpu.avx2 && cpu.fma && cpu.f16c)) return false;
      fn = attention_internal::Avx2TileFn();
      if (fn == nullptr) return false;
      break;
    case AttentionIsa::kAvx512:
      if (!(cpu.avx512f && cpu.f16c)) return false;
      fn = attention_internal::Avx512TileFn();
      if (fn == nullptr) return false;
      break;
  }
  g_forced_tile.store(fn);
  return true;
}

bool PagedAttention(const PagedAttentionParams& params, const float* q, const AttentionSpan* spans,
                    int64_t num_spans, const void* k_pool, const void* v_pool, float* out,
                    ThreadPool* pool) {
  if (params.n_heads <= 0 || params.n_kv_heads <= 0 || params.head_dim <= 0 ||
      params.n_heads % params.n_kv_heads != 0 || params.block_size <= 0 ||
      params.block_size > kMaxAttentionBlockSize || num_spans < 0) {
    return false;
  }
  if (num_spans == 0) return true;
  static const TileFn chosen = ChooseTileFn();
  const TileFn forced = g_forced_tile.load(std::memory_order_relaxed);
  const TileFn tile_fn = forced != nullptr ? forced : chosen;
  // Tiles: every (span, kv head, chunk of rows).
  // Reused across calls; a reference, because a lambda naming a thread_local
  // would see the worker thread's own (empty) copy.
  thread_local std::vector<Tile> tile_storage;
  std::vector<Tile>& tiles = tile_storage;
  tiles.clear();
  for (int64_t s = 0; s < num_spans; ++s) {
    for (int64_t g = 0; g < params.n_kv_heads; ++g) {
      for (int64_t r = 0; r < spans[s].rows; r += attention_internal::kTileRows) {
        tiles.push_back(
            Tile{&spans[s], g, r, std::min(spans[s].rows, r + attention_internal::kTileRows)});
      }
    }
  }
  auto task = [&](int64_t t) {
    tile_fn(params, q, tiles[static_cast<size_t>(t)], k_pool, v_pool, out);
  };
  const int64_t n = static_cast<int64_t>(tiles.size());
  if (pool == nullptr) {
    for (int64_t t = 0; t < n; ++t) task(t);
  } else {
    pool->Run(n, task);
  }
  return true;
}

}  // namespace relayout::kernels
