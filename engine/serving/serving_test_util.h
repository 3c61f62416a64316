// Test helper: a ServingEngine over a shared model, loaded through the real
// start-up path (PrepareLoad, ExecuteConversion) on the CPU.
#pragma once

#include <memory>
#include <string>

#include "engine/model/model_test_util.h"
#include "engine/serving/serving_engine.h"

namespace relayout::testing {

// `layout`: the --layout value ("auto", "native", a name). Two compute
// threads unless options say otherwise.
inline Result<std::unique_ptr<ServingEngine>> LoadServingEngine(const std::string& path,
                                                                const std::string& layout,
                                                                ServingEngineOptions options = {}) {
  LoadOptions load_options;
  load_options.model_path = path;
  load_options.layout = layout;
  ASSIGN_OR_RETURN(PreparedLoad load, PrepareLoad(Env::Default(), load_options));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                   LoadCheckpointTokenizer(Env::Default(), load.checkpoint));
  auto ledger = std::make_unique<MemoryLedger>();
  ASSIGN_OR_RETURN(LoadedWeights weights,
                   ExecuteConversion(*load.checkpoint.source, load.plan, ledger.get(), nullptr,
                                     nullptr, nullptr));
  if (options.threads == 0) options.threads = 2;
  return ServingEngine::Create(load.checkpoint.config, load.checkpoint.naming, std::move(weights),
                               std::move(ledger), std::move(tokenizer), std::move(options));
}

}  // namespace relayout::testing
