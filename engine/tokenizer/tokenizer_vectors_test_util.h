// Test-only: checks a tokenizer against a reference vector file such as
// tests/data/smollm2_tokenizer_vectors.json ({"vectors": [{"text", "ids",
// "ids_special"?}, ...]}, written by tools/gen_tokenizer_vectors.py with an
// independent implementation). Shared by the engine's GGUF tokenizer test and
// the integration test of the tokenizer.json loader.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/text/json.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout::testing {

// The reference vectors in RELAYOUT_SOURCE_DIR's tests/data.
inline std::string SmolLm2VectorsPath() {
  return std::string(RELAYOUT_SOURCE_DIR) + "/tests/data/smollm2_tokenizer_vectors.json";
}

// The ids array at key of vector, appended to out; false when absent.
inline bool VectorIds(const JsonValue& vector, std::string_view key, std::vector<int32_t>* out) {
  const JsonValue* ids = vector.Find(key);
  if (ids == nullptr) return false;
  EXPECT_TRUE(ids->is_array()) << key;
  if (!ids->is_array()) return false;
  for (const JsonValue& id : ids->as_array()) {
    EXPECT_TRUE(id.as_int64().has_value()) << key;
    out->push_back(static_cast<int32_t>(id.as_int64().value_or(-1)));
  }
  return true;
}

// Encodes every vector's text with add_bos=false, compares with "ids"; with
// parse_special=true too, compares with "ids_special" where present (else
// with "ids"). Returns how many encodings were compared.
inline int ExpectMatchesVectors(const Tokenizer& tok, const std::string& vectors_path) {
  Result<std::string> text = Env::Default()->ReadSmallFile(vectors_path, 64u << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  if (!text.ok()) return 0;
  Result<JsonValue> doc = ParseJson(*text);
  EXPECT_TRUE(doc.ok()) << doc.status();
  if (!doc.ok()) return 0;
  const JsonValue* vectors = doc->Find("vectors");
  EXPECT_TRUE(vectors != nullptr && vectors->is_array());
  if (vectors == nullptr || !vectors->is_array()) return 0;
  int compared = 0;
  int mismatches = 0;
  for (const JsonValue& v : vectors->as_array()) {
    const JsonValue* input = v.Find("text");
    EXPECT_TRUE(input != nullptr && input->is_string());
    if (input == nullptr || !input->is_string()) continue;
    std::vector<int32_t> want;
    VectorIds(v, "ids", &want);
    std::vector<int32_t> want_special;
    if (!VectorIds(v, "ids_special", &want_special)) want_special = want;
    for (const bool special : {false, true}) {
      Result<std::vector<int32_t>> got =
          tok.Encode(input->as_string(), {.add_bos = false, .parse_special = special});
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) continue;
      ++compared;
      // The first few mismatches in full; a broken tokenizer would flood the log.
      if (*got != (special ? want_special : want) && ++mismatches <= 10) {
        ADD_FAILURE() << "text \"" << input->as_string() << "\" parse_special=" << special
                      << ": ids differ from the reference";
        EXPECT_EQ(*got, special ? want_special : want);
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << compared << " encodings";
  return compared;
}

}  // namespace relayout::testing
