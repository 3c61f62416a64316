// attention.cuh run by the SIMT harness against the CPU kernels it mirrors:
// KvWrite bit for bit against kernels::KvWrite, attention (decode, prefill,
// mixed batches) against kernels::PagedAttention on the same pools.
//
// Every case poisons what the kernels must not read or leave: the pools'
// blocks no span owns and the slots past each span's context (0xff bytes:
// NaN as F32 and as F16), the spare block the padding between block tables
// points at, the output (NaN) and the workspace (NaN), and checks sentinels
// past the output and the workspace. A read of a wrong block or slot shows
// up as a NaN in the output.
//
// Tolerance. Both sides compute in float from the same pool values (F16 is
// widened exactly), so they differ only by reassociation: the score q . k is
// a head_dim-term dot product (the CPU sums per lane of its SIMD width, the
// kernels per lane group then by shuffles), the softmax sum and the p . v
// sums run over the context in a different order (the CPU block by block
// with a rescale per block, decode per partition then a log-sum-exp merge,
// prefill per tile), and both call a correctly rounded-to-a-few-ulp expf. A
// float sum of n terms with rounding errors that behave like a random walk
// is off by about sqrt(n) * 2^-24 times the terms' magnitude; with n <= 256,
// |q|, |k|, |v| <= 2 and a score error carried into the weights relatively,
// the expected difference is about 1e-6 per output element. The bound
// |out - ref| <= 1e-5 * (1 + |ref|) leaves a margin of 10 over that, while a
// real defect (one position missed or repeated, a lost rescale, a wrong
// block) moves an output by at least |v| / context ~ 1e-2 here.
// (Observed: at most 2.2e-7 over these cases. Mutants of the kernels -
// causal < for <=, no rescale, a slot off by one, the combine ignoring the
// maxima, a partition's last position dropped, the wrong KV head - all fail.)
#include "kernels/cuda/kernels/attention.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention/kv_write.h"
#include "kernels/cpu/attention/paged_attention.h"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {
namespace {

using simt::HostLauncher;

constexpr float kRelTolerance = 1e-5f;
constexpr float kSentinel = 12345.5f;
constexpr int kPad = 16;  // sentinel floats past the output and the workspace

struct SpanSpec {
  int64_t rows;
  int64_t start;
};

struct Case {
  int32_t heads = 8;
  int32_t kv_heads = 2;
  int32_t head_dim = 8;
  int32_t block_size = 4;
  int32_t kv_dtype = RL_KV_F32;
  std::vector<SpanSpec> spans;
  int32_t partition = kDefaultDecodePartitionTokens;
  int64_t max_context = 0;  // the decode bound; 0: the real maximum
  int64_t max_rows = 0;     // the prefill bound; 0: the real maximum
  int64_t extra_rows = 0;   // KvWrite's total_rows bound past the spans' rows
  uint32_t seed = 1;
};

std::string Describe(const Case& c) {
  std::string s = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " dim " +
                  std::to_string(c.head_dim) + " bs " + std::to_string(c.block_size) +
                  (c.kv_dtype == RL_KV_F16 ? " f16" : " f32") + " P " +
                  std::to_string(c.partition) + " spans";
  for (const SpanSpec& sp : c.spans) {
    s += " (" + std::to_string(sp.rows) + "@" + std::to_string(sp.start) + ")";
  }
  return s;
}

// 16-byte aligned bytes (std::vector<float4> storage), 0xff-filled.
struct Bytes {
  explicit Bytes(size_t n) : storage((n + 15) / 16 + 1) { std::memset(storage.data(), 0xff, n); }
  void* data() { return storage.data(); }
  const void* data() const { return storage.data(); }
  std::vector<float4> storage;
};

std::vector<float> Uniform(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> x(n);
  for (float& f : x) f = dist(rng);
  return x;
}

// One batch: pools with every span's cached prefix written (by the CPU), the
// batch's K/V rows written into the CPU's copy of the pools by the CPU and
// into the harness's copy by KvWrite, and the device-side metadata.
struct World {
  Case c;
  rl_attention_params params{};
  int64_t kv_dim = 0;
  int64_t total_rows = 0;
  int64_t pool_bytes = 0;
  int32_t spare_block = 0;  // never written: poison
  std::vector<std::vector<int32_t>> tables;
  std::vector<kernels::AttentionSpan> cpu_spans;
  std::vector<DeviceAttentionSpan> device_spans;
  std::vector<int32_t> flat_tables;
  std::vector<float> k, v, q;
  Bytes cpu_k, cpu_v, gpu_k, gpu_v;
  AttentionBounds bounds{};

