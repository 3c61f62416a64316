// relayoutd: one binary, one subcommand per job.
#include <cstring>
#include <iostream>
#include <span>
#include <string_view>
#include <vector>

#include "server/cli/command.h"
#if RELAYOUT_WITH_SERVER
#include "server/daemon/serve_command.h"
#endif

namespace {

// The engine's commands, then the server's when it is built.
std::vector<relayout::cli::Command> AllCommands() {
  std::vector<relayout::cli::Command> all(relayout::cli::EngineCommands().begin(),
                                          relayout::cli::EngineCommands().end());
#if RELAYOUT_WITH_SERVER
  all.insert(all.end(), relayout::server::ServerCommands().begin(),
             relayout::server::ServerCommands().end());
#endif
  return all;
}

void PrintHelp(std::ostream& os) {
  os << "relayoutd: serves Llama-family models, converting weights in place to the\n"
        "layout the device's fastest kernels want, under a memory budget.\n\n"
        "usage: relayoutd <command> [flags]    (relayoutd <command> --help for flags)\n\n"
        "commands:\n";
  for (const relayout::cli::Command& c : AllCommands()) {
    os << "  " << c.name << std::string(12 - std::min<size_t>(c.name.size(), 11), ' ') << c.summary
       << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0 ||
      std::strcmp(argv[1], "-h") == 0) {
    PrintHelp(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string_view name = argv[1];
  const std::span<char* const> args(argv + 2, static_cast<size_t>(argc - 2));
  for (const relayout::cli::Command& c : AllCommands()) {
    if (c.name == name) return c.run(args, std::cout, std::cerr);
  }
  std::cerr << "relayoutd: unknown command \"" << name << "\" (relayoutd help lists them)\n";
  return 2;
}
