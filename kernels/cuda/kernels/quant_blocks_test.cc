// quant_blocks.cuh's index maps and decode against the CPU: the layout
// transform (QuantRowGroupForward, G = 8) and the reference dequantizers
// (dequant.h row functions, block_dequant.h field functions), for every type
// of 32-element blocks, with tail rows after the last full group and weights
// of one row; the K-quant decode (every element of random super-blocks) and
// its scale unpacking against the reference and quant_format.h.
#include "kernels/cuda/kernels/quant_blocks.cuh"
#include "kernels/cuda/kernels/quant_testing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/reference/block_dequant.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/simt/cuda_compat.h"
#include "kernels/quant_format.h"

namespace relayout::cuda {
namespace {

// The types of 32-element blocks.
constexpr QuantType kTypes[] = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_1,
                                QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kIQ4_NL};
constexpr QuantType kKTypes[] = {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K,
                                 QuantType::kQ5_K, QuantType::kQ6_K};

const char* Name(QuantType t) { return testing::QuantTypeName(t); }

kernels::QuantBlockFormat CpuFormat(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return kernels::kQ8_0BlockFormat;
    case QuantType::kQ4_0:
      return kernels::kQ4_0BlockFormat;
    case QuantType::kQ4_1:
      return kernels::kQ4_1BlockFormat;
    case QuantType::kQ5_0:
      return kernels::kQ5_0BlockFormat;
    case QuantType::kQ5_1:
      return kernels::kQ5_1BlockFormat;
    default:
      return kernels::kIQ4_NLBlockFormat;
  }
}

using ::relayout::cuda::testing::RandomFiniteHalf;
using ::relayout::cuda::testing::RandomNative;
using ::relayout::cuda::testing::ReferenceDequant;

std::vector<uint8_t> ToGroups(QuantType t, const std::vector<uint8_t>& native, int64_t rows,
                              int64_t blocks) {
  std::vector<uint8_t> out(native.size(), 0xa5);
  const kernels::QuantRowGroupParams p{static_cast<size_t>(rows), static_cast<size_t>(blocks),
                                       CpuFormat(t), static_cast<size_t>(kGpuQuantGroupRows)};
  EXPECT_TRUE(kernels::QuantRowGroupForward(native.data(), out.data(), p, 0,
                                            kernels::QuantRowGroupCount(p)));
  return out;
}

bool SameBits(float a, float b) { return FloatToBits(a) == FloatToBits(b); }

