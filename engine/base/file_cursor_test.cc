#include "engine/base/file_cursor.h"

#include <gtest/gtest.h>

#include <string>

namespace relayout {
namespace {

class FileCursorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 100; ++i) contents_.push_back(static_cast<char>(i));
    env_.AddFile("f", contents_);
    auto file = env_.OpenForRead("f");
    ASSERT_TRUE(file.ok());
    file_ = std::move(*file);
  }
  InMemoryEnv env_;
  std::string contents_;
  std::unique_ptr<RandomAccessFile> file_;
};

TEST_F(FileCursorTest, ReadsAcrossChunkBoundariesAndStraightIntoLargeBuffers) {
  FileCursor cur(file_.get(), /*chunk_bytes=*/7);
  std::string got;
  for (size_t n : {3, 5, 7, 1, 20, 0, 64}) {  // sums to 100
    std::string part(n, '\0');
    ASSERT_TRUE(cur.Read(part.data(), n).ok()) << n;
    got += part;
  }
  EXPECT_EQ(got, contents_);
  EXPECT_EQ(cur.remaining(), 0u);
  EXPECT_EQ(cur.position(), 100u);
}

TEST_F(FileCursorTest, ReadPastEndIsOutOfRangeAndReadsNothing) {
  FileCursor cur(file_.get(), 16);
  ASSERT_TRUE(cur.Skip(95).ok());
  char buf[8];
  Status s = cur.Read(buf, 6);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("read of 6 bytes at offset 95 passes end of file (5 left)"),
            std::string::npos)
      << s;
  EXPECT_EQ(cur.position(), 95u);
  EXPECT_EQ(cur.Skip(6).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(cur.Read(buf, 5).ok());
  EXPECT_EQ(buf[4], 99);
}

TEST_F(FileCursorTest, IoErrorIsPassedOnAndCursorRecovers) {
  env_.InjectReadError("f", 50);
  auto file = env_.OpenForRead("f");
  ASSERT_TRUE(file.ok());
  FileCursor cur(file->get(), 16);
  char buf[40];
  ASSERT_TRUE(cur.Read(buf, 40).ok());
  Status s = cur.Read(buf, 20);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("injected"), std::string::npos);
}

}  // namespace
}  // namespace relayout
