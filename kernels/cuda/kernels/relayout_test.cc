// The device's quant row-group transforms (relayout.cuh), run by the SIMT
// harness, against the CPU's QuantRowGroupForward / Inverse: identical bytes
// for Q8_0, Q4_0, Q4_1, G = 8 (the vector path), G = 16 and G = 4 (the
// generic path), with and without tail rows, in place through shared memory
// and through global scratch slots, and out of place in column chunks; the
// bytes around the tensor and the scratch are never touched.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/layout/quant_row_group.h"
#include "kernels/cuda/kernels/relayout.cuh"
#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::cuda {
namespace {

constexpr QuantType kTypes[] = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_1,
                                QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kIQ4_NL};
constexpr size_t kHostMaxShared = simt::kMaxDynamicSharedBytes;

const char* Name(QuantType t) {
  switch (t) {
    case QuantType::kQ8_0:
      return "Q8_0";
    case QuantType::kQ4_0:
      return "Q4_0";
    case QuantType::kQ4_1:
      return "Q4_1";
    case QuantType::kQ5_0:
      return "Q5_0";
    case QuantType::kQ5_1:
      return "Q5_1";
    case QuantType::kIQ4_NL:
      return "IQ4_NL";
    default:  // the K-quants have no quant row group layout
      break;
  }
  return "?";
}

kernels::QuantRowGroupParams CpuParams(QuantType t, int64_t rows, int64_t nb, int32_t g) {
  const QuantFormat f = FormatOf(t);
  kernels::QuantRowGroupParams p;
  p.rows = static_cast<size_t>(rows);
  p.blocks_per_row = static_cast<size_t>(nb);
  p.format = {static_cast<uint32_t>(f.block_bytes), static_cast<uint32_t>(f.scale_fields)};
  p.group_rows = static_cast<size_t>(g);
  return p;
}