  explicit World(const Case& cs)
      : c(cs),
        kv_dim(int64_t{cs.kv_heads} * cs.head_dim),
        pool_bytes(0),
        cpu_k(0),
        cpu_v(0),
        gpu_k(0),
        gpu_v(0) {
    std::mt19937 rng(c.seed);
    int64_t blocks = 0;
    for (const SpanSpec& sp : c.spans) blocks += CeilDiv<int64_t>(sp.start + sp.rows, c.block_size);
    const int64_t pool_blocks = blocks + 3;  // 3 spare, poisoned
    params.num_heads = c.heads;
    params.num_kv_heads = c.kv_heads;
    params.head_dim = c.head_dim;
    params.block_size = c.block_size;
    params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    params.kv_dtype = c.kv_dtype;
    params.pool_blocks = pool_blocks;
    const int64_t elem = c.kv_dtype == RL_KV_F16 ? 2 : 4;
    pool_bytes = pool_blocks * c.block_size * kv_dim * elem;
    cpu_k = Bytes(pool_bytes);
    cpu_v = Bytes(pool_bytes);
    gpu_k = Bytes(pool_bytes);
    gpu_v = Bytes(pool_bytes);

    // Blocks in a shuffled order, so a table is no arithmetic progression.
    std::vector<int32_t> ids(static_cast<size_t>(pool_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    spare_block = ids.back();
    size_t next = 0;
    int64_t row = 0;
    for (const SpanSpec& sp : c.spans) {
      std::vector<int32_t> t;
      for (int64_t b = 0; b < CeilDiv<int64_t>(sp.start + sp.rows, c.block_size); ++b) {
        t.push_back(ids[next++]);
      }
      tables.push_back(t);
      // Two entries of padding naming the spare block: a kernel reading past
      // its table reads poison.
      const int64_t offset = static_cast<int64_t>(flat_tables.size());
      flat_tables.insert(flat_tables.end(), t.begin(), t.end());
      flat_tables.push_back(spare_block);
      flat_tables.push_back(spare_block);
      device_spans.push_back({row, sp.rows, sp.start, offset});
      row += sp.rows;
    }
    total_rows = row;
    for (size_t s = 0; s < c.spans.size(); ++s) {
      cpu_spans.push_back(
          {device_spans[s].first_row, c.spans[s].rows, c.spans[s].start, tables[s].data()});
    }

    // The cached prefixes [0, start) of every span, into both copies.
    for (size_t s = 0; s < c.spans.size(); ++s) {
      const int64_t n = c.spans[s].start;
      if (n == 0) continue;
      const std::vector<float> hk = Uniform(static_cast<size_t>(n * kv_dim), -1.0f, 1.0f, rng);
      const std::vector<float> hv = Uniform(static_cast<size_t>(n * kv_dim), -1.0f, 1.0f, rng);
      const kernels::AttentionSpan prefix{0, n, 0, tables[s].data()};
      for (Bytes* kp : {&cpu_k, &gpu_k}) {
        Bytes* vp = kp == &cpu_k ? &cpu_v : &gpu_v;
        EXPECT_TRUE(kernels::KvWrite(kv_dim, c.block_size, pool_blocks, Elem(), hk.data(),
                                     hv.data(), &prefix, 1, kp->data(), vp->data()));
      }
    }

    // The batch's rows (and extra_rows past them that no span holds).
    const int64_t kv_rows = total_rows + c.extra_rows;
    k = Uniform(static_cast<size_t>(kv_rows * kv_dim), -1.0f, 1.0f, rng);
    v = Uniform(static_cast<size_t>(kv_rows * kv_dim), -1.0f, 1.0f, rng);
    q = Uniform(static_cast<size_t>(total_rows * c.heads * c.head_dim), -2.0f, 2.0f, rng);
    EXPECT_TRUE(kernels::KvWrite(kv_dim, c.block_size, pool_blocks, Elem(), k.data(), v.data(),
                                 cpu_spans.data(), static_cast<int64_t>(cpu_spans.size()),
                                 cpu_k.data(), cpu_v.data()));
    EXPECT_TRUE(KvWrite(HostLauncher{}, params, k.data(), v.data(), device_spans.data(),
                        static_cast<int64_t>(device_spans.size()), kv_rows, flat_tables.data(),
                        gpu_k.data(), gpu_v.data()));
    EXPECT_EQ(std::memcmp(cpu_k.data(), gpu_k.data(), static_cast<size_t>(pool_bytes)), 0)
        << "K pool differs after KvWrite: " << Describe(c);
    EXPECT_EQ(std::memcmp(cpu_v.data(), gpu_v.data(), static_cast<size_t>(pool_bytes)), 0)
        << "V pool differs after KvWrite: " << Describe(c);

    bounds.num_spans = static_cast<int64_t>(device_spans.size());
    bounds.total_rows = total_rows;
    bounds.max_rows_per_span = c.max_rows;
    bounds.max_context = c.max_context;
    for (const SpanSpec& sp : c.spans) {
      if (c.max_rows == 0) bounds.max_rows_per_span = std::max(bounds.max_rows_per_span, sp.rows);
      if (c.max_context == 0 && sp.rows == 1) {
        bounds.max_context = std::max(bounds.max_context, sp.start + 1);
      }
    }
    if (bounds.max_context == 0) bounds.max_context = 1;
  }

  kernels::KvElem Elem() const {
    return c.kv_dtype == RL_KV_F16 ? kernels::KvElem::kF16 : kernels::KvElem::kF32;
  }
};

// Runs both attentions on a World and compares.
void CheckAttention(const Case& c) {
  SCOPED_TRACE(Describe(c));
  World w(c);
  const int64_t q_dim = int64_t{c.heads} * c.head_dim;
  const size_t n_out = static_cast<size_t>(w.total_rows * q_dim);

  std::vector<float> ref(n_out, std::nanf(""));
  kernels::PagedAttentionParams cp;
  cp.n_heads = c.heads;
  cp.n_kv_heads = c.kv_heads;
  cp.head_dim = c.head_dim;
  cp.block_size = c.block_size;
  cp.scale = w.params.scale;
  cp.kv_elem = w.Elem();
  ASSERT_TRUE(kernels::PagedAttention(cp, w.q.data(), w.cpu_spans.data(),
                                      static_cast<int64_t>(w.cpu_spans.size()), w.cpu_k.data(),
                                      w.cpu_v.data(), ref.data(), nullptr));

  std::vector<float4> out_storage((n_out + kPad) / 4 + 1);
  float* out = reinterpret_cast<float*>(out_storage.data());
  std::fill(out, out + n_out, std::nanf(""));
  std::fill(out + n_out, out + n_out + kPad, kSentinel);
  const uint64_t ws_bytes = AttentionWorkspaceBytes(w.params, w.bounds, c.partition);
  const size_t ws_floats = static_cast<size_t>(ws_bytes / 4);
  std::vector<float> ws(ws_floats + kPad, std::nanf(""));
  std::fill(ws.begin() + static_cast<std::ptrdiff_t>(ws_floats), ws.end(), kSentinel);

  ASSERT_TRUE(Attention(HostLauncher{}, w.params, w.q.data(), w.device_spans.data(),
                        w.flat_tables.data(), w.bounds, w.gpu_k.data(), w.gpu_v.data(), out,
                        ws.data(), ws_bytes, c.partition));

  int bad = 0;
  double max_err = 0.0;
  for (size_t i = 0; i < n_out; ++i) {
    const double err = std::fabs(static_cast<double>(out[i]) - ref[i]);
    const bool ok = std::isfinite(out[i]) && err <= kRelTolerance * (1.0 + std::fabs(ref[i]));
    if (std::isfinite(out[i])) max_err = std::max(max_err, err);
    if (!ok && ++bad <= 5) {
      const int64_t row = static_cast<int64_t>(i) / q_dim;
      const int64_t head = static_cast<int64_t>(i) % q_dim / c.head_dim;
      ADD_FAILURE() << "row " << row << " head " << head << " dim "
                    << static_cast<int64_t>(i) % c.head_dim << ": " << out[i] << " vs " << ref[i];
    }
  }
  EXPECT_EQ(bad, 0) << "max |err| among finite outputs " << max_err;
  for (int i = 0; i < kPad; ++i) {
    EXPECT_EQ(out[n_out + static_cast<size_t>(i)], kSentinel) << "past the output, " << i;
    EXPECT_EQ(ws[ws_floats + static_cast<size_t>(i)], kSentinel) << "past the workspace, " << i;
  }
  std::printf("  max |err| %.3g  %s\n", max_err, Describe(c).c_str());
}

// ------------------------------------------------------------ index maps --

TEST(AttentionCudaTest, SplitsDivisorsAndWorkspace) {
  EXPECT_EQ(DecodeSplits(1, 256), 1);
  EXPECT_EQ(DecodeSplits(256, 256), 1);
  EXPECT_EQ(DecodeSplits(257, 256), 2);
  EXPECT_EQ(DecodeSplits(40, 8), 5);
  EXPECT_EQ(DecodeSplits(0, 8), 1);
  EXPECT_EQ(LargestDivisorAtMost(4, 8), 4);
  EXPECT_EQ(LargestDivisorAtMost(16, 8), 8);
  EXPECT_EQ(LargestDivisorAtMost(12, 8), 6);
  EXPECT_EQ(LargestDivisorAtMost(3, 8), 3);
  EXPECT_EQ(LargestDivisorAtMost(7, 4), 1);
  EXPECT_EQ(LargestDivisorAtMost(1, 8), 1);
  rl_attention_params p{};
  p.num_heads = 32;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  AttentionBounds b{4, 4, 1, 256};
  EXPECT_EQ(AttentionWorkspaceBytes(p, b, 256), 0u);  // one partition: out directly
  b.max_context = 1000;
  EXPECT_EQ(AttentionWorkspaceBytes(p, b, 256), 4u * 32 * 4 * 130 * 4);
  for (int32_t d : {8, 16, 32, 64, 128, 256}) EXPECT_TRUE(AttentionHeadDimSupported(d)) << d;
  for (int32_t d : {0, 4, 24, 80, 96, 512}) EXPECT_FALSE(AttentionHeadDimSupported(d)) << d;
  // Batch 1 at 4096 tokens on 132 SMs: the smallest partition; batch 64: 512.
  EXPECT_EQ(ChooseDecodePartitionTokens(1, 8, 4096, 132), 64);
  EXPECT_EQ(ChooseDecodePartitionTokens(64, 8, 4096, 132), 512);
  EXPECT_EQ(ChooseDecodePartitionTokens(4, 8, 4096, 132), 256);
  EXPECT_EQ(ChooseDecodePartitionTokens(2, 8, 4096, 132), 128);
}

TEST(AttentionCudaTest, DecodeTraitsCoverHeadVectorsWith16ByteLanes) {
  using T128h = attention_internal::DecodeTraits<128, uint16_t>;
  EXPECT_EQ(T128h::kVec, 8);
  EXPECT_EQ(T128h::kLanes, 16);
  EXPECT_EQ(T128h::kGroups, 8);
  EXPECT_EQ(T128h::kTileTokens, 64);
  using T128f = attention_internal::DecodeTraits<128, float>;
  EXPECT_EQ(T128f::kLanes, 32);
  EXPECT_EQ(T128f::kMaxHeads, 4);
  using T256f = attention_internal::DecodeTraits<256, float>;
  EXPECT_EQ(T256f::kVec, 8);
  EXPECT_EQ(T256f::kLanes, 32);
  using P128 = attention_internal::PrefillTraits<128>;
  EXPECT_EQ(P128::kQueries, 64);
  EXPECT_EQ(P128::kColsPerThread, 4);
  EXPECT_EQ(P128::kDimChunks, 4);
  using P256 = attention_internal::PrefillTraits<256>;
  EXPECT_EQ(P256::kQueries, 32);
  EXPECT_LE(P256::kSharedBytes, size_t{227} * 1024);
}

// ---------------------------------------------------------------- KvWrite --

TEST(AttentionCudaTest, KvWriteMatchesCpuBitForBit) {
  // World compares the two pools after KvWrite; rows past the spans (the
  // total_rows bound) and an empty span write nothing.
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    for (int32_t bs : {4, 16}) {
      Case c;
      c.kv_dtype = dtype;
      c.block_size = bs;
      c.head_dim = 16;
      c.spans = {{3, 0}, {0, 5}, {1, 17}, {21, 6}};
      c.extra_rows = 3;
      World w(c);
    }
  }
}

TEST(AttentionCudaTest, KvWriteScalarPathAndHalfRounding) {
  // kv_dim 6 (not a multiple of 8): the element-wise path. Then F16 values
  // on rounding ties, overflow and subnormals, through the vector path.
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    Case c;
    c.heads = 3;
    c.kv_heads = 3;
    c.head_dim = 2;
    c.kv_dtype = dtype;
    c.spans = {{5, 2}, {2, 0}};
    World w(c);
  }
  rl_attention_params p{};
  p.num_heads = 1;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.block_size = 2;
  p.kv_dtype = RL_KV_F16;
  p.pool_blocks = 2;
  const std::vector<float> k = {1.0f + 0x1p-11f,
                                1.0f + 0x3p-11f,
                                65519.0f,
                                65520.0f,
                                -0x1p-25f,
                                0x3p-25f,
                                0x1p-24f,
                                -1.0e-30f,
                                2.0f + 0x1p-10f,
                                -3.0f - 0x1p-10f,
                                0x1.ffep-15f,
                                6.1e-5f,
                                -65504.0f,
                                1e6f,
                                0.0f,
                                -0.0f};
  const std::vector<float> v(k.rbegin(), k.rend());
  const std::vector<int32_t> table = {1};
  const DeviceAttentionSpan span{0, 2, 0, 0};
  const kernels::AttentionSpan cpu_span{0, 2, 0, table.data()};
  Bytes gk(64), gv(64), ck(64), cv(64);
  ASSERT_TRUE(KvWrite(HostLauncher{}, p, k.data(), v.data(), &span, 1, 2, table.data(), gk.data(),
                      gv.data()));
  ASSERT_TRUE(kernels::KvWrite(8, 2, 2, kernels::KvElem::kF16, k.data(), v.data(), &cpu_span, 1,
                               ck.data(), cv.data()));
  EXPECT_EQ(std::memcmp(gk.data(), ck.data(), 64), 0);
  EXPECT_EQ(std::memcmp(gv.data(), cv.data(), 64), 0);
}

TEST(AttentionCudaTest, KvWriteSkipsBlockIdsOutsideThePool) {
  rl_attention_params p{};
  p.num_heads = 1;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.block_size = 1;
  p.kv_dtype = RL_KV_F32;
  p.pool_blocks = 2;
  const std::vector<float> k(16, 1.0f), v(16, 2.0f);
  const std::vector<int32_t> table = {2, -1};  // both outside [0, 2)
  const DeviceAttentionSpan span{0, 2, 0, 0};
  Bytes kp(64), vp(64);
  ASSERT_TRUE(KvWrite(HostLauncher{}, p, k.data(), v.data(), &span, 1, 2, table.data(), kp.data(),
                      vp.data()));
  const Bytes untouched(64);
  EXPECT_EQ(std::memcmp(kp.data(), untouched.data(), 64), 0);
  EXPECT_EQ(std::memcmp(vp.data(), untouched.data(), 64), 0);
}

// ----------------------------------------------------------------- decode --

TEST(AttentionCudaTest, DecodeGqaSeveralSpansAcrossSplits) {
  // Contexts 1, 5, 17, 40, 9 with partitions of 8 positions: five splits,
  // spans using one (out directly) to all of them; blocks past a span's
  // context exit.
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    Case c;
    c.kv_dtype = dtype;
    c.spans = {{1, 0}, {1, 4}, {1, 16}, {1, 39}, {1, 8}};
    c.partition = 8;
    CheckAttention(c);
  }
}