TEST(QuantBlocksTest, FormatsMatchTheCpuLayoutAndGguf) {
  for (QuantType t : kTypes) {
    const QuantFormat f = FormatOf(t);
    const kernels::QuantBlockFormat c = CpuFormat(t);
    EXPECT_EQ(static_cast<uint32_t>(f.block_bytes), c.block_bytes) << Name(t);
    EXPECT_EQ(static_cast<uint32_t>(f.scale_fields), c.scale_fields) << Name(t);
    EXPECT_EQ(f.payload_bytes, f.block_bytes - 2 * f.scale_fields) << Name(t);
    EXPECT_EQ(f.block_bytes, BlockBytes(t)) << Name(t);
    EXPECT_EQ(BlockElements(t), 32) << Name(t);
    EXPECT_FALSE(IsKQuant(t)) << Name(t);
    // A G = 8 group block is a whole number of 16-byte units: 17, 9, 10, 11, 12, 9.
    EXPECT_EQ(kGpuQuantGroupRows * f.block_bytes % 16, 0) << Name(t);
  }
  EXPECT_EQ(FormatOf(QuantType::kQ8_0).block_bytes * kGpuQuantGroupRows / 16, 17);
  EXPECT_EQ(FormatOf(QuantType::kQ4_0).block_bytes * kGpuQuantGroupRows / 16, 9);
  EXPECT_EQ(FormatOf(QuantType::kQ4_1).block_bytes * kGpuQuantGroupRows / 16, 10);
  EXPECT_EQ(FormatOf(QuantType::kQ5_0).block_bytes * kGpuQuantGroupRows / 16, 11);
  EXPECT_EQ(FormatOf(QuantType::kQ5_1).block_bytes * kGpuQuantGroupRows / 16, 12);
  EXPECT_EQ(BlockBytes(QuantType::kQ5_0), static_cast<int32_t>(sizeof(kernels::BlockQ5_0)));
  EXPECT_EQ(BlockBytes(QuantType::kQ5_1), static_cast<int32_t>(sizeof(kernels::BlockQ5_1)));
  EXPECT_EQ(BlockBytes(QuantType::kIQ4_NL), static_cast<int32_t>(sizeof(kernels::BlockIQ4_NL)));
  EXPECT_EQ(BlockBytes(QuantType::kQ2_K), static_cast<int32_t>(sizeof(kernels::BlockQ2_K)));
  EXPECT_EQ(BlockBytes(QuantType::kQ3_K), static_cast<int32_t>(sizeof(kernels::BlockQ3_K)));
  EXPECT_EQ(BlockBytes(QuantType::kQ4_K), static_cast<int32_t>(sizeof(kernels::BlockQ4_K)));
  EXPECT_EQ(BlockBytes(QuantType::kQ5_K), static_cast<int32_t>(sizeof(kernels::BlockQ5_K)));
  EXPECT_EQ(BlockBytes(QuantType::kQ6_K), static_cast<int32_t>(sizeof(kernels::BlockQ6_K)));
  for (QuantType t : kKTypes) {
    EXPECT_TRUE(IsKQuant(t)) << Name(t);
    EXPECT_EQ(BlockElements(t), 256) << Name(t);
    EXPECT_EQ(FormatOf(t).block_bytes, 0) << Name(t);  // no quant row group format
  }
}

TEST(QuantBlocksTest, DtypesMapToTypes) {
  const int32_t dtypes[] = {RL_DTYPE_Q8_0, RL_DTYPE_Q4_0,   RL_DTYPE_Q4_1, RL_DTYPE_Q5_0,
                            RL_DTYPE_Q5_1, RL_DTYPE_IQ4_NL, RL_DTYPE_Q2_K, RL_DTYPE_Q3_K,
                            RL_DTYPE_Q4_K, RL_DTYPE_Q5_K,   RL_DTYPE_Q6_K};
  for (size_t i = 0; i < std::size(dtypes); ++i) {
    QuantType t = QuantType::kQ8_0;
    EXPECT_TRUE(QuantTypeOfDtype(dtypes[i], &t));
    EXPECT_EQ(t, testing::kAllQuantTypes[i]);
  }
  QuantType t;
  for (int32_t dtype : {RL_DTYPE_F32, RL_DTYPE_F16, RL_DTYPE_BF16, 14, -1}) {
    EXPECT_FALSE(QuantTypeOfDtype(dtype, &t)) << dtype;
  }
}

TEST(QuantBlocksTest, IQ4NLTableIsTheFormats) {
  for (uint32_t v = 0; v < 16; ++v) {
    EXPECT_EQ(IQ4NLValue(v), kernels::kIQ4_NLValues[v]) << v;
    EXPECT_EQ(static_cast<int8_t>(IQ4NLWord(static_cast<int32_t>(v / 4)) >> (8 * (v % 4))),
              kernels::kIQ4_NLValues[v])
        << v;
  }
}

// The scale unpacking from words against quant_format.h's KQuantScaleMin
// (Q4_K, Q5_K) and the Q3_K layout stated byte by byte, on random bytes.
TEST(QuantBlocksTest, KScalesUnpackFromWords) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t bytes[12];
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    const uint32_t s0 = LoadU32(bytes), s1 = LoadU32(bytes + 4), s2 = LoadU32(bytes + 8);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      kernels::KQuantScaleMin(j, bytes, &sc, &m);
      int32_t got_sc, got_m;
      KScaleMin(s0, s1, s2, j, &got_sc, &got_m);
      EXPECT_EQ(got_sc, sc) << j;
      EXPECT_EQ(got_m, m) << j;
    }
    for (int i = 0; i < 16; ++i) {
      const int lo = i < 8 ? bytes[i] & 15 : bytes[i - 8] >> 4;
      const int hi = (bytes[8 + i % 4] >> (2 * (i / 4))) & 3;
      EXPECT_EQ(Q3KScale(s0, s1, s2, i), lo | (hi << 4)) << i;
    }
  }
}

