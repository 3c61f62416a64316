// embedding.h: rows of each supported type equal the row dequantizer's
// output; ids out of range are refused.
#include "kernels/cpu/ops/embedding.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/matmul/matmul_test_util.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout::kernels {
namespace {

TEST(EmbeddingTest, GathersDequantizedRowsOfEveryType) {
  const int64_t vocab = 5, dim = 64;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  std::vector<float> table(vocab * dim);
  for (float& x : table) x = d(rng);
  const std::vector<int32_t> ids = {4, 0, 4, 2};
  for (WeightType type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16, WeightType::kQ8_0,
                          WeightType::kQ4_0, WeightType::kQ4_1}) {
    const int64_t row_bytes = EmbeddingRowBytes(type, dim);
    ASSERT_GT(row_bytes, 0);
    std::vector<unsigned char> bytes(vocab * row_bytes);
    std::vector<float> expected_rows(vocab * dim);
    for (int64_t r = 0; r < vocab; ++r) {
      const float* src = table.data() + r * dim;
      unsigned char* dst = bytes.data() + r * row_bytes;
      switch (type) {
        case WeightType::kF32:
          std::memcpy(dst, src, dim * 4);
          break;
        case WeightType::kF16:
        case WeightType::kBF16:
          for (int64_t i = 0; i < dim; ++i) {
            const uint16_t h = type == WeightType::kF16 ? reference::F32ToF16(src[i])
                                                        : reference::F32ToBF16(src[i]);
            std::memcpy(dst + 2 * i, &h, 2);
          }
          break;
        case WeightType::kQ8_0:
          reference::QuantizeRowQ8_0(src, dst, dim);
          break;
        case WeightType::kQ4_0:
          reference::QuantizeRowQ4_0(src, dst, dim);
          break;
        case WeightType::kQ4_1:
          reference::QuantizeRowQ4_1(src, dst, dim);
          break;
        default:
          FAIL() << "no quantizer for type " << static_cast<int>(type);
      }
    }
    // The expected rows: the whole table through the row dequantizer.
    std::vector<float> all(vocab * dim);
    using Fn = void (*)(const void*, float*, int64_t);
    Fn fn = type == WeightType::kF32    ? &reference::DequantizeRowF32
            : type == WeightType::kF16  ? &reference::DequantizeRowF16
            : type == WeightType::kBF16 ? &reference::DequantizeRowBF16
            : type == WeightType::kQ8_0 ? &reference::DequantizeRowQ8_0
            : type == WeightType::kQ4_0 ? &reference::DequantizeRowQ4_0
                                        : &reference::DequantizeRowQ4_1;
    fn(bytes.data(), all.data(), vocab * dim);
    std::vector<float> out(ids.size() * dim);
    ASSERT_TRUE(EmbeddingRows(bytes.data(), type, vocab, dim, ids.data(),
                              static_cast<int64_t>(ids.size()), out.data()));
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t i = 0; i < dim; ++i) {
        ASSERT_EQ(out[t * dim + i], all[ids[t] * dim + i]) << static_cast<int>(type);
        if (type == WeightType::kF32) {
          ASSERT_EQ(out[t * dim + i], table[ids[t] * dim + i]);
        }
      }
    }
  }
}

// Every quantized type, on random blocks: a gathered row equals that row of
// the whole table dequantized (the matmul tests' weights).
TEST(EmbeddingTest, GathersRowsOfEveryQuantizedType) {
  const int64_t vocab = 6, dim = 512;
  const std::vector<int32_t> ids = {5, 0, 3, 5};
  std::mt19937 rng(11);
  for (WeightType type : testing::kQuantTypes) {
    const testing::TestWeight tw = testing::MakeWeight(type, vocab, dim, rng);
    ASSERT_EQ(EmbeddingRowBytes(type, dim) * vocab, static_cast<int64_t>(tw.native_bytes.size()))
        << testing::TypeName(type);
    std::vector<float> out(ids.size() * dim, std::nanf(""));
    ASSERT_TRUE(EmbeddingRows(tw.native_bytes.data(), type, vocab, dim, ids.data(),
                              static_cast<int64_t>(ids.size()), out.data()));
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t i = 0; i < dim; ++i) {
        ASSERT_EQ(out[t * dim + i], tw.values[ids[t] * dim + i]) << testing::TypeName(type);
      }
    }
  }
}

TEST(EmbeddingTest, IdOutOfRangeIsRefusedAndNothingWritten) {
  std::vector<float> table(3 * 4, 1.0f);
  std::vector<float> out(2 * 4, -7.0f);
  const std::vector<int32_t> ids = {1, 3};
  EXPECT_FALSE(EmbeddingRows(table.data(), WeightType::kF32, 3, 4, ids.data(), 2, out.data()));
  EXPECT_EQ(out, std::vector<float>(8, -7.0f));
  const int32_t negative = -1;
  EXPECT_FALSE(EmbeddingRows(table.data(), WeightType::kF32, 3, 4, &negative, 1, out.data()));
}

TEST(EmbeddingTest, QuantizedDimMustBeWholeBlocks) {
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kQ8_0, 48), 0);
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kQ4_1, 64), 40);
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kF16, 7), 14);
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kQ4_K, 128), 0);
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kQ4_K, 512), 288);
  EXPECT_EQ(EmbeddingRowBytes(WeightType::kQ5_0, 64), 44);
}

}  // namespace
}  // namespace relayout::kernels
