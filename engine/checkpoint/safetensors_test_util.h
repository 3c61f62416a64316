// Test-only helpers that serialize tensors into the safetensors format, so
// tests can build valid files in memory and derive malformed ones from them.
// Header-only and named *_test_util.h so it never enters the library.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace relayout::testing {

// The 8-byte little-endian length prefix.
inline std::string SafetensorsLengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A file made of a raw header text and a data section, for hand-made headers.
inline std::string SafetensorsFile(std::string_view header_json, std::string_view data) {
  return SafetensorsLengthPrefix(header_json.size()) + std::string(header_json) + std::string(data);
}

// Collects tensors and writes them back to back, in the order added, with
// an optional alignment padding of the header (as the reference writer pads
// with spaces to 8 bytes).
class SafetensorsWriter {
 public:
  // shape is written verbatim; bytes become the tensor's data.
  SafetensorsWriter& Add(std::string name, std::string dtype, std::vector<int64_t> shape,
                         std::string bytes) {
    tensors_.push_back({std::move(name), std::move(dtype), std::move(shape), std::move(bytes)});
    return *this;
  }
  SafetensorsWriter& AddF32(std::string name, std::vector<int64_t> shape,
                            const std::vector<float>& values) {
    std::string bytes(values.size() * sizeof(float), '\0');
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return Add(std::move(name), "F32", std::move(shape), std::move(bytes));
  }
  SafetensorsWriter& Metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
    return *this;
  }

  std::string Header() const {
    std::string h = "{";
    bool first = true;
    auto sep = [&] {
      if (!first) h += ", ";
      first = false;
    };
    if (!metadata_.empty()) {
      sep();
      h += "\"__metadata__\": {";
      bool first_meta = true;
      for (const auto& [k, v] : metadata_) {
        if (!first_meta) h += ", ";
        first_meta = false;
        h += "\"" + k + "\": \"" + v + "\"";
      }
      h += "}";
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      sep();
      h += "\"" + t.name + "\": {\"dtype\": \"" + t.dtype + "\", \"shape\": [";
      for (size_t i = 0; i < t.shape.size(); ++i) {
        if (i) h += ", ";
        h += std::to_string(t.shape[i]);
      }
      h += "], \"data_offsets\": [" + std::to_string(offset) + ", " +
           std::to_string(offset + t.bytes.size()) + "]}";
      offset += t.bytes.size();
    }
    h += "}";
    while (h.size() % 8 != 0) h += ' ';
    return h;
  }

  std::string Data() const {
    std::string d;
    for (const Tensor& t : tensors_) d += t.bytes;
    return d;
  }

  std::string Build() const { return SafetensorsFile(Header(), Data()); }

 private:
  struct Tensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::vector<Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace relayout::testing
