#include "engine/checkpoint/checkpoint.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace relayout {
namespace {

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// An empty or truncated download named .gguf is reported in GGUF's terms,
// not as a safetensors header.
TEST(CheckpointTest, EmptyGgufFileIsReportedAsGguf) {
  for (const std::string& bytes : {std::string(), std::string("GG")}) {
    const std::string path = WriteFile("empty_checkpoint_test.gguf", bytes);
    Result<Checkpoint> c = OpenCheckpoint(Env::Default(), path);
    ASSERT_FALSE(c.ok());
    const std::string message = c.status().message();
    EXPECT_EQ(message.find("safetensors"), std::string::npos) << message;
    EXPECT_EQ(message.find("8-byte header length"), std::string::npos) << message;
    EXPECT_NE(message.find("magic"), std::string::npos) << message;
  }
}

TEST(CheckpointTest, EmptyFileWithoutGgufNameIsReadAsSafetensors) {
  const std::string path = WriteFile("empty_checkpoint_test.safetensors", "");
  Result<Checkpoint> c = OpenCheckpoint(Env::Default(), path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("8-byte header length"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace relayout