TEST(AttentionCudaTest, DecodeUnderABucketedContextBound) {
  // max_context rounded up (a captured graph's bucket): more splits than
  // any span needs, every extra block exits.
  Case c;
  c.block_size = 16;
  c.kv_dtype = RL_KV_F16;
  c.spans = {{1, 12}, {1, 0}, {1, 30}};
  c.partition = 8;
  c.max_context = 64;
  CheckAttention(c);
}

TEST(AttentionCudaTest, DecodeHeadDim64SingleAndSplitPartitions) {
  for (int32_t partition : {kDefaultDecodePartitionTokens, 32}) {
    Case c;
    c.head_dim = 64;
    c.block_size = 16;
    c.kv_dtype = RL_KV_F16;
    c.spans = {{1, 0}, {1, 32}, {1, 99}};
    c.partition = partition;
    CheckAttention(c);
  }
}

TEST(AttentionCudaTest, DecodeHeadDim128Mha) {
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    Case c;
    c.heads = 2;
    c.kv_heads = 2;
    c.head_dim = 128;
    c.block_size = 4;
    c.kv_dtype = dtype;
    c.spans = {{1, 2}, {1, 19}};
    c.partition = 16;
    CheckAttention(c);
  }
}

TEST(AttentionCudaTest, DecodeGroupsOfThreeAndMqaChunks) {
  // 6 heads over 2 KV heads (a group of 3, as Llama 3.2 3B), and 16 heads
  // over one KV head (two blocks of 8 heads per KV head).
  Case c;
  c.heads = 6;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.spans = {{1, 10}, {1, 3}};
  c.partition = 8;
  CheckAttention(c);
  c.heads = 16;
  c.kv_heads = 1;
  c.kv_dtype = RL_KV_F16;
  CheckAttention(c);
}

