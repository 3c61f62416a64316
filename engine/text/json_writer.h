// JsonWriter: writes one JSON document into a string, with commas, escaping
// and (optionally) indentation handled; for reports and `--json` output.
//
// Calls must nest correctly (Key only inside objects, one value per key);
// misuse is a programming error caught by assert. Non-finite doubles are
// written as null, since JSON has no NaN.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace relayout {

class JsonWriter {
 public:
  // Appends to *out, which must outlive the writer.
  explicit JsonWriter(std::string* out, bool pretty = true) : out_(out), pretty_(pretty) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // Escapes a string as a JSON string literal, quotes included.
  static std::string Quote(std::string_view text);

 private:
  void BeforeValue();
  void NewLine();

  struct Frame {
    bool is_object;
    int count;
  };
  std::string* out_;
  bool pretty_;
  bool after_key_ = false;
  std::vector<Frame> stack_;
};

}  // namespace relayout
