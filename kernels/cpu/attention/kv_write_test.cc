#include "kernels/cpu/attention/kv_write.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/layout/widen.h"

namespace relayout::kernels {
namespace {

// Two sequences: one writes positions 3..6 (crossing a block), one
// position 0; every other slot keeps its sentinel.
TEST(KvWriteTest, EachRowLandsInItsPositionsSlotAndNothingElseChanges) {
  constexpr int64_t kDim = 3, kBlock = 4, kBlocks = 4;
  std::vector<float> k(5 * kDim), v(5 * kDim);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i) + 0.5f;
    v[i] = -static_cast<float>(i);
  }
  const int32_t table_a[] = {2, 0};
  const int32_t table_b[] = {3};
  const AttentionSpan spans[] = {{0, 4, 3, table_a}, {4, 1, 0, table_b}};
  for (KvElem elem : {KvElem::kF32, KvElem::kF16}) {
    const size_t elem_bytes = elem == KvElem::kF32 ? 4 : 2;
    std::vector<unsigned char> kp(kBlocks * kBlock * kDim * elem_bytes, 0x7E);
    std::vector<unsigned char> vp = kp;
    ASSERT_TRUE(
        KvWrite(kDim, kBlock, kBlocks, elem, k.data(), v.data(), spans, 2, kp.data(), vp.data()));
    auto slot_of = [&](int32_t block, int64_t pos) {
      return (block * kBlock + pos % kBlock) * kDim;
    };
    std::vector<unsigned char> expect_k(kp.size(), 0x7E), expect_v = expect_k;
    auto put = [&](std::vector<unsigned char>& pool, int64_t slot, const float* row) {
      if (elem == KvElem::kF32) {
        std::memcpy(pool.data() + slot * 4, row, kDim * 4);
      } else {
        NarrowF32ToF16(row, reinterpret_cast<uint16_t*>(pool.data()) + slot, kDim);
      }
    };
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t pos = 3 + i;
      put(expect_k, slot_of(table_a[pos / kBlock], pos), k.data() + i * kDim);
      put(expect_v, slot_of(table_a[pos / kBlock], pos), v.data() + i * kDim);
    }
    put(expect_k, slot_of(3, 0), k.data() + 4 * kDim);
    put(expect_v, slot_of(3, 0), v.data() + 4 * kDim);
    EXPECT_EQ(kp, expect_k);
    EXPECT_EQ(vp, expect_v);
  }
}

TEST(KvWriteTest, BlockIdsOutsideThePoolAreRefusedBeforeAnyWrite) {
  std::vector<float> k(4, 1.0f), v(4, 1.0f);
  std::vector<float> kp(16, 0.0f), vp(16, 0.0f);
  const int32_t ok_then_bad[] = {0, 9};
  const AttentionSpan spans[] = {{0, 1, 0, ok_then_bad}, {1, 1, 4, ok_then_bad}};
  EXPECT_FALSE(KvWrite(4, 4, 1, KvElem::kF32, k.data(), v.data(), spans, 2, kp.data(), vp.data()));
  EXPECT_EQ(kp, std::vector<float>(16, 0.0f));
  const int32_t negative[] = {-1};
  const AttentionSpan bad[] = {{0, 1, 0, negative}};
  EXPECT_FALSE(KvWrite(4, 4, 1, KvElem::kF32, k.data(), v.data(), bad, 1, kp.data(), vp.data()));
}

}  // namespace
}  // namespace relayout::kernels