// ---------------------------------------------------------------- prefill --

TEST(AttentionCudaTest, PrefillFromPositionZero) {
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    for (int32_t bs : {4, 16}) {
      Case c;
      c.kv_dtype = dtype;
      c.block_size = bs;
      c.spans = {{37, 0}};
      CheckAttention(c);
    }
  }
}

TEST(AttentionCudaTest, PrefillContinuingACachedPrefix) {
  // start_position > 0: the rows see the prefix and each other causally.
  // Head dim 64, 4 heads per KV head: 16 rows per query tile, so 70 rows
  // take 5 tiles; 83 positions take 3 K/V tiles.
  Case c;
  c.head_dim = 64;
  c.block_size = 16;
  c.kv_dtype = RL_KV_F16;
  c.spans = {{20, 13}, {70, 13}};
  CheckAttention(c);
  c.kv_dtype = RL_KV_F32;
  c.heads = 4;
  c.kv_heads = 4;  // MHA: 64 rows per tile
  c.block_size = 4;
  CheckAttention(c);
}

TEST(AttentionCudaTest, PrefillHeadDim128FewTokens) {
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    Case c;
    c.heads = 4;
    c.kv_heads = 2;
    c.head_dim = 128;
    c.block_size = 16;
    c.kv_dtype = dtype;
    c.spans = {{6, 3}, {2, 0}};
    CheckAttention(c);
  }
}

