// quant_matmul.cuh run by the SIMT harness, against the CPU:
//   - QuantizeActivations bit for bit against the CPU's step-1 Quantize
//     (matmul_internal.h's ScalarKernels().quantize, the statement of the
//     algorithm every CPU ISA reproduces);
//   - QuantMatmul against relayout::kernels::Matmul on the same bytes, in the
//     native and the quant row group (G = 8) layouts, for every type, token
//     counts that hit each chunk path (1, 3, 9) and shapes with tail rows,
//     one row, one block;
//   - DequantizeToBf16 bit for bit against the reference dequantizer, over
//     row ranges that start and end inside groups and tails.
// Outputs are NaN-poisoned and followed by a guard region that must stay
// untouched.
#include "kernels/cuda/kernels/quant_matmul.cuh"
#include "kernels/cuda/kernels/quant_testing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {

// gtest names parameters with this.
void PrintTo(QuantType t, std::ostream* os) { *os << testing::QuantTypeName(t); }

namespace {

using simt::HostLauncher;

constexpr QuantType kTypes[] = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_1};

// The types the CPU's Matmul is compared with here; the newer ones (Q5_0,
// Q5_1, IQ4_NL, the K-quants) are checked against a double-precision
// reference below.
constexpr QuantType kNewTypes[] = {QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kIQ4_NL,
                                   QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K,
                                   QuantType::kQ5_K, QuantType::kQ6_K};

const char* Name(QuantType t) { return testing::QuantTypeName(t); }

kernels::WeightType CpuType(QuantType t) {
  return t == QuantType::kQ8_0   ? kernels::WeightType::kQ8_0
         : t == QuantType::kQ4_0 ? kernels::WeightType::kQ4_0
                                 : kernels::WeightType::kQ4_1;
}

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

