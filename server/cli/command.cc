#include "server/cli/command.h"

#include <array>
#include <string>

namespace relayout::cli {

std::span<const Command> EngineCommands() {
  static constexpr std::array<Command, 5> kCommands = {{
      {"inspect", "print a checkpoint's format, config and tensors", &RunInspect},
      {"plan", "print the layout, strategy and order of each tensor's conversion, and the peak",
       &RunPlan},
      {"convert", "load and convert a checkpoint under the budget; print the relayout report",
       &RunConvert},
      {"generate", "load a checkpoint and continue a prompt on the CPU; text on stdout",
       &RunGenerate},
      {"bench",
       "prefill and decode tokens/s as llama-bench measures them, with the decode roofline",
       &RunBench},
  }};
  return kCommands;
}

int ReportError(std::ostream& err, const Status& status) {
  std::string line = status.message();
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  err << "relayoutd: " << line << "\n";
  if (status.code() == StatusCode::kCancelled) return 130;  // as a shell reports SIGINT
  return status.code() == StatusCode::kInternal ? 1 : 2;
}

}  // namespace relayout::cli
