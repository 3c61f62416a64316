#include "engine/base/env.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace relayout {
namespace {

TEST(EnvTest, InMemoryFileReadsExactRanges) {
  InMemoryEnv env;
  env.AddFile("dir/a.bin", "0123456789");
  Result<std::unique_ptr<RandomAccessFile>> f = env.OpenForRead("dir/a.bin");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->size(), 10u);
  std::string buf(4, '\0');
  ASSERT_TRUE((*f)->ReadAt(3, std::as_writable_bytes(std::span(buf))).ok());
  EXPECT_EQ(buf, "3456");
  EXPECT_TRUE(env.IsDirectory("dir"));
  EXPECT_FALSE(env.IsDirectory("di"));
  EXPECT_EQ(*env.ListDirectory("dir"), std::vector<std::string>{"a.bin"});
}

TEST(EnvTest, ReadPastEndIsDataLossNamingTheFile) {
  InMemoryEnv env;
  env.AddFile("a.bin", "0123456789");
  auto f = *env.OpenForRead("a.bin");
  std::string buf(4, '\0');
  Status s = f->ReadAt(8, std::as_writable_bytes(std::span(buf)));
  EXPECT_TRUE(s.IsDataLoss());
  EXPECT_EQ(s.message(), "a.bin: read of 4 bytes at offset 8 passes end of file (10 bytes)");
  s = f->ReadAt(UINT64_MAX, std::as_writable_bytes(std::span(buf)));
  EXPECT_TRUE(s.IsDataLoss());
}

TEST(EnvTest, InjectedReadErrorFailsReadsReachingIt) {
  InMemoryEnv env;
  env.AddFile("a.bin", std::string(100, 'x'));
  env.InjectReadError("a.bin", 50);
  auto f = *env.OpenForRead("a.bin");
  std::string buf(10, '\0');
  EXPECT_TRUE(f->ReadAt(0, std::as_writable_bytes(std::span(buf))).ok());
  Status s = f->ReadAt(45, std::as_writable_bytes(std::span(buf)));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("injected read error"), std::string::npos);
}

TEST(EnvTest, PosixFileReadsAndReportsMissingFiles) {
  const std::string path = ::testing::TempDir() + "/env_test.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out << "hello world";
  }
  Env* env = Env::Default();
  auto f = env->OpenForRead(path);
  ASSERT_TRUE(f.ok()) << f.status();
  std::string buf(5, '\0');
  ASSERT_TRUE((*f)->ReadAt(6, std::as_writable_bytes(std::span(buf))).ok());
  EXPECT_EQ(buf, "world");
  EXPECT_TRUE((*f)->ReadAt(7, std::as_writable_bytes(std::span(buf))).IsDataLoss());
  EXPECT_TRUE(env->OpenForRead(path + ".missing").status().IsNotFound());
  EXPECT_EQ(env->OpenForRead(::testing::TempDir()).status().code(), StatusCode::kInvalidArgument);
  Result<std::string> small = env->ReadSmallFile(path, 5);
  EXPECT_EQ(small.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*env->ReadSmallFile(path, 100), "hello world");
  std::remove(path.c_str());
}

TEST(EnvTest, PathHelpers) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("a", "/abs"), "/abs");
  EXPECT_EQ(DirName("a/b/c.json"), "a/b");
  EXPECT_EQ(DirName("c.json"), ".");
  EXPECT_EQ(BaseName("a/b/c.json"), "c.json");
}

}  // namespace
}  // namespace relayout