TEST(AttentionCudaTest, PrefillGroupOfThreeAndBoundLargerThanRows) {
  // A group of 3 heads leaves one of the 64 query vectors of a tile unused;
  // max_rows above every span's rows adds query tiles that exit.
  Case c;
  c.heads = 6;
  c.kv_heads = 2;
  c.head_dim = 32;
  c.spans = {{30, 5}, {3, 0}};
  c.max_rows = 64;
  CheckAttention(c);
}

// ------------------------------------------------------------------ mixed --

TEST(AttentionCudaTest, MixedBatchOfDecodeAndPrefillSpans) {
  // Decode rows (one row), prefill chunks from 0 and after a prefix, an
  // empty span: the prefill kernel takes spans of two rows or more, the
  // decode kernel (split in partitions of 8) the single rows.
  for (int32_t dtype : {RL_KV_F32, RL_KV_F16}) {
    Case c;
    c.heads = 8;
    c.kv_heads = 2;
    c.head_dim = 8;
    c.block_size = 4;
    c.kv_dtype = dtype;
    c.spans = {{1, 9}, {12, 0}, {1, 0}, {0, 4}, {9, 21}, {1, 30}};
    c.partition = 8;
    c.max_context = 48;
    c.max_rows = 16;
    CheckAttention(c);
  }
}

