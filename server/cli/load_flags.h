// The flags every command that loads a model shares (plan, convert, generate,
// serve), registered in one place so they mean the same everywhere.
#pragma once

#include <string>

#include "engine/conversion/model_loader.h"
#include "server/cli/flags.h"

namespace relayout::cli {

struct LoadFlags {
  LoadOptions options;
  std::string memory_limit;  // parsed into options.memory_limit by Finish()
  // `serve` falls back to the default model when --model is not given.
  bool require_model = true;

  void Register(FlagSet* flags);
  // Parses what Register could not type-check. InvalidArgument naming the flag.
  Status Finish();
};

}  // namespace relayout::cli