// Device-like memory: 256-byte aligned (as cudaMalloc), `guard` bytes after
// the payload filled with a sentinel that must survive.
class Buffer {
 public:
  static constexpr uint8_t kGuardByte = 0x5c;
  Buffer(size_t bytes, uint8_t fill, size_t guard = 256)
      : bytes_(bytes), guard_(guard), data_(new (std::align_val_t(256)) uint8_t[bytes + guard]) {
    std::memset(data_, fill, bytes);
    std::memset(data_ + bytes, kGuardByte, guard);
  }
  ~Buffer() { ::operator delete[](data_, std::align_val_t(256)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  uint8_t* data() { return data_; }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  bool GuardIntact() const {
    for (size_t i = 0; i < guard_; ++i) {
      if (data_[bytes_ + i] != kGuardByte) return false;
    }
    return true;
  }

 private:
  size_t bytes_;
  size_t guard_;
  uint8_t* data_;
};

// NaN as the poison of float outputs (an element never written shows).
constexpr uint8_t kPoisonByte = 0xff;

using ::relayout::cuda::testing::RandomFiniteHalf;
using ::relayout::cuda::testing::RandomNative;

std::vector<uint8_t> ToGroups(QuantType t, const std::vector<uint8_t>& native, int64_t rows,
                              int64_t blocks) {
  std::vector<uint8_t> out(native.size(), 0xa5);
  const kernels::QuantRowGroupParams p{static_cast<size_t>(rows), static_cast<size_t>(blocks),
                                       CpuFormat(t), static_cast<size_t>(kGpuQuantGroupRows)};
  EXPECT_TRUE(kernels::QuantRowGroupForward(native.data(), out.data(), p, 0,
                                            kernels::QuantRowGroupCount(p)));
  return out;
}

using ::relayout::cuda::testing::ReferenceDequant;

// Activations: each 32-block gets its own magnitude (so d varies over many
// binades), with some blocks all zero, some below the 2^-100 tiny-block
// threshold and some exactly at it.
std::vector<float> RandomActivations(int64_t tokens, int64_t cols, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const int kind = static_cast<int>(rng() % 16);
    const float scale = kind == 0   ? 0.0f
                        : kind == 1 ? 0x1p-110f
                        : kind == 2 ? 0x1p-100f
                                    : std::ldexp(1.0f, exponent(rng));
    for (int j = 0; j < 32; ++j) x[b * 32 + j] = scale * unit(rng);
    if (kind == 2) x[b * 32 + rng() % 32] = 0x1p-100f;  // amax exactly at the threshold
  }
  return x;
}

// The CPU's step 1, per token row.
struct CpuQ8 {
  std::vector<int8_t> q;
  std::vector<float> d, s;
  std::vector<int32_t> sum;
};

CpuQ8 CpuQuantize(const std::vector<float>& x, int64_t tokens, int64_t cols) {
  const auto quantize = kernels::matmul_internal::ScalarKernels().quantize;
  const int64_t blocks = cols / 32;
  CpuQ8 c;
  c.q.resize(static_cast<size_t>(tokens * cols));
  c.d.resize(static_cast<size_t>(tokens * blocks));
  c.s.resize(c.d.size());
  c.sum.resize(c.d.size());
  for (int64_t t = 0; t < tokens; ++t) {
    quantize(&x[t * cols], cols, &c.q[t * cols], &c.d[t * blocks], &c.sum[t * blocks],
             &c.s[t * blocks]);
  }
  return c;
}

uint32_t Bits(float f) { return FloatToBits(f); }

// Runs QuantizeActivations on a poisoned workspace with a guard after it.
void ExpectQuantizeMatchesCpu(const std::vector<float>& x, int64_t tokens, int64_t cols) {
  SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " cols=" << cols);
  Buffer xb(x.size() * 4, 0);
  std::memcpy(xb.data(), x.data(), x.size() * 4);
  const int64_t ws_bytes = QuantMatmulWorkspaceBytes(tokens, cols);
  Buffer ws(static_cast<size_t>(ws_bytes), kPoisonByte);
  const Q8Activations a = Q8ActivationsIn(ws.data(), tokens, cols);
  QuantizeActivations(HostLauncher{}, xb.as<float>(), tokens, cols, a);
  EXPECT_TRUE(ws.GuardIntact());
  const CpuQ8 c = CpuQuantize(x, tokens, cols);
  EXPECT_EQ(0, std::memcmp(a.q, c.q.data(), c.q.size()));
  int failures = 0;
  for (size_t i = 0; i < c.d.size(); ++i) {
    if ((Bits(a.d[i]) != Bits(c.d[i]) || a.sum[i] != c.sum[i] || Bits(a.s[i]) != Bits(c.s[i])) &&
        ++failures <= 5) {
      ADD_FAILURE() << "block " << i << ": d " << a.d[i] << " vs " << c.d[i] << ", sum " << a.sum[i]
                    << " vs " << c.sum[i] << ", s " << a.s[i] << " vs " << c.s[i];
    }
  }
}

TEST(QuantMatmulTest, WorkspaceHoldsAlignedArrays) {
  for (int64_t tokens : {1, 3, 9, 100}) {
    for (int64_t cols : {32, 96, 256, 4096}) {
      const int64_t bytes = QuantMatmulWorkspaceBytes(tokens, cols);
      std::vector<uint8_t> storage(static_cast<size_t>(bytes) + 256);
      uint8_t* base = storage.data() + (256 - reinterpret_cast<uintptr_t>(storage.data()) % 256);
      const Q8Activations a = Q8ActivationsIn(base, tokens, cols);
      const int64_t blocks = tokens * cols / 32;
      const auto off = [base](const void* p) {
        return static_cast<int64_t>(static_cast<const uint8_t*>(p) - base);
      };
      EXPECT_EQ(off(a.q), 0);
      EXPECT_GE(off(a.d), tokens * cols);
      EXPECT_GE(off(a.sum), off(a.d) + 4 * blocks);
      EXPECT_GE(off(a.s), off(a.sum) + 4 * blocks);
      EXPECT_LE(off(a.s) + 4 * blocks, bytes);
      EXPECT_EQ(off(a.d) % 256, 0);
      EXPECT_EQ(off(a.sum) % 256, 0);
      EXPECT_EQ(off(a.s) % 256, 0);
    }
  }
}

