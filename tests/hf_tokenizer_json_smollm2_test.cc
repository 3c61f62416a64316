// The tokenizer.json loader on a real-size file: SmolLM2's vocabulary and
// merges, exported from its GGUF as the `tokenizers` package writes
// tokenizer.json (tools/export_hf_tokenizer_json.py, into the build
// directory: the file is ~2 MB and not committed), must encode the reference
// texts of tests/data/smollm2_tokenizer_vectors.json to the same ids.
// Needs RELAYOUT_SMOLLM2_GGUF and the .venv of tools/setup.sh; skips without.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/tokenizer_vectors_test_util.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;

// Exports the file once per build directory; CTest runs tests in parallel
// processes, so a lock makes the others wait for the first.
std::string ExportTokenizerJson(const std::string& gguf) {
  const std::string dir = RELAYOUT_GENERATED_DIR;
  const std::string out = dir + "/smollm2_tokenizer.json";
  if (fs::exists(out)) return out;
  fs::create_directories(dir);
  const int lock_fd = ::open((out + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) return "";
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};
  if (fs::exists(out)) return out;
  const testing::ProcessResult r = testing::RunProcess(
      {RELAYOUT_PYTHON, std::string(RELAYOUT_SOURCE_DIR) + "/tools/export_hf_tokenizer_json.py",
       gguf, out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? out : "";
}

TEST(HfTokenizerJsonSmolLm2Test, EncodingsEqualReferenceVectors) {
  const char* gguf = std::getenv("RELAYOUT_SMOLLM2_GGUF");
  if (gguf == nullptr || !fs::exists(gguf)) GTEST_SKIP() << "RELAYOUT_SMOLLM2_GGUF is not set";
  if (!fs::exists(RELAYOUT_PYTHON)) GTEST_SKIP() << "no " << RELAYOUT_PYTHON;
  const std::string path = ExportTokenizerJson(gguf);
  ASSERT_FALSE(path.empty());
  Result<std::unique_ptr<Tokenizer>> tok = LoadHfTokenizerJson(Env::Default(), path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 49152);
  EXPECT_FALSE((*tok)->add_bos());
  // <|im_end|> and <|endoftext|> end generation, as the GGUF loader finds too.
  EXPECT_TRUE((*tok)->IsEndOfGeneration(0));
  EXPECT_TRUE((*tok)->IsEndOfGeneration(2));
  EXPECT_GE(testing::ExpectMatchesVectors(**tok, testing::SmolLm2VectorsPath()), 600);
}

}  // namespace
}  // namespace relayout
