// libFuzzer target: arbitrary bytes as a .safetensors file. Opening must
// either fail with a Status or yield tensors that all read back; no crash,
// leak, sanitizer report or allocation from an unchecked size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/checkpoint/safetensors_source.h"

namespace {

// Keeps each input fast: tensors beyond this many bytes in total are not read.
constexpr uint64_t kMaxReadBytes = 64ull << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relayout::InMemoryEnv env;
  env.AddFile("fuzz.safetensors", std::string(reinterpret_cast<const char*>(data), size));
  auto source = relayout::SafetensorsSource::Open(&env, "fuzz.safetensors");
  if (!source.ok()) return 0;
  uint64_t read = 0;
  for (size_t i = 0; i < (*source)->tensors().size(); ++i) {
    const relayout::TensorInfo& t = (*source)->tensors()[i];
    // A validated byte_size lies inside the input, so it is at most `size`.
    if (t.byte_size > size || read + t.byte_size > kMaxReadBytes) break;
    read += t.byte_size;
    std::vector<std::byte> buf(t.byte_size);
    const relayout::Status s = (*source)->ReadTensor(i, buf);
    if (!s.ok()) __builtin_trap();  // a source that opened must read its tensors
  }
  return 0;
}