TEST(QuantMatmulTest, LaunchShapes) {
  EXPECT_EQ(QuantGemvTokenChunk(1), 1);
  EXPECT_EQ(QuantGemvTokenChunk(2), 2);
  EXPECT_EQ(QuantGemvTokenChunk(3), 4);
  EXPECT_EQ(QuantGemvTokenChunk(5), 8);
  EXPECT_EQ(QuantGemvTokenChunk(8), 8);
  EXPECT_EQ(QuantGemvTokenChunk(1000), 8);
  // Few groups and long rows: up to 4 warps per group; many groups or short
  // rows: one.
  EXPECT_EQ(QuantGemvGroupWarps(512, 128), 4);    // 4096 x 4096
  EXPECT_EQ(QuantGemvGroupWarps(1792, 128), 2);   // 14336 x 4096
  EXPECT_EQ(QuantGemvGroupWarps(512, 448), 4);    // 4096 x 14336
  EXPECT_EQ(QuantGemvGroupWarps(16032, 128), 1);  // 128256 x 4096
  EXPECT_EQ(QuantGemvGroupWarps(1, 8), 1);
  EXPECT_EQ(QuantGemvGroupWarps(1, 40), 1);
  EXPECT_EQ(QuantGemvGroupWarps(1, 64), 2);
  EXPECT_EQ(QuantGemvGroupWarps(2, 100), 2);
  EXPECT_EQ(QuantGemvGroupWarps(2, 128), 4);
}

TEST(QuantMatmulTest, QuantizeActivationsMatchesCpuBitForBit) {
  std::mt19937 rng(11);
  for (int64_t tokens : {1, 3, 9}) {
    for (int64_t cols : {32, 96, 256}) {
      ExpectQuantizeMatchesCpu(RandomActivations(tokens, cols, rng), tokens, cols);
    }
  }
  // More blocks than one CTA holds (32), with a partial last warp.
  ExpectQuantizeMatchesCpu(RandomActivations(5, 224, rng), 5, 224);
}

TEST(QuantMatmulTest, QuantizeActivationsRoundsTiesToEvenAndSaturates) {
  // amax = 127 gives d = 1 and 1/d = 1, so x itself is rounded: ties to even.
  std::vector<float> x(64, 0.0f);
  const float ties[] = {127.0f, 0.5f, 1.5f, 2.5f, -2.5f, -3.5f, 126.5f, -0.5f, 3.49999f, -126.5f};
  for (size_t i = 0; i < std::size(ties); ++i) x[i] = ties[i];
  // Second block: NaN (ignored by amax, quantized to -128 as on the CPU)
  // among finite values.
  for (int j = 0; j < 32; ++j) x[32 + j] = static_cast<float>(j) - 16.0f;
  x[40] = std::numeric_limits<float>::quiet_NaN();
  ExpectQuantizeMatchesCpu(x, 1, 64);
  Buffer ws(static_cast<size_t>(QuantMatmulWorkspaceBytes(1, 64)), kPoisonByte);
  Buffer xb(64 * 4, 0);
  std::memcpy(xb.data(), x.data(), 64 * 4);
  const Q8Activations a = Q8ActivationsIn(ws.data(), 1, 64);
  QuantizeActivations(HostLauncher{}, xb.as<float>(), 1, 64, a);
  EXPECT_EQ(a.d[0], 1.0f);
  const int want[] = {127, 0, 2, 2, -2, -4, 126, 0, 3, -126};
  for (size_t i = 0; i < std::size(want); ++i) EXPECT_EQ(a.q[i], want[i]) << i;
  EXPECT_EQ(a.q[40], -128);
}

