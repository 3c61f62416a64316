// `relayoutd relayout`: the client of relayout.v1.Admin/Relayout, which
// converts the weights of a running server into other layouts while it
// serves (built with RELAYOUT_BUILD_SERVER: it needs gRPC).
#pragma once

#include <ostream>
#include <span>

namespace relayout::server {

// relayoutd relayout --to LAYOUT [--budget SIZE] [--server HOST:PORT]
//   [--auth-token-file F] [--tls-ca F]
// Streams the relayout's progress to `err` (a line per tenth of the bytes)
// and prints the report's summary to `out`. SIGINT cancels the call, and
// so the relayout (the tensors already moved keep their layout). Exit
// codes: 0 when the relayout finished; 130 when cancelled; 1 for INTERNAL;
// 2 for bad flags or files and every other status (the message says which).
int RunRelayoutClient(std::span<char* const> args, std::ostream& out, std::ostream& err);

}  // namespace relayout::server
