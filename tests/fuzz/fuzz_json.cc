// libFuzzer target: arbitrary bytes as JSON (the bodies of the OpenAI API,
// KServe's sampling_parameters, tokenizer and config files). ParseJson must
// either fail with a Status or give a value within the depth limit; no
// crash, leak or sanitizer report.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/text/json.h"

namespace {

int Depth(const relayout::JsonValue& v) {
  int deepest = 0;
  if (v.is_array()) {
    for (const relayout::JsonValue& item : v.as_array()) deepest = std::max(deepest, Depth(item));
  } else if (v.is_object()) {
    for (const auto& [key, item] : v.as_object()) deepest = std::max(deepest, Depth(item));
  }
  return deepest + ((v.is_array() || v.is_object()) ? 1 : 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relayout::JsonLimits limits;
  limits.max_depth = 32;
  relayout::Result<relayout::JsonValue> v =
      relayout::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (v.ok() && Depth(*v) > limits.max_depth) __builtin_trap();
  return 0;
}