// y from QuantMatmul (harness) and Matmul (CPU) on the same bytes, each
// element within the float-reordering bound 2 (K/32 + 8) 2^-24 sum_k |w_k
// x'_k|, where w is the reference-dequantized weight and x'_k = max(|x_k|,
// |d q_k|): both sides add the same block terms, whose size is bounded by
// the quantized activation d q (at most half a step above |x|).
void CheckMatmul(QuantType type, int64_t rows, int64_t cols, int64_t tokens, std::mt19937& rng,
                 double* worst_ratio) {
  SCOPED_TRACE(::testing::Message()
               << Name(type) << " rows=" << rows << " cols=" << cols << " tokens=" << tokens);
  const int64_t blocks = cols / 32;
  const std::vector<uint8_t> native = RandomNative(type, rows, blocks, rng);
  const std::vector<uint8_t> grouped = ToGroups(type, native, rows, blocks);
  const std::vector<float> wf = ReferenceDequant(type, native, rows * cols);
  const std::vector<float> x = RandomActivations(tokens, cols, rng);
  const CpuQ8 xq = CpuQuantize(x, tokens, cols);

  Buffer xb(x.size() * 4, 0);
  std::memcpy(xb.data(), x.data(), x.size() * 4);
  Buffer ws(static_cast<size_t>(QuantMatmulWorkspaceBytes(tokens, cols)), kPoisonByte);
  for (bool group_layout : {false, true}) {
    SCOPED_TRACE(group_layout ? "quant row group G=8" : "native");
    const std::vector<uint8_t>& bytes = group_layout ? grouped : native;
    Buffer wb(bytes.size(), 0);
    std::memcpy(wb.data(), bytes.data(), bytes.size());
    const size_t y_count = static_cast<size_t>(tokens * rows);
    Buffer yb(y_count * 4, kPoisonByte);
    if (!group_layout) {
      // The whole op: quantize into the workspace, then the GEMV.
      QuantMatmul(HostLauncher{}, type, group_layout, wb.data(), rows, cols, xb.as<float>(), tokens,
                  yb.as<float>(), ws.data());
    } else {
      // The GEMV alone on the activations the first pass left in the
      // workspace (as a plugin reuses them across weights that read one x).
      QuantGemvQ8(HostLauncher{}, type, group_layout, wb.data(), rows, cols,
                  AsConst(Q8ActivationsIn(ws.data(), tokens, cols)), tokens, yb.as<float>());
    }
    EXPECT_TRUE(yb.GuardIntact());
    EXPECT_TRUE(ws.GuardIntact());

    kernels::MatmulWeight w;
    w.data = bytes.data();
    w.type = CpuType(type);
    w.layout =
        group_layout ? kernels::WeightLayout::kQuantRowGroup : kernels::WeightLayout::kRowMajor;
    w.rows = rows;
    w.cols = cols;
    w.group_rows = group_layout ? kGpuQuantGroupRows : 1;
    std::vector<float> ref(y_count, std::nanf(""));
    ASSERT_TRUE(kernels::Matmul(w, x.data(), tokens, ref.data(), nullptr));

    const float* y = yb.as<float>();
    int failures = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t n = 0; n < rows; ++n) {
        double mag = 0.0;
        for (int64_t k = 0; k < cols; ++k) {
          const size_t i = static_cast<size_t>(t * cols + k);
          const double xd =
              static_cast<double>(xq.d[static_cast<size_t>(t * blocks + k / 32)]) * xq.q[i];
          mag += std::fabs(static_cast<double>(wf[static_cast<size_t>(n * cols + k)])) *
                 std::max(std::fabs(static_cast<double>(x[i])), std::fabs(xd));
        }
        const double bound = 2.0 * static_cast<double>(cols / 32 + 8) * 0x1p-24 * mag;
        const size_t i = static_cast<size_t>(t * rows + n);
        const double err = std::fabs(static_cast<double>(y[i]) - ref[i]);
        if (!(err <= bound) && ++failures <= 5) {
          ADD_FAILURE() << "t=" << t << " n=" << n << " y=" << y[i] << " cpu=" << ref[i]
                        << " bound=" << bound;
        }
        if (bound > 0) *worst_ratio = std::max(*worst_ratio, err / bound);
      }
    }
  }
}

class QuantMatmulTypeTest : public ::testing::TestWithParam<QuantType> {};

