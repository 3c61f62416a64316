// `relayoutd serve`: the gRPC daemon (built with RELAYOUT_BUILD_SERVER).
#pragma once

#include <ostream>
#include <span>

#include "server/cli/command.h"

namespace relayout::server {

// relayoutd serve [--model PATH] [--device auto|cpu|cuda] [--layout auto|native|NAME]
//   [--budget SIZE] [--listen ADDR] [--metrics-listen ADDR] [limits...]
//   [--tls-cert F --tls-key F [--tls-client-ca F]] [--auth-token-file F]
//   [--log-format text|json] [--drain-grace SECONDS]
// Every flag may also come from RELAYOUTD_<FLAG>. Exit codes: 0 after a
// drain, 1 when start-up failed, 2 for bad flags or files.
int RunServe(std::span<char* const> args, std::ostream& out, std::ostream& err);

// The commands only the server build has, in the order `help` lists them.
std::span<const cli::Command> ServerCommands();

}  // namespace relayout::server