// The CPU's out-of-place transform over every group (tail rows copied).
std::vector<uint8_t> CpuTransform(QuantType t, bool forward, const std::vector<uint8_t>& in,
                                  int64_t rows, int64_t nb, int32_t g) {
  const kernels::QuantRowGroupParams p = CpuParams(t, rows, nb, g);
  std::vector<uint8_t> out(in.size(), 0);
  const size_t groups = kernels::QuantRowGroupCount(p);
  const bool ok = forward ? kernels::QuantRowGroupForward(in.data(), out.data(), p, 0, groups)
                          : kernels::QuantRowGroupInverse(in.data(), out.data(), p, 0, groups);
  EXPECT_TRUE(ok);
  return out;
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// `n` bytes at a 16-byte aligned address plus `misalign`, between guards of
// kGuard bytes of a known pattern.
class Guarded {
 public:
  static constexpr size_t kGuard = 64;
  Guarded(size_t n, size_t misalign, uint8_t fill = 0xee)
      : storage_(n + 2 * kGuard + 32, kPattern), n_(n) {
    const size_t raw = reinterpret_cast<uintptr_t>(storage_.data()) + kGuard;
    data_ = storage_.data() + kGuard + (16 - raw % 16) % 16 + misalign;
    for (size_t i = 0; i < n; ++i) data_[i] = fill;
  }
  uint8_t* data() { return data_; }
  size_t size() const { return n_; }
  std::vector<uint8_t> Bytes() const { return std::vector<uint8_t>(data_, data_ + n_); }
  void Set(const std::vector<uint8_t>& v) { std::memcpy(data_, v.data(), n_); }
  // True when every byte outside [data, data + n) still holds the pattern.
  bool GuardsIntact() const {
    for (const uint8_t* p = storage_.data(); p < data_; ++p) {
      if (*p != kPattern) return false;
    }
    for (const uint8_t* p = data_ + n_; p < storage_.data() + storage_.size(); ++p) {
      if (*p != kPattern) return false;
    }
    return true;
  }

 private:
  static constexpr uint8_t kPattern = 0x5a;
  std::vector<uint8_t> storage_;
  uint8_t* data_;
  size_t n_;
};

std::string Case(QuantType t, bool forward, int64_t rows, int64_t nb, int32_t g) {
  return std::string(Name(t)) + (forward ? " forward" : " inverse") +
         " rows=" + std::to_string(rows) + " nb=" + std::to_string(nb) + " G=" + std::to_string(g);
}

// ---- Index maps ----

TEST(RelayoutIndexMapTest, UnitSpansAndByteMapsReproduceTheCpuLayout) {
  for (QuantType t : kTypes) {
    for (int32_t g : {4, 8, 16, 3}) {
      for (int64_t nb : {1, 3, 8}) {
        SCOPED_TRACE(Case(t, true, g, nb, g));
        const int32_t B = FormatOf(t).block_bytes;
        const int64_t bytes = g * nb * B;
        const std::vector<uint8_t> native = RandomBytes(bytes, static_cast<uint32_t>(g * 100 + nb));
        const std::vector<uint8_t> grouped = CpuTransform(t, true, native, g, nb, g);
        RelayoutShape s{};
        ASSERT_TRUE(InitRelayoutShape(t, g, nb * 32, g, &s));
        ASSERT_EQ(s.group_bytes, bytes);
        for (int32_t o = 0; o < bytes; ++o) {
          ASSERT_EQ(grouped[o], native[GroupedByteSource(s, o)]) << o;
        }
        for (int32_t r = 0; r < g; ++r) {
          for (int32_t k = 0; k < s.row_bytes; ++k) {
            ASSERT_EQ(native[r * s.row_bytes + k], grouped[NativeByteSource(s, r, k)])
                << r << " " << k;
          }
        }
        if (g % 8 != 0) continue;
        // A grouped unit is 8 u16 at first + i * stride of the native bytes.
        const int32_t units_per_block = g * B / 16;
        for (int32_t u = 0; u < bytes / 16; ++u) {
          const UnitSpan span = GroupUnitSpan(s, u / units_per_block, u % units_per_block);
          for (int32_t i = 0; i < 8; ++i) {
            ASSERT_EQ(grouped[16 * u + 2 * i], native[span.first + i * span.stride]) << u;
            ASSERT_EQ(grouped[16 * u + 2 * i + 1], native[span.first + i * span.stride + 1]) << u;
          }
        }
      }
    }
  }
}

// The unit spans on a padded pitch: rows land at r * pitch.
TEST(RelayoutIndexMapTest, UnitSpansFollowThePitch) {
  RelayoutShape s{};
  ASSERT_TRUE(InitRelayoutShape(QuantType::kQ4_1, 8, 8 * 32, 8, &s));
  s.pitch = 176;
  // Block 2, unit 1: field m of rows 0..7.
  UnitSpan span = GroupUnitSpan(s, 2, 1);
  EXPECT_EQ(span.first, 2 * 20 + 2);
  EXPECT_EQ(span.stride, 176);
  // Block 1, unit 2 + 5: the payload of row 5.
  span = GroupUnitSpan(s, 1, 7);
  EXPECT_EQ(span.first, 5 * 176 + 20 + 4);
  EXPECT_EQ(span.stride, 2);
}

// ---- Scratch sizes and plans ----

TEST(RelayoutPlanTest, ScratchBytesOnlyWhenAGroupExceedsSharedMemory) {
  const size_t sm90 = 227 * 1024;
  const size_t sm80 = 163 * 1024;
  // Q8_0 K = 14336: 8 * 448 * 34 = 121856 bytes fit both.
  EXPECT_EQ(RelayoutGroupBytes(QuantType::kQ8_0, 14336, 8), 121856);
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 4096, 14336, 8, sm90, 132), 0u);
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 4096, 14336, 8, sm80, 108), 0u);
  // Q8_0 K = 28672 (a 70B ffn_down): 243712 bytes > 227 KiB.
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 8192, 28672, 8, sm90, 132), 132u * 243712u);
  // Q4_0 K = 14336: 64512 bytes (63 KiB), past 48 KiB without the opt-in.
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ4_0, 4096, 14336, 8, 48 * 1024, 4), 4u * 64512u);
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ4_0, 4096, 14336, 8, 48 * 1024, 0), 64512u);
  // No full group: nothing moves.
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 7, 28672, 8, 1024, 4), 0u);
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 8, 48, 8, sm90, 4), UINT64_MAX);
  EXPECT_EQ(RelayoutScratchBytes(QuantType::kQ8_0, 8, 64, 0, sm90, 4), UINT64_MAX);
}

