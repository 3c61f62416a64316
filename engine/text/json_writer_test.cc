#include "engine/text/json_writer.h"

#include <gtest/gtest.h>

#include <limits>

namespace relayout {
namespace {

TEST(JsonWriterTest, CompactDocumentHasCommasAndEscapes) {
  std::string out;
  JsonWriter w(&out, /*pretty=*/false);
  w.BeginObject();
  w.Key("name").String("a\"b\\c\n\x01");
  w.Key("shape").BeginArray().Int(512).Int(-1).EndArray();
  w.Key("bytes").Uint(UINT64_MAX);
  w.Key("ratio").Double(0.5);
  w.Key("nan").Double(std::numeric_limits<double>::quiet_NaN());
  w.Key("ok").Bool(true);
  w.Key("none").Null();
  w.Key("empty").BeginObject().EndObject();
  w.EndObject();
  EXPECT_EQ(
      out, R"({"name":"a\"b\\c\n\u0001","shape":[512,-1],"bytes":18446744073709551615,"ratio":0.5,)"
           R"("nan":null,"ok":true,"none":null,"empty":{}})");
}

TEST(JsonWriterTest, PrettyDocumentIndents) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("a").BeginArray().Int(1).Int(2).EndArray().EndObject();
  EXPECT_EQ(out, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
}

}  // namespace
}  // namespace relayout
