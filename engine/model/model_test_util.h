// Test helpers: load a shared model through the real start-up path
// (PrepareLoad, ExecuteConversion) into a LlamaModel, and read the
// reference files of /work/shared/reference.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/model/llama_model.h"
#include "engine/model/model_placement.h"
#include "engine/tokenizer/checkpoint_tokenizer.h"

namespace relayout::testing {

inline std::string SharedDir() { return RELAYOUT_SHARED_DIR; }
inline std::string ModelPath(const std::string& model, const std::string& file) {
  return SharedDir() + "/models/" + model + "/" + file;
}
inline std::string ReferencePath(const std::string& model, const std::string& file) {
  return SharedDir() + "/reference/" + model + "/" + file;
}

struct LoadedModel {
  std::unique_ptr<MemoryLedger> ledger = std::make_unique<MemoryLedger>();
  std::unique_ptr<Device> device;  // the plugin device, or null: the CPU
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<LlamaModel> model;  // declared after device: freed before it
  std::string layout_summary;         // the target layouts, for failure messages
};

// `device`: a --device spec ("cpu", "hostref").
inline Result<LoadedModel> LoadModel(const std::string& path, const std::string& layout,
                                     kernels::ThreadPool* pool, const std::string& device = "cpu") {
  LoadOptions options;
  options.model_path = path;
  options.layout = layout;
  options.device = device;
  ASSIGN_OR_RETURN(PreparedLoad load, PrepareLoad(Env::Default(), options));
  LoadedModel out;
  ASSIGN_OR_RETURN(out.tokenizer, LoadCheckpointTokenizer(Env::Default(), load.checkpoint));
  ASSIGN_OR_RETURN(PlacedWeights weights,
                   ConvertForLoad(load, out.ledger.get(), nullptr, nullptr, nullptr));
  for (const LoadedTensor& t : weights.host.tensors) {
    if (!t.layout.IsCommon()) out.layout_summary += t.name + ":" + t.layout.Name() + " ";
  }
  for (const DeviceTensor& t : weights.on_device.tensors) {
    if (!t.layout.IsCommon()) out.layout_summary += t.name + ":" + t.layout.Name() + " ";
  }
  ASSIGN_OR_RETURN(out.model, CreateModel(load, std::move(weights), pool, out.ledger.get()));
  out.device = std::move(load.device);
  return out;
}

// The input token of each position, from a trace_*.txt file ("in=N").
inline std::vector<int32_t> TraceInputs(const std::string& path) {
  std::ifstream in(path);
  std::vector<int32_t> ids;
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find(" in=");
    if (line.rfind("TRACE", 0) != 0 || at == std::string::npos) continue;
    ids.push_back(std::stoi(line.substr(at + 4)));
  }
  return ids;
}

inline std::vector<float> ReadFloats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace relayout::testing
