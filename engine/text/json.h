// A strict JSON reader for checkpoint headers and configs.
//
// Strict where the standard library parsers are lenient, because safetensors
// headers are untrusted input: duplicate object keys are an error (a second
// "data_offsets" must not silently win), nesting depth and input size are
// bounded, integers are kept exact to 64 bits (offsets beyond 2^53 must not
// round), invalid UTF-8 and unescaped control characters are rejected, and
// nothing follows the top-level value but white space.
//
// Errors are InvalidArgument with the byte offset: "JSON at byte 17: duplicate key \"dtype\"".
//
// Thread safety: JsonValue is an immutable value after parsing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace relayout {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;  // null

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // REQUIRES: the matching is_*() is true.
  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  const std::string& as_string() const { return string_; }
  const std::vector<JsonValue>& as_array() const { return array_; }
  // Object members in document order (keys are unique).
  const std::vector<std::pair<std::string, JsonValue>>& as_object() const { return object_; }

  // The number as an exact integer: set only when the literal had no fraction
  // or exponent and fits the type.
  std::optional<int64_t> as_int64() const { return int64_; }
  std::optional<uint64_t> as_uint64() const { return uint64_; }

  // Member lookup; nullptr when this is not an object or has no such key.
  const JsonValue* Find(std::string_view key) const;

  // "object", "array", ...
  static std::string_view TypeName(Type type);

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::optional<int64_t> int64_;
  std::optional<uint64_t> uint64_;
  std::string string_;
  std::vector<JsonValue> array_;
  std::vector<std::pair<std::string, JsonValue>> object_;
};

struct JsonLimits {
  size_t max_bytes = 100u << 20;  // whole document
  int max_depth = 64;             // nested arrays/objects
};

// Parses one JSON document. InvalidArgument "JSON at byte N: <what>" on error.
Result<JsonValue> ParseJson(std::string_view text, const JsonLimits& limits = {});

}  // namespace relayout