// -------------------------------------------------------------- arguments --

TEST(AttentionCudaTest, RefusesWhatItCannotRun) {
  Case c;
  c.spans = {{1, 3}};
  World w(c);
  std::vector<float4> out(64);
  float* o = reinterpret_cast<float*>(out.data());
  auto run = [&](rl_attention_params p, AttentionBounds b, const float* q, uint64_t ws_bytes,
                 int32_t partition) {
    std::vector<float> ws(1024);
    return Attention(HostLauncher{}, p, q, w.device_spans.data(), w.flat_tables.data(), b,
                     w.gpu_k.data(), w.gpu_v.data(), o, ws.data(), ws_bytes, partition);
  };
  EXPECT_TRUE(run(w.params, w.bounds, w.q.data(), 0, 256));
  rl_attention_params p = w.params;
  p.head_dim = 24;
  EXPECT_FALSE(run(p, w.bounds, w.q.data(), 0, 256));
  p = w.params;
  p.kv_dtype = 7;
  EXPECT_FALSE(run(p, w.bounds, w.q.data(), 0, 256));
  p = w.params;
  p.num_heads = 7;  // not a multiple of the KV heads
  EXPECT_FALSE(run(p, w.bounds, w.q.data(), 0, 256));
  EXPECT_FALSE(run(w.params, w.bounds, w.q.data(), 0, 0));
  EXPECT_FALSE(run(w.params, w.bounds, w.q.data(), 0, kMaxDecodePartitionTokens + 1));
  EXPECT_FALSE(run(w.params, w.bounds, w.q.data(), 0, 2));        // 2 splits need a workspace
  EXPECT_FALSE(run(w.params, w.bounds, w.q.data() + 1, 0, 256));  // q not 16-byte aligned
  AttentionBounds b = w.bounds;
  b.max_context = -1;
  EXPECT_FALSE(run(w.params, b, w.q.data(), 0, 256));
  EXPECT_FALSE(KvWrite(HostLauncher{}, p, w.k.data(), w.v.data(), w.device_spans.data(), 1, 1,
                       w.flat_tables.data(), w.gpu_k.data(), w.gpu_v.data()));
}

}  // namespace
}  // namespace relayout::cuda
