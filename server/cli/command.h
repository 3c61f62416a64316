// The subcommands of the relayoutd binary that need no gRPC.
//
// Each command parses its own flags, writes its result to `out` and a single
// error line to `err`, and returns the process exit code: 0 on success, 2 on
// invalid input or arguments (the error line says what and where), 1 on an
// internal failure.
#pragma once

#include <ostream>
#include <span>
#include <string_view>

#include "engine/base/status.h"

namespace relayout::cli {

using CommandFn = int (*)(std::span<char* const> args, std::ostream& out, std::ostream& err);

struct Command {
  std::string_view name;
  std::string_view summary;
  CommandFn run;
};

// The engine-only commands (inspect, ...), in the order `help` lists them.
std::span<const Command> EngineCommands();

int RunInspect(std::span<char* const> args, std::ostream& out, std::ostream& err);
int RunPlan(std::span<char* const> args, std::ostream& out, std::ostream& err);
int RunConvert(std::span<char* const> args, std::ostream& out, std::ostream& err);
int RunGenerate(std::span<char* const> args, std::ostream& out, std::ostream& err);
int RunBench(std::span<char* const> args, std::ostream& out, std::ostream& err);

// Writes "relayoutd <command>: <message>" as one line (newlines in the message
// become spaces) and returns the exit code for the status: 130 for
// kCancelled (interrupted, as a shell reports SIGINT), 1 for kInternal, else 2.
int ReportError(std::ostream& err, const Status& status);

}  // namespace relayout::cli