TEST_P(QuantMatmulTypeTest, MatchesCpuMatmulInBothLayouts) {
  std::mt19937 rng(5 + static_cast<int>(GetParam()));
  double worst = 0.0;
  for (int64_t rows : {8, 13, 1, 69}) {
    for (int64_t cols : {32, 96, 256}) {
      for (int64_t tokens : {1, 3, 9}) CheckMatmul(GetParam(), rows, cols, tokens, rng, &worst);
    }
  }
  std::printf("worst |y - y_cpu| / bound: %.3g\n", worst);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmulTypeTest, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<QuantType>& info) {
                           return std::string(Name(info.param));
                         });

// Long rows: the group kernel splits a group's blocks over 1, 2 and 4 warps
// (QuantGemvGroupWarps) whose threads take one or two block columns each
// (the loads of the second issued in the first's iteration), and the native
// kernel's lanes sweep the row once or several times.
TEST(QuantMatmulTest, MatchesCpuMatmulWithLongRows) {
  std::mt19937 rng(6);
  double worst = 0.0;
  for (QuantType type : kTypes) {
    CheckMatmul(type, 13, 1280, 3, rng, &worst);  // 1 warp, 40 block columns
    CheckMatmul(type, 13, 2048, 1, rng, &worst);  // 2 warps, 64
    CheckMatmul(type, 21, 3200, 9, rng, &worst);  // 2 warps, 100
    CheckMatmul(type, 16, 4096, 2, rng, &worst);  // 4 warps, 128
  }
  std::printf("worst |y - y_cpu| / bound: %.3g\n", worst);
}

// A token's y does not depend on the tokens computed with it (the chunk
// size changes only which registers hold the sums, not the order of the
// additions), like the CPU's "a token alone or in a batch".
TEST(QuantMatmulTest, TokenAloneEqualsTokenInBatch) {
  std::mt19937 rng(9);
  const int64_t rows = 21, cols = 2048, tokens = 11;
  for (QuantType type : kTypes) {
    const std::vector<uint8_t> native = RandomNative(type, rows, cols / 32, rng);
    const std::vector<uint8_t> grouped = ToGroups(type, native, rows, cols / 32);
    const std::vector<float> x = RandomActivations(tokens, cols, rng);
    Buffer xb(x.size() * 4, 0);
    std::memcpy(xb.data(), x.data(), x.size() * 4);
    for (bool group_layout : {false, true}) {
      SCOPED_TRACE(::testing::Message() << Name(type) << (group_layout ? " group" : " native"));
      const std::vector<uint8_t>& bytes = group_layout ? grouped : native;
      Buffer wb(bytes.size(), 0);
      std::memcpy(wb.data(), bytes.data(), bytes.size());
      Buffer ws(static_cast<size_t>(QuantMatmulWorkspaceBytes(tokens, cols)), kPoisonByte);
      Buffer all(static_cast<size_t>(tokens * rows * 4), kPoisonByte);
      QuantMatmul(HostLauncher{}, type, group_layout, wb.data(), rows, cols, xb.as<float>(), tokens,
                  all.as<float>(), ws.data());
      for (int64_t t : {int64_t{0}, int64_t{10}}) {
        Buffer one(static_cast<size_t>(rows * 4), kPoisonByte);
        QuantMatmul(HostLauncher{}, type, group_layout, wb.data(), rows, cols,
                    xb.as<float>() + t * cols, 1, one.as<float>(), ws.data());
        EXPECT_EQ(0, std::memcmp(one.data(), all.as<float>() + t * rows, rows * 4)) << t;
      }
    }
  }
}

