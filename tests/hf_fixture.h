// SmolLM2-135M-Instruct as a Hugging Face folder (sharded BF16 safetensors,
// tokenizer.json, tokenizer_config.json, generation_config.json), made from
// its GGUF by tools/make_hf_fixture.py once per build directory.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/subprocess.h"

namespace relayout::testing {

// $RELAYOUT_SMOLLM2_GGUF, else the file tools/fetch_default_model.sh puts in
// ~/.cache; "" when neither exists.
inline std::string SmolLm2Gguf() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("RELAYOUT_SMOLLM2_GGUF"); env != nullptr && fs::exists(env)) {
    return env;
  }
  const char* home = std::getenv("HOME");
  const std::string cached = std::string(home == nullptr ? "" : home) +
                             "/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  return fs::exists(cached) ? cached : "";
}

// The folder, made once per build directory (CTest runs tests in parallel
// processes: a lock makes the others wait for the first). "" without the
// GGUF or the .venv.
inline std::string SmolLm2HfFolder() {
  namespace fs = std::filesystem;
  const std::string out = std::string(RELAYOUT_GENERATED_DIR) + "/smollm2_hf";
  const std::string done = out + ".done";
  if (fs::exists(done)) return out;
  const std::string gguf = SmolLm2Gguf();
  if (gguf.empty() || !fs::exists(RELAYOUT_PYTHON)) return "";
  fs::create_directories(RELAYOUT_GENERATED_DIR);
  const int lock_fd = ::open((out + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) return "";
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};
  if (fs::exists(done)) return out;
  const ProcessResult r = RunProcess(
      {RELAYOUT_PYTHON, std::string(RELAYOUT_SOURCE_DIR) + "/tools/make_hf_fixture.py", out, gguf});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return "";
  std::ofstream(done) << "ok\n";
  return out;
}

}  // namespace relayout::testing
