// Synthetic checkpoints for the integration tests, made with
// tools/gen_checkpoint.py once per build directory (under build/generated).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace relayout::testing {

// Generates a checkpoint once per build directory with tools/gen_checkpoint.py,
// then copies `tokenizer` (if any) beside it. CTest runs tests in parallel
// processes: a lock file makes the others wait. "" without .venv.
inline std::string GeneratedCheckpoint(const std::string& name,
                                       const std::vector<std::string>& args,
                                       const std::string& tokenizer = "") {
  namespace fs = std::filesystem;
  const std::string out = std::string(RELAYOUT_GENERATED_DIR) + "/" + name;
  const std::string done = out + ".done";
  if (fs::exists(done)) return out;
  if (!fs::exists(RELAYOUT_PYTHON)) return "";
  fs::create_directories(RELAYOUT_GENERATED_DIR);
  const int lock_fd = ::open((out + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) return "";
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};
  if (fs::exists(done)) return out;
  std::vector<std::string> argv = {
      RELAYOUT_PYTHON, std::string(RELAYOUT_SOURCE_DIR) + "/tools/gen_checkpoint.py", "--out", out};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r = RunProcess(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return "";
  if (!tokenizer.empty()) {
    fs::copy_file(tokenizer, out + "/" + fs::path(tokenizer).filename().string(),
                  fs::copy_options::overwrite_existing);
  }
  std::ofstream(done) << "ok\n";
  return out;
}

}  // namespace relayout::testing