TEST(QuantMatmulTest, DequantizeToBf16MatchesReferenceOverRowRanges) {
  std::mt19937 rng(3);
  for (QuantType type : kTypes) {
    for (int64_t rows : {1, 8, 13, 69}) {
      for (int64_t cols : {32, 96}) {
        const int64_t blocks = cols / 32;
        const std::vector<uint8_t> native = RandomNative(type, rows, blocks, rng);
        const std::vector<uint8_t> grouped = ToGroups(type, native, rows, blocks);
        const std::vector<float> wf = ReferenceDequant(type, native, rows * cols);
        // Whole weight; ranges starting and ending inside a group, ending in
        // the tail, covering only tail rows.
        std::vector<std::pair<int64_t, int64_t>> ranges = {{0, rows}};
        if (rows > 8) ranges.insert(ranges.end(), {{3, 7}, {8, rows - 8}, {rows - 3, 3}});
        if (rows == 69) ranges.push_back({60, 9});
        for (bool group_layout : {false, true}) {
          const std::vector<uint8_t>& bytes = group_layout ? grouped : native;
          Buffer wb(bytes.size(), 0);
          std::memcpy(wb.data(), bytes.data(), bytes.size());
          for (const auto& [first, count] : ranges) {
            SCOPED_TRACE(::testing::Message()
                         << Name(type) << (group_layout ? " group" : " native") << " rows=" << rows
                         << " cols=" << cols << " range=" << first << "+" << count);
            Buffer out(static_cast<size_t>(count * cols * 2), kPoisonByte);
            DequantizeToBf16(HostLauncher{}, type, group_layout, wb.data(), rows, cols, first,
                             count, out.as<uint16_t>());
            EXPECT_TRUE(out.GuardIntact());
            int failures = 0;
            for (int64_t i = 0; i < count * cols; ++i) {
              const uint16_t want =
                  kernels::reference::F32ToBF16(wf[static_cast<size_t>(first * cols + i)]);
              const uint16_t got = out.as<uint16_t>()[i];
              if (got != want && ++failures <= 5) {
                ADD_FAILURE() << "element " << i << ": " << got << " vs " << want;
              }
            }
          }
        }
      }
    }
  }
}

// ---- The newer types: Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K ----

TEST(QuantMatmulTest, GemvLayoutsPerType) {
  for (QuantType t : testing::kAllQuantTypes) EXPECT_TRUE(QuantGemvSupported(t, false)) << Name(t);
  for (QuantType t : {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_1}) {
    EXPECT_TRUE(QuantGemvSupported(t, true)) << Name(t);
  }
  for (QuantType t : kNewTypes) EXPECT_FALSE(QuantGemvSupported(t, true)) << Name(t);
}

// The weight's value w_k = a_k - b_k split into its scale part a_k (d q, or
// d sc q) and its min part b_k (-m, or dmin m), each by the reference
// dequantizer on a copy of the blocks with the other part's f16 zeroed: the
// magnitudes the float-rounding bound is taken over (|w_k| alone could
// cancel).
void ScaleAndMinParts(QuantType t, const std::vector<uint8_t>& native, int64_t n,
                      std::vector<float>* a, std::vector<float>* b) {
  int32_t offsets[2];
  const int fields = testing::HalfFieldOffsets(t, offsets);
  if (fields == 1) {
    *a = ReferenceDequant(t, native, n);
    b->assign(static_cast<size_t>(n), 0.0f);
    return;
  }
  std::vector<uint8_t> no_min = native, no_scale = native;
  const int32_t block_bytes = BlockBytes(t);
  for (size_t i = 0; i < native.size(); i += static_cast<size_t>(block_bytes)) {
    std::memset(&no_min[i + static_cast<size_t>(offsets[1])], 0, 2);
    std::memset(&no_scale[i + static_cast<size_t>(offsets[0])], 0, 2);
  }
  *a = ReferenceDequant(t, no_min, n);
  *b = ReferenceDequant(t, no_scale, n);
}

