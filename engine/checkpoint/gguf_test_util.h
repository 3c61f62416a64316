// Test-only: writes GGUF files from a plain description, and reports where
// each section landed so tests can truncate or patch the bytes at a boundary.
// Deliberately independent of the reader (only the value types are shared),
// so a reader bug does not hide behind a matching writer bug.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/checkpoint/gguf_metadata.h"
#include "engine/checkpoint/gguf_source.h"
#include "engine/tensor/dtype.h"

namespace relayout::testing {

struct GgufTestTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> ne;         // innermost first, as written in the file
  std::optional<uint64_t> offset;   // in the data section; nullopt: next aligned offset
  std::optional<std::string> data;  // nullopt: a byte pattern of the tensor's size
};

struct GgufTestFile {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // written instead of tensors.size()
  std::optional<uint64_t> kv_count;      // written instead of kvs.size()
  std::vector<std::pair<std::string, GgufValue>> kvs;
  std::vector<GgufTestTensor> tensors;
  // Used to lay out the data section; general.alignment is written only if
  // it is in kvs.
  uint64_t alignment = 32;
};

// Byte offsets of what SerializeGguf wrote.
struct GgufTestLayout {
  std::vector<uint64_t> kv_starts;           // each key's length field
  std::vector<uint64_t> kv_type_offsets;     // each value's type field
  std::vector<uint64_t> tensor_info_starts;  // each tensor info's name length field
  std::vector<uint64_t> tensor_type_offsets;
  std::vector<uint64_t> tensor_offset_offsets;  // each tensor info's offset field
  uint64_t tensor_infos_end = 0;
  uint64_t data_offset = 0;
  std::vector<uint64_t> tensor_data;  // absolute offset of each tensor's bytes
};

inline void AppendLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline void PatchLe(std::string* out, uint64_t offset, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) (*out)[offset + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline void AppendGgufString(std::string* out, const std::string& s) {
  AppendLe(out, s.size(), 8);
  out->append(s);
}

// The value's payload, without its type (an array writes its element type).
inline void AppendGgufPayload(std::string* out, const GgufValue& v) {
  switch (v.type()) {
    case GgufType::kUint8:
    case GgufType::kBool:
      AppendLe(out, v.type() == GgufType::kBool ? *v.AsBool() : *v.AsUint(), 1);
      return;
    case GgufType::kInt8:
      AppendLe(out, static_cast<uint64_t>(*v.AsInt()), 1);
      return;
    case GgufType::kUint16:
      AppendLe(out, *v.AsUint(), 2);
      return;
    case GgufType::kInt16:
      AppendLe(out, static_cast<uint64_t>(*v.AsInt()), 2);
      return;
    case GgufType::kUint32:
      AppendLe(out, *v.AsUint(), 4);
      return;
    case GgufType::kInt32:
      AppendLe(out, static_cast<uint64_t>(*v.AsInt()), 4);
      return;
    case GgufType::kUint64:
      AppendLe(out, *v.AsUint(), 8);
      return;
    case GgufType::kInt64:
      AppendLe(out, static_cast<uint64_t>(*v.AsInt()), 8);
      return;
    case GgufType::kFloat32: {
      const float f = static_cast<float>(*v.AsFloat());
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      AppendLe(out, bits, 4);
      return;
    }
    case GgufType::kFloat64: {
      const double f = *v.AsFloat();
      uint64_t bits;
      std::memcpy(&bits, &f, 8);
      AppendLe(out, bits, 8);
      return;
    }
    case GgufType::kString:
      AppendGgufString(out, *v.AsString());
      return;
    case GgufType::kArray:
      AppendLe(out, static_cast<uint32_t>(v.array_type()), 4);
      AppendLe(out, v.AsArray()->size(), 8);
      for (const GgufValue& e : *v.AsArray()) AppendGgufPayload(out, e);
      return;
  }
}

// Byte size of a tensor whose type and shape are valid, else 0.
inline uint64_t GgufTestTensorBytes(const GgufTestTensor& t) {
  const std::optional<DType> dtype = DTypeFromGgmlType(t.ggml_type);
  if (!dtype) return 0;
  std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
  Result<uint64_t> size = ByteSizeOf(*dtype, shape);
  return size.ok() ? *size : 0;
}

inline std::string SerializeGguf(const GgufTestFile& f, GgufTestLayout* layout_out = nullptr) {
  GgufTestLayout layout;
  std::string out = f.magic;
  AppendLe(&out, f.version, 4);
  AppendLe(&out, f.tensor_count.value_or(f.tensors.size()), 8);
  AppendLe(&out, f.kv_count.value_or(f.kvs.size()), 8);
  for (const auto& [key, value] : f.kvs) {
    layout.kv_starts.push_back(out.size());
    AppendGgufString(&out, key);
    layout.kv_type_offsets.push_back(out.size());
    AppendLe(&out, static_cast<uint32_t>(value.type()), 4);
    AppendGgufPayload(&out, value);
  }
  std::vector<std::string> datas;
  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    const GgufTestTensor& t = f.tensors[i];
    std::string data = t.data.value_or(std::string());
    if (!t.data) {
      data.resize(GgufTestTensorBytes(t));
      for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<char>((i * 31 + k * 7) & 0xff);
    }
    const uint64_t offset = t.offset.value_or(next);
    next = std::max(next, (offset + data.size() + f.alignment - 1) / f.alignment * f.alignment);
    datas.push_back(std::move(data));
    offsets.push_back(offset);
    layout.tensor_info_starts.push_back(out.size());
    AppendGgufString(&out, t.name);
    AppendLe(&out, t.ne.size(), 4);
    for (uint64_t d : t.ne) AppendLe(&out, d, 8);
    layout.tensor_type_offsets.push_back(out.size());
    AppendLe(&out, t.ggml_type, 4);
    layout.tensor_offset_offsets.push_back(out.size());
    AppendLe(&out, offset, 8);
  }
  layout.tensor_infos_end = out.size();
  layout.data_offset = (out.size() + f.alignment - 1) / f.alignment * f.alignment;
  out.resize(layout.data_offset, '\0');
  for (size_t i = 0; i < datas.size(); ++i) {
    const uint64_t at = layout.data_offset + offsets[i];
    if (out.size() < at + datas[i].size()) out.resize(at + datas[i].size(), '\0');
    out.replace(at, datas[i].size(), datas[i]);
    layout.tensor_data.push_back(at);
  }
  if (layout_out != nullptr) *layout_out = std::move(layout);
  return out;
}

}  // namespace relayout::testing
