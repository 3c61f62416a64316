#include "kernels/cpu/layout/transpose.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>

// Counts this thread's calls of the global operator new, so tests can check
// that the in-place transposes allocate nothing of their own.
namespace {
thread_local int64_t g_news = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++g_news;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace relayout::kernels {
namespace {

using Bytes = std::vector<std::byte>;

Bytes RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

// The definition: dst(j, i) = src(i, j), one element at a time.
Bytes NaiveTranspose(const Bytes& src, int64_t rows, int64_t cols, size_t e) {
  Bytes dst(src.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      std::memcpy(&dst[(j * rows + i) * e], &src[(i * cols + j) * e], e);
    }
  }
  return dst;
}

// Runs one in-place strategy with a heap scratch of exactly its declared size
// (so the sanitized build catches any overrun) and checks it allocated nothing.
enum class Strategy { kCycle, kCkg };

::testing::AssertionResult RunInPlace(Strategy strategy, Bytes& data, int64_t rows, int64_t cols,
                                      size_t e) {
  const uint64_t need = strategy == Strategy::kCycle ? CycleFollowingScratchBytes(rows, cols)
                                                     : CkgScratchBytes(rows, cols, e);
  Bytes scratch(need);
  const int64_t news_before = g_news;
  const bool ok = strategy == Strategy::kCycle
                      ? TransposeCycleFollowing(data.data(), rows, cols, e, scratch)
                      : TransposeCkgInPlace(data.data(), rows, cols, e, scratch);
  if (g_news != news_before) return ::testing::AssertionFailure() << "allocated";
  if (!ok) return ::testing::AssertionFailure() << "returned false";
  return ::testing::AssertionSuccess();
}

// Checks every strategy against the naive transpose for one shape.
void CheckShape(int64_t rows, int64_t cols, size_t e, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " elem " << e);
  const Bytes src = RandomBytes(static_cast<size_t>(rows * cols) * e, seed);
  const Bytes want = NaiveTranspose(src, rows, cols, e);

  Bytes oop(src.size());
  ASSERT_TRUE(TransposeOutOfPlace(src.data(), oop.data(), rows, cols, e));
  ASSERT_TRUE(oop == want) << "out of place";

  Bytes cyc = src;
  ASSERT_TRUE(RunInPlace(Strategy::kCycle, cyc, rows, cols, e));
  ASSERT_TRUE(cyc == want) << "cycle following";

  Bytes ckg = src;
  ASSERT_TRUE(RunInPlace(Strategy::kCkg, ckg, rows, cols, e));
  ASSERT_TRUE(ckg == want) << "ckg";
}

constexpr size_t kElemSizes[] = {1, 2, 3, 4, 8, 16, 18};

TEST(TransposeTest, AllStrategiesMatchNaiveForEveryShapeUpTo40x40) {
  for (size_t e : kElemSizes) {
    for (int64_t rows = 1; rows <= 40; ++rows) {
      for (int64_t cols = 1; cols <= 40; ++cols) {
        CheckShape(rows, cols, e, static_cast<uint32_t>(rows * 1000 + cols));
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

TEST(TransposeTest, AllStrategiesMatchNaiveOnModelShapes) {
  struct Shape {
    int64_t rows, cols;
  };
  // Llama-ish projections (scaled down where the naive check would be slow),
  // coprime, power-of-two and one-sided shapes.
  const Shape shapes[] = {{1000, 37}, {37, 1000}, {576, 1536}, {1536, 576}, {688, 256},
                          {256, 688}, {4096, 11}, {11, 4096},  {512, 512},  {1, 777},
                          {777, 1},   {96, 4104}, {127, 129},  {2048, 64}};
  for (const Shape& s : shapes) {
    for (size_t e : {1, 2, 4, 8}) {
      CheckShape(s.rows, s.cols, e, 7);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(TransposeTest, AllStrategiesMatchNaiveOnRandomShapes) {
  std::mt19937 rng(20140215);
  std::uniform_int_distribution<int64_t> dim(1, 700);
  for (int iter = 0; iter < 24; ++iter) {
    const int64_t rows = dim(rng);
    const int64_t cols = dim(rng);
    const size_t e = kElemSizes[static_cast<size_t>(iter) % std::size(kElemSizes)];
    CheckShape(rows, cols, e, static_cast<uint32_t>(iter));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(TransposeTest, InPlaceRoundTripRestoresTheOriginal) {
  const struct {
    int64_t rows, cols;
  } shapes[] = {{4096, 688}, {11, 4096}, {384, 1024}, {999, 1001}};
  for (const auto& s : shapes) {
    for (size_t e : {2, 4}) {
      SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << " elem " << e);
      const Bytes orig = RandomBytes(static_cast<size_t>(s.rows * s.cols) * e, 3);
      Bytes data = orig;
      ASSERT_TRUE(RunInPlace(Strategy::kCkg, data, s.rows, s.cols, e));
      ASSERT_FALSE(data == orig);
      ASSERT_TRUE(RunInPlace(Strategy::kCkg, data, s.cols, s.rows, e));
      ASSERT_TRUE(data == orig) << "ckg round trip";
      ASSERT_TRUE(RunInPlace(Strategy::kCycle, data, s.rows, s.cols, e));
      ASSERT_TRUE(RunInPlace(Strategy::kCycle, data, s.cols, s.rows, e));
      ASSERT_TRUE(data == orig) << "cycle round trip";
    }
  }
}

TEST(TransposeTest, ScratchFormulasAreExact) {
  EXPECT_EQ(TransposeOutOfPlaceScratchBytes(4096, 4096, 4), 64u << 20);
  EXPECT_EQ(TransposeOutOfPlaceScratchBytes(0, 5, 4), 0u);
  EXPECT_EQ(CycleFollowingScratchBytes(3, 3), 2u);
  EXPECT_EQ(CycleFollowingScratchBytes(4, 2), 1u);
  EXPECT_EQ(CycleFollowingScratchBytes(4096, 4096), 2u << 20);
  // max(cols, rows * buffers * strip columns) * elem, strip = 64 bytes of
  // columns, two strip buffers unless one strip covers the matrix.
  EXPECT_EQ(CkgScratchBytes(4096, 4096, 4), 4096u * 2 * 16 * 4);
  EXPECT_EQ(CkgScratchBytes(11008, 4096, 2), 11008u * 2 * 32 * 2);
  EXPECT_EQ(CkgScratchBytes(3, 1000, 8), 1000u * 8);  // the row buffer dominates
  EXPECT_EQ(CkgScratchBytes(40, 5, 1), 40u * 5);      // one strip: the whole matrix
  EXPECT_EQ(CkgScratchBytes(40, 17, 4), 40u * 2 * 16 * 4);
  EXPECT_EQ(CkgScratchBytes(40, 16, 4), 40u * 16 * 4);
  EXPECT_EQ(CkgScratchBytes(10, 10, 100), 10u * 2 * 1 * 100);  // one column per strip
  EXPECT_EQ(CkgScratchBytes(1, 4096, 4), 0u);
  EXPECT_EQ(CkgScratchBytes(4096, 1, 4), 0u);
  EXPECT_EQ(CkgScratchBytes(0, 0, 4), 0u);
}

TEST(TransposeTest, InvalidArgumentsAreUnsatisfiableOrRejected) {
  EXPECT_EQ(TransposeOutOfPlaceScratchBytes(-1, 5, 4), kTransposeScratchUnsatisfiable);
  EXPECT_EQ(TransposeOutOfPlaceScratchBytes(5, 5, 0), kTransposeScratchUnsatisfiable);
  EXPECT_EQ(TransposeOutOfPlaceScratchBytes(INT64_MAX, INT64_MAX, 1),
            kTransposeScratchUnsatisfiable);
  EXPECT_EQ(CycleFollowingScratchBytes(5, -1), kTransposeScratchUnsatisfiable);
  EXPECT_EQ(CkgScratchBytes(INT64_MAX, 4, 1), kTransposeScratchUnsatisfiable);
  EXPECT_EQ(CkgScratchBytes(3, 3, 0), kTransposeScratchUnsatisfiable);

  std::byte buf[16] = {};
  EXPECT_FALSE(TransposeOutOfPlace(buf, buf + 8, -2, 4, 1));
  EXPECT_FALSE(TransposeCkgInPlace(buf, 4, 4, 0, {}));
  EXPECT_FALSE(TransposeCycleFollowing(buf, INT64_MAX, 3, 1, {}));
}

TEST(TransposeTest, ScratchOneByteShortIsRejectedAndDataUntouched) {
  const int64_t rows = 30;
  const int64_t cols = 20;
  const Bytes orig = RandomBytes(rows * cols * 4, 11);
  Bytes data = orig;
  Bytes scratch(CkgScratchBytes(rows, cols, 4) - 1);
  EXPECT_FALSE(TransposeCkgInPlace(data.data(), rows, cols, 4, scratch));
  EXPECT_TRUE(data == orig);
  Bytes bitmap(CycleFollowingScratchBytes(rows, cols) - 1);
  EXPECT_FALSE(TransposeCycleFollowing(data.data(), rows, cols, 4, bitmap));
  EXPECT_TRUE(data == orig);
}

TEST(TransposeTest, CkgTouchesNoScratchBeyondItsDeclaredSize) {
  const int64_t rows = 97;
  const int64_t cols = 60;
  const uint64_t need = CkgScratchBytes(rows, cols, 2);
  // Guard bytes after the declared scratch must keep their value.
  Bytes scratch(need + 64, std::byte{0x5a});
  Bytes data = RandomBytes(rows * cols * 2, 5);
  ASSERT_TRUE(TransposeCkgInPlace(data.data(), rows, cols, 2, std::span(scratch).first(need)));
  for (size_t i = need; i < scratch.size(); ++i) ASSERT_EQ(scratch[i], std::byte{0x5a}) << i;
}

TEST(TransposeTest, EmptyAndVectorShapesSucceedWithoutScratch) {
  std::byte one[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  EXPECT_TRUE(TransposeCkgInPlace(one, 1, 4, 1, {}));
  EXPECT_TRUE(TransposeCkgInPlace(one, 0, 9, 1, {}));
  EXPECT_EQ(one[3], std::byte{4});
  EXPECT_TRUE(TransposeOutOfPlace(nullptr, nullptr, 0, 7, 4));
}

}  // namespace
}  // namespace relayout::kernels