TEST(RelayoutPlanTest, InPlacePlansPadTheStagingAndBoundTheGrid) {
  // Q4_0 K = 4096: row 2304 bytes (144 units, even) -> pitch 2320.
  RelayoutPlan p =
      PlanRelayoutInPlace(QuantType::kQ4_0, 32768, 4096, 8, true, true, 0, 227 * 1024, 132);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.vector);
  EXPECT_TRUE(p.shared_stage);
  EXPECT_EQ(p.shape.pitch, 2320);
  EXPECT_EQ(p.shared_bytes, 8u * 2320u);
  EXPECT_EQ(p.threads, 512);
  EXPECT_EQ(p.grid, kRelayoutMaxGrid);
  EXPECT_EQ(p.shape.items, 4096);
  // The pad is dropped when only the unpadded group fits.
  p = PlanRelayoutInPlace(QuantType::kQ4_0, 64, 4096, 8, true, true, 0, 8 * 2304, 132);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.shared_stage);
  EXPECT_EQ(p.shape.pitch, 2304);
  EXPECT_EQ(p.grid, 8);
  // Q8_0 K = 28672 on sm_90: global slots, as many CTAs as slots and groups allow.
  const uint64_t slot = 243712;
  p = PlanRelayoutInPlace(QuantType::kQ8_0, 8192, 28672, 8, true, true, 132 * slot, 227 * 1024,
                          132);
  ASSERT_TRUE(p.ok);
  EXPECT_FALSE(p.shared_stage);
  EXPECT_TRUE(p.vector);
  EXPECT_EQ(p.grid, 132);
  EXPECT_EQ(p.shape.stage_bytes, 243712);
  p = PlanRelayoutInPlace(QuantType::kQ8_0, 8192, 28672, 8, true, true, 3 * slot + 5, 227 * 1024,
                          132);
  EXPECT_EQ(p.grid, 3);
  p = PlanRelayoutInPlace(QuantType::kQ8_0, 8192, 28672, 8, true, false, 3 * slot, 227 * 1024, 132);
  EXPECT_FALSE(p.vector);  // a misaligned scratch takes the byte path
  p = PlanRelayoutInPlace(QuantType::kQ8_0, 8192, 28672, 8, true, true, slot - 1, 227 * 1024, 132);
  EXPECT_FALSE(p.ok);
  // G = 4 is not a vector shape.
  p = PlanRelayoutInPlace(QuantType::kQ8_0, 64, 4096, 4, true, true, 0, 227 * 1024, 132);
  EXPECT_TRUE(p.ok);
  EXPECT_FALSE(p.vector);
}

TEST(RelayoutPlanTest, CopyPlansCutGroupsIntoPaddedChunks) {
  // Q4_0 K = 4096: the whole row (128 blocks) fits the 32 KiB target padded.
  RelayoutPlan p = PlanRelayoutCopy(QuantType::kQ4_0, 4096, 4096, 8, true, 227 * 1024);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.vector);
  EXPECT_EQ(p.shape.chunks, 1);
  EXPECT_EQ(p.shape.pitch, 2320);
  EXPECT_EQ(p.shape.items, 512);
  // Q8_0 K = 14336: 448 blocks cut into chunks of a multiple of 8 blocks, the
  // largest whose padded staging fits the 32 KiB target.
  p = PlanRelayoutCopy(QuantType::kQ8_0, 4099, 14336, 8, true, 227 * 1024);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.vector);
  EXPECT_EQ(p.shape.chunk_blocks % 8, 0);
  EXPECT_LE(p.shared_bytes, kRelayoutCopyStageTarget);
  EXPECT_GT(8 * ((p.shape.chunk_blocks + 8) * 34 + 16), 32 * 1024);
  EXPECT_EQ(p.shape.chunks, (448 + p.shape.chunk_blocks - 1) / p.shape.chunk_blocks);
  EXPECT_EQ(p.shape.items, 512 * p.shape.chunks + 1);  // + the tail item
  EXPECT_EQ(p.shape.tail_bytes, 3 * 448 * 34);
  // All tail: one item copies it.
  p = PlanRelayoutCopy(QuantType::kQ8_0, 5, 64, 8, true, 227 * 1024);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.shape.items, 1);
  EXPECT_EQ(p.grid, 1);
  EXPECT_EQ(p.shared_bytes, 0u);
  // A group block that fits nowhere.
  p = PlanRelayoutCopy(QuantType::kQ8_0, 64, 64, 8, true, 100);
  EXPECT_FALSE(p.ok);
}

// ---- In place ----

struct InPlaceRun {
  bool ok = false;
  RelayoutPlan plan{};
};