// The GEMV's units: each of a super-block's 4 units takes two distinct Q8
// blocks, and together they take all 8.
TEST(QuantBlocksTest, KUnitsPartitionTheSuperBlock) {
  for (QuantType t : kKTypes) {
    int seen = 0;
    for (int u = 0; u < 4; ++u) {
      int32_t a, b;
      KUnitBlocks(t, u, &a, &b);
      ASSERT_TRUE(a >= 0 && a < 8 && b >= 0 && b < 8 && a != b) << Name(t);
      seen |= (1 << a) | (1 << b);
    }
    EXPECT_EQ(seen, 0xff) << Name(t);
  }
}

// Every element of random super-blocks (random bytes, random finite f16
// scales) through KQuantElement and NativeElement, bit for bit against the
// reference row dequantizer.
TEST(QuantBlocksTest, KQuantDecodeMatchesTheReference) {
  std::mt19937 rng(23);
  for (QuantType t : kKTypes) {
    for (int64_t rows : {1, 3}) {
      for (int64_t blocks : {1, 5}) {
        SCOPED_TRACE(::testing::Message() << Name(t) << " rows=" << rows << " blocks=" << blocks);
        const std::vector<uint8_t> native = RandomNative(t, rows, blocks, rng);
        const int64_t cols = blocks * 256;
        const std::vector<float> ref = ReferenceDequant(t, native, rows * cols);
        int failures = 0;
        for (int64_t n = 0; n < rows; ++n) {
          for (int64_t k = 0; k < cols; ++k) {
            const float want = ref[static_cast<size_t>(n * cols + k)];
            const float elem = KQuantElement(
                t, &native[static_cast<size_t>((n * blocks + k / 256) * BlockBytes(t))],
                static_cast<int32_t>(k % 256));
            const float row = NativeElement(t, native.data(), blocks, n, k);
            if ((!SameBits(elem, want) || !SameBits(row, want)) && ++failures <= 5) {
              ADD_FAILURE() << "n=" << n << " k=" << k << " want=" << want << " got=" << elem
                            << " / " << row;
            }
          }
        }
      }
    }
  }
}

TEST(QuantBlocksTest, BlockQuantFollowsGgufNibblePairing) {
  uint8_t payload[32];
  for (int j = 0; j < 32; ++j) payload[j] = static_cast<uint8_t>(j * 37 + 11);
  const uint32_t qh = 0x9e3779b9u;
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(BlockQuant(QuantType::kQ8_0, payload, j), static_cast<int8_t>(payload[j]));
    const int nib = j < 16 ? payload[j] & 0x0f : payload[j - 16] >> 4;
    EXPECT_EQ(BlockQuant(QuantType::kQ4_0, payload, j), nib - 8) << j;
    EXPECT_EQ(BlockQuant(QuantType::kQ4_1, payload, j), nib) << j;
    EXPECT_EQ(BlockQuant(QuantType::kIQ4_NL, payload, j), kernels::kIQ4_NLValues[nib]) << j;
    const int q5 = nib | static_cast<int>(((qh >> j) & 1) << 4);
    EXPECT_EQ(BlockQuant(QuantType::kQ5_0, payload, j, qh), q5 - 16) << j;
    EXPECT_EQ(BlockQuant(QuantType::kQ5_1, payload, j, qh), q5) << j;
  }
}

