// quant_blocks.cuh's index maps and decode against the CPU: the layout
// transform (QuantRowGroupForward, G = 8) and the reference dequantizers
// (dequant.h row functions, block_dequant.h field functions), for every type,
// with tail rows after the last full group and weights of one row.
#include "kernels/cuda/kernels/quant_blocks.cuh"
#include "kernels/cuda/kernels/quant_testing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/reference/block_dequant.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {
namespace {

constexpr QuantType kTypes[] = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_1};

const char* Name(QuantType t) {
  return t == QuantType::kQ8_0 ? "Q8_0" : t == QuantType::kQ4_0 ? "Q4_0" : "Q4_1";
}

kernels::QuantBlockFormat CpuFormat(QuantType t) {
  return t == QuantType::kQ8_0   ? kernels::kQ8_0BlockFormat
         : t == QuantType::kQ4_0 ? kernels::kQ4_0BlockFormat
                                 : kernels::kQ4_1BlockFormat;
}

using ::relayout::cuda::testing::RandomFiniteHalf;
using ::relayout::cuda::testing::RandomNative;

std::vector<float> ReferenceDequant(QuantType t, const std::vector<uint8_t>& native, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (t == QuantType::kQ8_0) kernels::reference::DequantizeRowQ8_0(native.data(), out.data(), n);
  if (t == QuantType::kQ4_0) kernels::reference::DequantizeRowQ4_0(native.data(), out.data(), n);
  if (t == QuantType::kQ4_1) kernels::reference::DequantizeRowQ4_1(native.data(), out.data(), n);
  return out;
}

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
    // A G = 8 group block is a whole number of 16-byte units: 17, 9, 10.
    EXPECT_EQ(kGpuQuantGroupRows * f.block_bytes % 16, 0) << Name(t);
  }
  EXPECT_EQ(FormatOf(QuantType::kQ8_0).block_bytes * kGpuQuantGroupRows / 16, 17);
  EXPECT_EQ(FormatOf(QuantType::kQ4_0).block_bytes * kGpuQuantGroupRows / 16, 9);
  EXPECT_EQ(FormatOf(QuantType::kQ4_1).block_bytes * kGpuQuantGroupRows / 16, 10);
}

TEST(QuantBlocksTest, BlockQuantFollowsGgufNibblePairing) {
  uint8_t payload[32];
  for (int j = 0; j < 32; ++j) payload[j] = static_cast<uint8_t>(j * 37 + 11);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(BlockQuant(QuantType::kQ8_0, payload, j), static_cast<int8_t>(payload[j]));
    const int nib = j < 16 ? payload[j] & 0x0f : payload[j - 16] >> 4;
    EXPECT_EQ(BlockQuant(QuantType::kQ4_0, payload, j), nib - 8) << j;
    EXPECT_EQ(BlockQuant(QuantType::kQ4_1, payload, j), nib) << j;
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
            float fields_ref[32];
            const uint16_t d = LoadU16(src);
            if (t == QuantType::kQ8_0) {
              kernels::reference::DequantizeQ8_0Fields(d, src + 2, fields_ref);
            } else if (t == QuantType::kQ4_0) {
              kernels::reference::DequantizeQ4_0Fields(d, src + 2, fields_ref);
            } else {
              kernels::reference::DequantizeQ4_1Fields(d, LoadU16(src + 2), src + 4, fields_ref);
            }
            for (int j = 0; j < 32; ++j) {
              const float want = ref[static_cast<size_t>((n * blocks + b) * 32 + j)];
              const float from_native = DequantElement(t, native.data(), np, j);
              const float from_group = DequantElement(t, group.data(), gp, j);
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