// y from QuantMatmul (harness) against y_ref = sum_k w_k d q_k in double,
// w the reference-dequantized weight and d q the Q8 activations the CPU's
// step 1 gives (bit for bit those of the kernel, checked above): the block
// dots are exact, so the only differences are float roundings: the
// reference's own w_k (at most 3 roundings: 3 2^-24 (|a_k| + |b_k|)), the
// products d dx and dmin dx, and the sums of at most 2 K/32 block terms (a
// scale and a min term per Q8 block), each term at most sum (|a_k| +
// |b_k|) |d q_k| over its block. Bound: (2 (2 K/32 + 8) + 4) 2^-24 sum_k
// (|a_k| + |b_k|) |d q_k|.
void CheckNewTypeMatmul(QuantType type, int64_t rows, int64_t cols, int64_t tokens,
                        std::mt19937& rng, double* worst_ratio) {
  SCOPED_TRACE(::testing::Message()
               << Name(type) << " rows=" << rows << " cols=" << cols << " tokens=" << tokens);
  const int64_t blocks = cols / BlockElements(type);
  const std::vector<uint8_t> native = testing::RandomNative(type, rows, blocks, rng);
  const std::vector<float> wf = ReferenceDequant(type, native, rows * cols);
  std::vector<float> wa, wb;
  ScaleAndMinParts(type, native, rows * cols, &wa, &wb);
  const std::vector<float> x = RandomActivations(tokens, cols, rng);
  const CpuQ8 xq = CpuQuantize(x, tokens, cols);

  Buffer xb(x.size() * 4, 0);
  std::memcpy(xb.data(), x.data(), x.size() * 4);
  Buffer ws(static_cast<size_t>(QuantMatmulWorkspaceBytes(tokens, cols)), kPoisonByte);
  Buffer wbuf(native.size(), 0);
  std::memcpy(wbuf.data(), native.data(), native.size());
  const size_t y_count = static_cast<size_t>(tokens * rows);
  Buffer yb(y_count * 4, kPoisonByte);
  QuantMatmul(HostLauncher{}, type, false, wbuf.data(), rows, cols, xb.as<float>(), tokens,
              yb.as<float>(), ws.data());
  EXPECT_TRUE(yb.GuardIntact());
  EXPECT_TRUE(ws.GuardIntact());

  const float* y = yb.as<float>();
  const int64_t q8_blocks = cols / 32;
  int failures = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t n = 0; n < rows; ++n) {
      double ref = 0.0, mag = 0.0;
      for (int64_t k = 0; k < cols; ++k) {
        const size_t i = static_cast<size_t>(t * cols + k);
        const size_t wi = static_cast<size_t>(n * cols + k);
        const double xd =
            static_cast<double>(xq.d[static_cast<size_t>(t * q8_blocks + k / 32)]) * xq.q[i];
        ref += static_cast<double>(wf[wi]) * xd;
        mag += (std::fabs(static_cast<double>(wa[wi])) + std::fabs(static_cast<double>(wb[wi]))) *
               std::fabs(xd);
      }
      const double bound = (2.0 * static_cast<double>(2 * q8_blocks + 8) + 4.0) * 0x1p-24 * mag;
      const size_t i = static_cast<size_t>(t * rows + n);
      const double err = std::fabs(static_cast<double>(y[i]) - ref);
      if (!(err <= bound) && ++failures <= 5) {
        ADD_FAILURE() << "t=" << t << " n=" << n << " y=" << y[i] << " ref=" << ref
                      << " bound=" << bound;
      }
      if (bound > 0) *worst_ratio = std::max(*worst_ratio, err / bound);
    }
  }
}

class QuantMatmulNewTypeTest : public ::testing::TestWithParam<QuantType> {};

// One row, rows that leave a CTA's warps partly idle, and rows long enough
// that the lanes sweep several times (1280 = 40 blocks of 32; 2560 = 10
// super-blocks, 40 units), for token counts that hit each chunk path.
TEST_P(QuantMatmulNewTypeTest, MatchesDoubleReference) {
  const QuantType type = GetParam();
  std::mt19937 rng(40 + static_cast<int>(type));
  double worst = 0.0;
  const std::vector<int64_t> cols_list =
      IsKQuant(type) ? std::vector<int64_t>{256, 768, 2560} : std::vector<int64_t>{32, 96, 1280};
  for (int64_t rows : {1, 6}) {
    for (int64_t cols : cols_list) {
      for (int64_t tokens : {1, 3, 9}) CheckNewTypeMatmul(type, rows, cols, tokens, rng, &worst);
    }
  }
  std::printf("worst |y - y_ref| / bound: %.3g\n", worst);
}