// Every element of every row (full groups and tail rows) through both maps,
// against the row reference and the field reference, bit for bit; and the
// fields and payload each map names are the native block's own bytes.
TEST(QuantBlocksTest, PlacesAndDequantMatchTheCpuTransformAndReference) {
  std::mt19937 rng(7);
  for (QuantType t : kTypes) {
    const QuantFormat f = FormatOf(t);
    for (int64_t rows : {1, 5, 7, 8, 9, 13, 16, 21, 69}) {
      for (int64_t blocks : {1, 2, 3, 8}) {
        SCOPED_TRACE(::testing::Message() << Name(t) << " rows=" << rows << " blocks=" << blocks);
        const std::vector<uint8_t> native = RandomNative(t, rows, blocks, rng);
        const std::vector<uint8_t> group = ToGroups(t, native, rows, blocks);
        const std::vector<float> ref = ReferenceDequant(t, native, rows * blocks * 32);
        const int64_t full_rows = rows / kGpuQuantGroupRows * kGpuQuantGroupRows;
        int failures = 0;
        for (int64_t n = 0; n < rows; ++n) {
          for (int64_t b = 0; b < blocks; ++b) {
            const BlockPlace np = NativeBlockPlace(t, blocks, n, b);
            const BlockPlace gp = GroupBlockPlace(t, rows, blocks, kGpuQuantGroupRows, n, b);
            const uint8_t* src = &native[static_cast<size_t>((n * blocks + b) * f.block_bytes)];
            // The maps name the native block's bytes.
            EXPECT_EQ(np.field, (n * blocks + b) * f.block_bytes);
            for (int field = 0; field < f.scale_fields; ++field) {
              EXPECT_EQ(LoadU16(&native[np.field + field * np.field_stride]),
                        LoadU16(src + 2 * field));
              EXPECT_EQ(LoadU16(&group[gp.field + field * gp.field_stride]),
                        LoadU16(src + 2 * field));
            }
            EXPECT_EQ(0,
                      std::memcmp(&group[gp.payload], src + 2 * f.scale_fields, f.payload_bytes));
            EXPECT_EQ(0,
                      std::memcmp(&native[np.payload], src + 2 * f.scale_fields, f.payload_bytes));
            if (n < full_rows) {
              // Inside a full group: the group block is 16-byte aligned and
              // the fields are 2 * G bytes apart.
              const int64_t group_block = ((n / 8) * blocks + b) * 8 * f.block_bytes;
              EXPECT_EQ(group_block % 16, 0);
              EXPECT_EQ(gp.field, group_block + 2 * (n % 8));
              EXPECT_EQ(gp.field_stride, 16);
              EXPECT_EQ(gp.payload, group_block + 16 * f.scale_fields + (n % 8) * f.payload_bytes);
            } else {
              EXPECT_EQ(gp.field, np.field);  // tail rows stay native
              EXPECT_EQ(gp.field_stride, 2);
            }
            // The field reference on the same block.
            // (block_dequant.h has Q8_0, Q4_0 and Q4_1; the row reference
            // stands for it on the others.)
            float fields_ref[32];
            const uint16_t d = LoadU16(src);
            if (t == QuantType::kQ8_0) {
              kernels::reference::DequantizeQ8_0Fields(d, src + 2, fields_ref);
            } else if (t == QuantType::kQ4_0) {
              kernels::reference::DequantizeQ4_0Fields(d, src + 2, fields_ref);
            } else if (t == QuantType::kQ4_1) {
              kernels::reference::DequantizeQ4_1Fields(d, LoadU16(src + 2), src + 4, fields_ref);
            } else {
              std::memcpy(fields_ref, &ref[static_cast<size_t>((n * blocks + b) * 32)],
                          sizeof fields_ref);
            }
            for (int j = 0; j < 32; ++j) {
              const float want = ref[static_cast<size_t>((n * blocks + b) * 32 + j)];
              const float from_native = DequantElement(t, native.data(), np, j);
              const float from_group = DequantElement(t, group.data(), gp, j);
              EXPECT_TRUE(
                  SameBits(NativeElement(t, native.data(), blocks, n, b * 32 + j), from_native));
              if ((!SameBits(from_native, want) || !SameBits(from_group, want) ||
                   !SameBits(fields_ref[j], want)) &&
                  ++failures <= 5) {
                ADD_FAILURE() << "n=" << n << " b=" << b << " j=" << j << " want=" << want
                              << " native=" << from_native << " group=" << from_group
                              << " fields=" << fields_ref[j];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace relayout::cuda
