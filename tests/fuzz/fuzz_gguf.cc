// libFuzzer target: GgufSource::Open on arbitrary bytes, then every tensor
// read. Any crash, sanitizer report, leak or allocation beyond the RSS limit
// is a bug: the reader must reject bad input with a Status.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/checkpoint/gguf_source.h"

namespace {
// Tensor bytes read per input, so a header declaring huge (valid) tensors in
// a huge file cannot make one run slow.
constexpr uint64_t kMaxReadBytes = 64ull << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relayout::InMemoryEnv env;
  env.AddFile("fuzz.gguf", std::string(reinterpret_cast<const char*>(data), size));
  auto source = relayout::GgufSource::Open(&env, "fuzz.gguf");
  if (!source.ok()) return 0;
  const relayout::GgufSource& s = **source;
  uint64_t budget = kMaxReadBytes;
  std::vector<std::byte> buf;
  for (size_t i = 0; i < s.tensors().size(); ++i) {
    const uint64_t bytes = s.tensors()[i].byte_size;
    if (bytes > budget) break;
    budget -= bytes;
    buf.resize(bytes);
    // Validated ranges lie inside the file, so every read must succeed.
    if (!s.ReadTensor(i, buf).ok()) __builtin_trap();
  }
  // Touch the metadata the way consumers do.
  for (const auto& [key, value] : s.metadata().entries()) (void)value.ToString(4);
  return 0;
}