// Runs the in-place transform on `input` and checks it against the CPU; the
// tensor's guards and the scratch's guards must stay intact, and scratch
// bytes past the slots the launch uses must not change.
InPlaceRun CheckInPlace(QuantType t, bool forward, int64_t rows, int64_t nb, int32_t g,
                        size_t max_shared, int32_t ctas, size_t data_misalign,
                        size_t scratch_misalign, uint32_t seed) {
  SCOPED_TRACE(Case(t, forward, rows, nb, g) + " max_shared=" + std::to_string(max_shared) +
               " misalign=" + std::to_string(data_misalign) + "/" +
               std::to_string(scratch_misalign));
  const int64_t bytes = rows * nb * FormatOf(t).block_bytes;
  const std::vector<uint8_t> input = RandomBytes(bytes, seed);
  const std::vector<uint8_t> expected = CpuTransform(t, forward, input, rows, nb, g);
  Guarded data(bytes, data_misalign);
  data.Set(input);
  const uint64_t scratch_bytes = RelayoutScratchBytes(t, rows, nb * 32, g, max_shared, ctas);
  EXPECT_NE(scratch_bytes, UINT64_MAX);
  Guarded scratch(scratch_bytes, scratch_misalign, 0x77);
  InPlaceRun run;
  run.plan =
      PlanRelayoutInPlace(t, rows, nb * 32, g, RelayoutAligned16(data.data()),
                          RelayoutAligned16(scratch.data()), scratch_bytes, max_shared, ctas);
  run.ok = QuantRowGroupTransform(simt::HostLauncher{}, t, forward, data.data(), rows, nb * 32, g,
                                  scratch_bytes > 0 ? scratch.data() : nullptr, scratch_bytes,
                                  max_shared, ctas);
  EXPECT_TRUE(run.ok);
  EXPECT_EQ(data.Bytes(), expected);
  EXPECT_TRUE(data.GuardsIntact());
  EXPECT_TRUE(scratch.GuardsIntact());
  return run;
}

