// The typed key/value metadata of a GGUF file (v2 and v3).
//
// Value types as numbered in the GGUF specification. Arrays carry one element
// type and may nest (an array of arrays). The reader builds these after
// checking every count and length against the bytes left in the file, so no
// allocation is sized by an unchecked field.
//
// Thread safety: immutable after the reader builds it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace relayout {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "UINT32", "ARRAY", ...; "UNKNOWN" for values outside the enum.
std::string_view GgufTypeName(GgufType type);

class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue Unsigned(GgufType type, uint64_t v);
  static GgufValue Signed(GgufType type, int64_t v);
  static GgufValue Float(GgufType type, double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  static GgufValue Array(GgufType element_type, std::vector<GgufValue> elements);

  GgufType type() const { return type_; }

  // Integer value of any integer type, when it fits the result type; nullopt
  // for other types or out-of-range values.
  std::optional<uint64_t> AsUint() const;
  std::optional<int64_t> AsInt() const;
  // Float32/Float64 value; integers convert too.
  std::optional<double> AsFloat() const;
  std::optional<bool> AsBool() const;
  // nullptr unless a string.
  const std::string* AsString() const;
  // nullptr unless an array.
  const std::vector<GgufValue>* AsArray() const;
  GgufType array_type() const { return array_type_; }

  // For listings and test failures: 64, "llama", true, UINT32[3] [1, 2, 3];
  // arrays show at most max_array_elements elements per level, then "...".
  std::string ToString(size_t max_array_elements = 8) const;

 private:
  GgufType type_ = GgufType::kUint8;
  GgufType array_type_ = GgufType::kUint8;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  bool b_ = false;
  std::string s_;
  std::vector<GgufValue> array_;
};

class GgufMetadata {
 public:
  // InvalidArgument if key is already present (duplicate keys are rejected).
  Status Add(std::string key, GgufValue value);

  const GgufValue* Find(std::string_view key) const;
  // All entries in file order.
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  // Typed lookups. NotFound "metadata key K is missing" when absent,
  // InvalidArgument "metadata key K is T, expected ..." on a type mismatch.
  Result<uint64_t> GetUint(std::string_view key) const;
  Result<double> GetFloat(std::string_view key) const;
  Result<bool> GetBool(std::string_view key) const;
  Result<std::string> GetString(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace relayout