// A token's y is the same alone and in a batch (chunk sizes 1 and 8 + 4).
TEST_P(QuantMatmulNewTypeTest, TokenAloneEqualsTokenInBatch) {
  const QuantType type = GetParam();
  std::mt19937 rng(50 + static_cast<int>(type));
  const int64_t rows = 5, cols = IsKQuant(type) ? 1024 : 512, tokens = 11;
  const std::vector<uint8_t> native =
      testing::RandomNative(type, rows, cols / BlockElements(type), rng);
  const std::vector<float> x = RandomActivations(tokens, cols, rng);
  Buffer xb(x.size() * 4, 0);
  std::memcpy(xb.data(), x.data(), x.size() * 4);
  Buffer wb(native.size(), 0);
  std::memcpy(wb.data(), native.data(), native.size());
  Buffer ws(static_cast<size_t>(QuantMatmulWorkspaceBytes(tokens, cols)), kPoisonByte);
  Buffer all(static_cast<size_t>(tokens * rows * 4), kPoisonByte);
  QuantMatmul(HostLauncher{}, type, false, wb.data(), rows, cols, xb.as<float>(), tokens,
              all.as<float>(), ws.data());
  for (int64_t t : {int64_t{0}, int64_t{10}}) {
    Buffer one(static_cast<size_t>(rows * 4), kPoisonByte);
    QuantMatmul(HostLauncher{}, type, false, wb.data(), rows, cols, xb.as<float>() + t * cols, 1,
                one.as<float>(), ws.data());
    EXPECT_EQ(0, std::memcmp(one.data(), all.as<float>() + t * rows, rows * 4)) << t;
  }
}

// Bit for bit against the reference dequantizer, native (and, for the
// 32-element types, quant row group G = 8), over row ranges inside and
// across groups.
TEST_P(QuantMatmulNewTypeTest, DequantizeToBf16MatchesReference) {
  const QuantType type = GetParam();
  std::mt19937 rng(60 + static_cast<int>(type));
  const int64_t rows = 13;
  const int64_t cols = IsKQuant(type) ? 512 : 96;
  const int64_t blocks = cols / BlockElements(type);
  const std::vector<uint8_t> native = testing::RandomNative(type, rows, blocks, rng);
  const std::vector<float> wf = ReferenceDequant(type, native, rows * cols);
  std::vector<bool> layouts = {false};
  if (!IsKQuant(type)) layouts.push_back(true);
  for (bool group_layout : layouts) {
    const std::vector<uint8_t> bytes = group_layout ? ToGroups(type, native, rows, blocks) : native;
    Buffer wbuf(bytes.size(), 0);
    std::memcpy(wbuf.data(), bytes.data(), bytes.size());
    for (const auto& [first, count] :
         std::vector<std::pair<int64_t, int64_t>>{{0, rows}, {3, 7}, {8, 5}, {12, 1}}) {
      SCOPED_TRACE(::testing::Message() << Name(type) << (group_layout ? " group" : " native")
                                        << " range=" << first << "+" << count);
      Buffer out(static_cast<size_t>(count * cols * 2), kPoisonByte);
      DequantizeToBf16(HostLauncher{}, type, group_layout, wbuf.data(), rows, cols, first, count,
                       out.as<uint16_t>());
      EXPECT_TRUE(out.GuardIntact());
      int failures = 0;
      for (int64_t i = 0; i < count * cols; ++i) {
        const uint16_t want =
            kernels::reference::F32ToBF16(wf[static_cast<size_t>(first * cols + i)]);
        const uint16_t got = out.as<uint16_t>()[i];
        if (got != want && ++failures <= 5) {
          ADD_FAILURE() << "element " << i << ": " << got << " vs " << want;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(NewTypes, QuantMatmulNewTypeTest, ::testing::ValuesIn(kNewTypes),
                         [](const ::testing::TestParamInfo<QuantType>& info) {
                           return std::string(Name(info.param));
                         });

}  // namespace
}  // namespace relayout::cuda