TEST(RelayoutInPlaceTest, SharedStagingMatchesTheCpu) {
  uint32_t seed = 1;
  int vector_runs = 0, byte_runs = 0;
  for (QuantType t : kTypes) {
    for (int32_t g : {8, 4, 16}) {
      for (int64_t rows : {8, 13, 1, 3, 16, 35}) {
        for (int64_t nb : {1, 3, 8}) {
          for (bool forward : {true, false}) {
            for (size_t misalign : {size_t{0}, size_t{2}}) {
              if (misalign != 0 && g != 8) continue;
              const InPlaceRun run =
                  CheckInPlace(t, forward, rows, nb, g, kHostMaxShared, 4, misalign, 0, seed++);
              if (run.plan.grid == 0) continue;
              EXPECT_TRUE(run.plan.shared_stage);
              EXPECT_EQ(run.plan.vector, g % 8 == 0 && misalign == 0);
              (run.plan.vector ? vector_runs : byte_runs)++;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(vector_runs, 0);
  EXPECT_GT(byte_runs, 0);
}

TEST(RelayoutInPlaceTest, PaddedStagingMatchesTheCpu) {
  // Rows of a multiple of 16 bytes get a padded pitch: nb = 16 (Q8_0, Q4_0),
  // nb = 8 (Q4_1: 160 bytes = 10 units, even).
  uint32_t seed = 100;
  for (QuantType t : kTypes) {
    for (int64_t rows : {8, 19}) {
      for (bool forward : {true, false}) {
        const int64_t nb = t == QuantType::kQ4_1 ? 8 : 16;
        const InPlaceRun run =
            CheckInPlace(t, forward, rows, nb, 8, kHostMaxShared, 4, 0, 0, seed++);
        EXPECT_TRUE(run.plan.vector);
        EXPECT_GT(run.plan.shape.pitch, run.plan.shape.row_bytes);
      }
    }
  }
}

TEST(RelayoutInPlaceTest, GlobalScratchSlotsMatchTheCpu) {
  uint32_t seed = 200;
  int vector_runs = 0, byte_runs = 0;
  for (QuantType t : kTypes) {
    for (int32_t g : {8, 4}) {
      for (int64_t rows : {8, 13, 40, 43}) {
        for (int64_t nb : {1, 3, 8}) {
          for (bool forward : {true, false}) {
            for (size_t scratch_misalign : {size_t{0}, size_t{2}}) {
              if (scratch_misalign != 0 && g != 8) continue;
              // A max_shared below one group forces the scratch slots; 2 CTAs
              // stride over up to 5 groups.
              const InPlaceRun run =
                  CheckInPlace(t, forward, rows, nb, g, 16, 2, 0, scratch_misalign, seed++);
              EXPECT_FALSE(run.plan.shared_stage);
              EXPECT_EQ(run.plan.grid, rows / g >= 2 ? 2 : 1);
              EXPECT_EQ(run.plan.vector, g % 8 == 0 && scratch_misalign == 0);
              (run.plan.vector ? vector_runs : byte_runs)++;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(vector_runs, 0);
  EXPECT_GT(byte_runs, 0);
}

TEST(RelayoutInPlaceTest, FewerSlotsThanCtasUseOnlyTheSlotsGiven) {
  // Scratch for one slot (plus a stray byte) while 3 CTAs are asked for:
  // one CTA does every group, and the stray byte is untouched.
  const QuantType t = QuantType::kQ4_1;
  const int64_t rows = 27, nb = 3;
  const int64_t bytes = rows * nb * 20;
  const uint64_t slot = static_cast<uint64_t>(RelayoutGroupBytes(t, nb * 32, 8));
  for (bool forward : {true, false}) {
    const std::vector<uint8_t> input = RandomBytes(bytes, forward ? 7 : 8);
    Guarded data(bytes, 0);
    data.Set(input);
    Guarded scratch(slot + 1, 0, 0x77);
    ASSERT_TRUE(QuantRowGroupTransform(simt::HostLauncher{}, t, forward, data.data(), rows, nb * 32,
                                       8, scratch.data(), slot + 1, 64, 3));
    EXPECT_EQ(data.Bytes(), CpuTransform(t, forward, input, rows, nb, 8));
    EXPECT_EQ(scratch.data()[slot], 0x77);
    EXPECT_TRUE(data.GuardsIntact());
    EXPECT_TRUE(scratch.GuardsIntact());
  }
}

TEST(RelayoutInPlaceTest, RefusesAScratchWithoutASlot) {
  const QuantType t = QuantType::kQ8_0;
  const int64_t rows = 16, nb = 3;
  const std::vector<uint8_t> input = RandomBytes(rows * nb * 34, 9);
  Guarded data(input.size(), 0);
  data.Set(input);
  Guarded scratch(8 * nb * 34 - 2, 0);
  EXPECT_FALSE(QuantRowGroupTransform(simt::HostLauncher{}, t, true, data.data(), rows, nb * 32, 8,
                                      scratch.data(), 8 * nb * 34 - 2, 64, 4));
  EXPECT_FALSE(QuantRowGroupTransform(simt::HostLauncher{}, t, true, data.data(), rows, nb * 32, 8,
                                      nullptr, 0, 64, 4));
  EXPECT_FALSE(QuantRowGroupTransform(simt::HostLauncher{}, t, true, data.data(), rows, 100, 8,
                                      nullptr, 0, kHostMaxShared, 4));
  EXPECT_EQ(data.Bytes(), input);
}

TEST(RelayoutInPlaceTest, InverseOfForwardGivesBackTheOriginal) {
  uint32_t seed = 300;
  for (QuantType t : kTypes) {
    for (int32_t g : {8, 4}) {
      for (size_t max_shared : {kHostMaxShared, size_t{32}}) {
        const int64_t rows = 21, nb = 8;
        const std::vector<uint8_t> input = RandomBytes(rows * nb * FormatOf(t).block_bytes, seed++);
        Guarded data(input.size(), 0);
        data.Set(input);
        const uint64_t scratch_bytes = RelayoutScratchBytes(t, rows, nb * 32, g, max_shared, 2);
        Guarded scratch(scratch_bytes, 0);
        uint8_t* scratch_ptr = scratch_bytes > 0 ? scratch.data() : nullptr;
        ASSERT_TRUE(QuantRowGroupTransform(simt::HostLauncher{}, t, true, data.data(), rows,
                                           nb * 32, g, scratch_ptr, scratch_bytes, max_shared, 2));
        EXPECT_NE(data.Bytes(), input);
        ASSERT_TRUE(QuantRowGroupTransform(simt::HostLauncher{}, t, false, data.data(), rows,
                                           nb * 32, g, scratch_ptr, scratch_bytes, max_shared, 2));
        EXPECT_EQ(data.Bytes(), input) << Name(t) << " G=" << g << " max_shared=" << max_shared;
        EXPECT_TRUE(data.GuardsIntact());
        EXPECT_TRUE(scratch.GuardsIntact());
      }
    }
  }
}

// ---- Out of place ----

RelayoutPlan CheckCopy(QuantType t, bool forward, int64_t rows, int64_t nb, int32_t g,
                       size_t max_shared, size_t misalign, uint32_t seed) {
  SCOPED_TRACE(Case(t, forward, rows, nb, g) + " max_shared=" + std::to_string(max_shared) +
               " misalign=" + std::to_string(misalign));
  const int64_t bytes = rows * nb * FormatOf(t).block_bytes;
  const std::vector<uint8_t> input = RandomBytes(bytes, seed);
  Guarded src(bytes, 0);
  src.Set(input);
  Guarded dst(bytes, misalign);  // poisoned: every byte must be written
  const RelayoutPlan plan =
      PlanRelayoutCopy(t, rows, nb * 32, g,
                       RelayoutAligned16(src.data()) && RelayoutAligned16(dst.data()), max_shared);
  EXPECT_TRUE(QuantRowGroupTransformOutOfPlace(simt::HostLauncher{}, t, forward, src.data(),
                                               dst.data(), rows, nb * 32, g, max_shared));
  EXPECT_EQ(dst.Bytes(), CpuTransform(t, forward, input, rows, nb, g));
  EXPECT_EQ(src.Bytes(), input);
  EXPECT_TRUE(src.GuardsIntact());
  EXPECT_TRUE(dst.GuardsIntact());
  return plan;
}

TEST(RelayoutOutOfPlaceTest, MatchesTheCpuWholeGroups) {
  uint32_t seed = 400;
  for (QuantType t : kTypes) {
    for (int32_t g : {8, 4}) {
      for (int64_t rows : {8, 13, 1, 3}) {
        for (int64_t nb : {1, 3, 8}) {
          for (bool forward : {true, false}) {
            for (size_t misalign : {size_t{0}, size_t{2}}) {
              if (misalign != 0 && g != 8) continue;
              const RelayoutPlan plan =
                  CheckCopy(t, forward, rows, nb, g, kHostMaxShared, misalign, seed++);
              EXPECT_EQ(plan.shape.chunks, rows >= g ? 1 : 0);
              EXPECT_EQ(plan.vector, g % 8 == 0 && misalign == 0);
            }
          }
        }
      }
    }
  }
}

TEST(RelayoutOutOfPlaceTest, MatchesTheCpuInColumnChunks) {
  uint32_t seed = 500;
  for (QuantType t : kTypes) {
    const int32_t B = FormatOf(t).block_bytes;
    for (int32_t g : {8, 4}) {
      for (int64_t rows : {8, 21}) {
        for (bool forward : {true, false}) {
          // Vector path: 40 blocks (rows of 16-byte multiples) in chunks of
          // 16 (two of 16, one of 8), padded.
          const int64_t nb = 40;
          const size_t cb16 = static_cast<size_t>(g) * (16 * B + 16);
          RelayoutPlan plan = CheckCopy(t, forward, rows, nb, g, cb16, 0, seed++);
          EXPECT_EQ(plan.vector, g == 8);
          if (g == 8) {
            EXPECT_EQ(plan.shape.chunk_blocks, 16);
            EXPECT_EQ(plan.shape.chunks, 3);
          }
          // Byte path: rows not of 16-byte multiples (nb = 13) and a group
          // past max_shared: chunks of 5 blocks, the last of 3.
          const size_t cb5 = static_cast<size_t>(g) * 5 * B;
          plan = CheckCopy(t, forward, rows, 13, g, cb5, 0, seed++);
          EXPECT_FALSE(plan.vector);
          EXPECT_EQ(plan.shape.chunk_blocks, 5);
          EXPECT_EQ(plan.shape.chunks, 3);
        }
      }
    }
  }
}

TEST(RelayoutOutOfPlaceTest, ForwardCopyThenInverseInPlaceGivesBackTheOriginal) {
  for (QuantType t : kTypes) {
    const int64_t rows = 19, nb = 8;
    const std::vector<uint8_t> input = RandomBytes(rows * nb * FormatOf(t).block_bytes, 600);
    Guarded src(input.size(), 0);
    src.Set(input);
    Guarded dst(input.size(), 0);
    ASSERT_TRUE(QuantRowGroupTransformOutOfPlace(simt::HostLauncher{}, t, true, src.data(),
                                                 dst.data(), rows, nb * 32, 8, kHostMaxShared));
    ASSERT_TRUE(QuantRowGroupTransform(simt::HostLauncher{}, t, false, dst.data(), rows, nb * 32, 8,
                                       nullptr, 0, kHostMaxShared, 4));
    EXPECT_EQ(dst.Bytes(), input) << Name(t);
  }
}

}  // namespace
}  // namespace relayout::cuda
