// ApiDeps: what each API front (relayout.v1 Generation, KServe v2, the
// OpenAI-compatible HTTP API) reads to admit, limit, count and drain its
// requests, so that all of them share one server state, token, metrics,
// in-flight ledger and set of limits.
#pragma once

#include "engine/serving/serving_limits.h"
#include "server/observe/server_metrics.h"
#include "server/observe/server_state.h"
#include "server/rpc/bearer_token_auth.h"
#include "server/rpc/inflight_calls.h"

namespace relayout::server {

// Every pointer is not owned and must outlive the server the front runs on.
struct ApiDeps {
  ServerState* state = nullptr;
  ServerMetrics* metrics = nullptr;
  const BearerTokenAuth* auth = nullptr;
  InflightCalls* inflight = nullptr;
  ServingLimits limits;
};

}  // namespace relayout::server
