// Runs a program to completion and captures its output, for end-to-end tests
// of the relayoutd binary.
#pragma once

#include <string>
#include <vector>

namespace relayout::testing {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal number when killed by a signal
  std::string out;
  std::string err;
};

struct ProcessOptions {
  // When > 0: send `signal` to the process this many milliseconds after start.
  int signal_after_ms = 0;
  int signal = 0;
};

// Runs argv[0] with argv (no shell), stdin from /dev/null.
ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Number of '\n'-terminated lines in text (a final unterminated line counts).
int CountLines(const std::string& text);

}  // namespace relayout::testing
