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

// Runs argv[0] with argv (no shell), stdin from /dev/null.
ProcessResult RunProcess(const std::vector<std::string>& argv);

// Number of '\n'-terminated lines in text (a final unterminated line counts).
int CountLines(const std::string& text);

}  // namespace relayout::testing
