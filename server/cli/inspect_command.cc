// relayoutd inspect --model PATH [--json]
#include "server/cli/command.h"
#include "server/cli/flags.h"

namespace relayout::cli {

int RunInspect(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  std::string model;
  bool json = false;
  bool help = false;
  FlagSet flags("inspect");
  flags.AddString("model", &model, "checkpoint: a safetensors file, a checkpoint directory or a GGUF file");
  flags.AddBool("json", &json, "print one JSON document instead of text");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << flags.Usage();
    return 0;
  }
  if (model.empty()) return ReportError(err, Status::InvalidArgument("inspect", "--model is required"));
  return ReportError(err, Status::Unimplemented("inspect", "not yet"));
}

}  // namespace relayout::cli
