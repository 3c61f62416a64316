// paged_attention.h against causal GQA attention written out with contiguous
// K/V and a two-pass softmax in double, with scattered blocks, several
// sequences of different lengths in one call, and odd sizes.
#include "kernels/cpu/attention/paged_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/attention/paged_attention_testing.h"
#include "kernels/cpu/layout/widen.h"

namespace relayout::kernels {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Seq {
  int64_t start = 0;  // position of its first query row
  int64_t rows = 0;
  std::vector<int32_t> table;
  std::vector<float> k, v;  // contiguous [start + rows, kv_dim]
};

// GQA groups of 5: the ISA paths' 4- and 2-head blocks and their remainders;
// head_dim 5 (scalar tails only) and 72 (the 4-register blocks of
// AccumulatePv, its single-register steps and a scalar tail on both widths).
void CheckAgainstContiguousReference(int64_t hd) {
  SCOPED_TRACE(::testing::Message() << "head_dim " << hd);
  const int64_t n_heads = 10, n_kv = 2, bs = 4, kv_dim = n_kv * hd, q_dim = n_heads * hd;
  const int64_t num_blocks = 16;
  std::vector<float> k_pool(num_blocks * bs * kv_dim, NAN), v_pool(k_pool.size(), NAN);
  // Blocks handed out out of order, so a wrong table lookup shows.
  std::vector<int32_t> free_blocks = {9, 2, 14, 0, 5, 11, 3, 7, 1, 12, 6, 4, 15, 8, 13, 10};
  std::vector<Seq> seqs = {{0, 41, {}, {}, {}}, {10, 1, {}, {}, {}}, {4, 3, {}, {}, {}}};
  uint32_t seed = 100;
  for (Seq& s : seqs) {
    const int64_t len = s.start + s.rows;
    for (int64_t b = 0; b * bs < len; ++b) {
      s.table.push_back(free_blocks.back());
      free_blocks.pop_back();
    }
    s.k = Random(len * kv_dim, seed++);
    s.v = Random(len * kv_dim, seed++);
    for (int64_t p = 0; p < len; ++p) {
      const int64_t slot = (s.table[p / bs] * bs + p % bs) * kv_dim;
      for (int64_t d = 0; d < kv_dim; ++d) {
        k_pool[slot + d] = s.k[p * kv_dim + d];
        v_pool[slot + d] = s.v[p * kv_dim + d];
      }
    }
  }
  std::vector<AttentionSpan> spans;
  int64_t total = 0;
  for (const Seq& s : seqs) {
    spans.push_back({total, s.rows, s.start, s.table.data()});
    total += s.rows;
  }
  std::vector<float> q = Random(total * q_dim, 7);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const PagedAttentionParams params{n_heads, n_kv, hd, bs, scale};

  std::vector<float> expected(total * q_dim);
  int64_t row = 0;
  for (const Seq& s : seqs) {
    for (int64_t i = 0; i < s.rows; ++i, ++row) {
      const int64_t pos = s.start + i;
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t g = h / (n_heads / n_kv);
        std::vector<double> score(pos + 1);
        double m = -1e300;
        for (int64_t j = 0; j <= pos; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d)
            dot += q[row * q_dim + h * hd + d] * s.k[j * kv_dim + g * hd + d];
          score[j] = dot * scale;
          m = std::max(m, score[j]);
        }
        double sum = 0;
        for (double& x : score) sum += (x = std::exp(x - m));
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= pos; ++j) acc += score[j] / sum * s.v[j * kv_dim + g * hd + d];
          expected[row * q_dim + h * hd + d] = static_cast<float>(acc);
        }
      }
    }
  }
  for (const AttentionIsa isa :
       {AttentionIsa::kPortable, AttentionIsa::kAvx2, AttentionIsa::kAvx512}) {
    if (!SetAttentionIsaForTesting(isa)) continue;
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), new ThreadPool(3)}) {
      std::vector<float> out(total * q_dim, -1.0f);
      ASSERT_TRUE(PagedAttention(params, q.data(), spans.data(), static_cast<int64_t>(spans.size()),
                                 k_pool.data(), v_pool.data(), out.data(), pool));
      for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_NEAR(out[i], expected[i], 1e-5) << i << " isa " << static_cast<int>(isa);
      }
      delete pool;
    }
  }
  SetAttentionIsaForTesting(AttentionIsa::kAuto);
  // F16 pools give what F32 pools holding the same (rounded) values give.
  std::vector<uint16_t> k16(k_pool.size()), v16(v_pool.size());
  NarrowF32ToF16(k_pool.data(), k16.data(), k16.size());
  NarrowF32ToF16(v_pool.data(), v16.data(), v16.size());
  std::vector<float> k_rounded(k_pool.size()), v_rounded(v_pool.size());
  WidenF16ToF32(k16.data(), k_rounded.data(), k16.size());
  WidenF16ToF32(v16.data(), v_rounded.data(), v16.size());
  PagedAttentionParams half = params;
  half.kv_elem = KvElem::kF16;
  std::vector<float> from_f16(total * q_dim), from_f32(total * q_dim);
  ASSERT_TRUE(PagedAttention(half, q.data(), spans.data(), static_cast<int64_t>(spans.size()),
                             k16.data(), v16.data(), from_f16.data(), nullptr));
  ASSERT_TRUE(PagedAttention(params, q.data(), spans.data(), static_cast<int64_t>(spans.size()),
                             k_rounded.data(), v_rounded.data(), from_f32.data(), nullptr));
  EXPECT_EQ(from_f16, from_f32);
  for (size_t i = 0; i < from_f16.size(); ++i) EXPECT_NEAR(from_f16[i], expected[i], 2e-3) << i;
}

TEST(PagedAttentionTest, MatchesContiguousCausalGqaForSeveralSequences) {
  CheckAgainstContiguousReference(5);
  CheckAgainstContiguousReference(72);
}

TEST(PagedAttentionTest, RejectsHeadCountsThatDoNotGroup) {
  float x = 0;
  int32_t table = 0;
  AttentionSpan span{0, 1, 0, &table};
  EXPECT_FALSE(PagedAttention({6, 4, 2, 4, 1.0f}, &x, &span, 1, &x, &x, &x, nullptr));
  EXPECT_FALSE(PagedAttention({4, 4, 2, kMaxAttentionBlockSize + 1, 1.0f}, &x, &span, 1, &x, &x, &x,
                              nullptr));
}

}  // namespace
}  // namespace relayout::kernels
