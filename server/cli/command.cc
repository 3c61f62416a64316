#include "server/cli/command.h"

#include <array>
#include <string>

namespace relayout::cli {

std::span<const Command> EngineCommands() {
  static constexpr std::array<Command, 1> kCommands = {{
      {"inspect", "print a checkpoint's format, config and tensors", &RunInspect},
  }};
  return kCommands;
}

int ReportError(std::ostream& err, const Status& status) {
  std::string line = status.message();
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  err << "relayoutd: " << line << "\n";
  return status.code() == StatusCode::kInternal ? 1 : 2;
}

}  // namespace relayout::cli
