// A table of malformed GGUF files, each derived from one valid file, and the
// one-line error each must produce.
#include <gtest/gtest.h>

#include <functional>

#include "engine/checkpoint/gguf_source.h"
#include "engine/checkpoint/gguf_test_util.h"

namespace relayout {
namespace {

using testing::GgufTestFile;
using testing::GgufTestLayout;
using testing::PatchLe;
using testing::SerializeGguf;

constexpr char kPath[] = "model.gguf";
constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2;

GgufValue U32(uint64_t v) { return GgufValue::Unsigned(GgufType::kUint32, v); }
GgufValue Str(std::string s) { return GgufValue::String(std::move(s)); }

GgufTestFile BaseFile() {
  GgufTestFile f;
  f.kvs = {
      {"general.architecture", Str("llama")},
      {"general.alignment", U32(32)},
      {"llama.embedding_length", U32(8)},
      {"tokenizer.ggml.tokens", GgufValue::Array(GgufType::kString, {Str("<s>"), Str("abc")})},
  };
  f.tensors = {
      {"token_embd.weight", kF32, {8, 4}, {}, {}},      // 128 bytes at 0
      {"blk.0.attn_q.weight", kQ4_0, {32, 2}, {}, {}},  // 36 bytes at 128
      {"output_norm.weight", kF16, {8}, {}, {}},        // 16 bytes at 192
  };
  return f;
}

struct BadCase {
  std::string name;
  std::string bytes;
  StatusCode code;
  std::vector<std::string> parts;  // each must appear in the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

std::string Serialized(const std::function<void(GgufTestFile&)>& edit) {
  GgufTestFile f = BaseFile();
  edit(f);
  return SerializeGguf(f);
}

std::vector<BadCase> BadCases() {
  GgufTestLayout l;
  const std::string base = SerializeGguf(BaseFile(), &l);
  const auto cut = [&](uint64_t n) { return base.substr(0, n); };
  const auto patch = [&](uint64_t at, uint64_t v, int bytes) {
    std::string b = base;
    PatchLe(&b, at, v, bytes);
    return b;
  };
  constexpr StatusCode kDataLoss = StatusCode::kDataLoss;
  constexpr StatusCode kUnimplemented = StatusCode::kUnimplemented;
  // Offsets inside the last key-value (the tokens array) and the last tensor
  // info, so the up-front count checks pass and the field reads fail.
  const uint64_t tokens_key = l.kv_starts[3];
  const uint64_t tokens_value = l.kv_type_offsets[3] + 4;  // element type, count, strings
  const uint64_t last_info = l.tensor_info_starts[2];
  const uint64_t big = 1ull << 40;

  std::vector<BadCase> cases = {
      // Truncation at and inside every section.
      {"EmptyFile",
       cut(0),
       kDataLoss,
       {"model.gguf: header: magic needs 4 bytes at offset 0, 0 left"}},
      {"TruncatedInMagic", cut(2), kDataLoss, {"magic needs 4 bytes", "2 left"}},
      {"TruncatedAfterMagic", cut(4), kDataLoss, {"header: version needs 4 bytes at offset 4"}},
      {"TruncatedInVersion", cut(6), kDataLoss, {"version needs 4 bytes", "2 left"}},
      {"TruncatedInTensorCount", cut(12), kDataLoss, {"tensor_count needs 8 bytes at offset 8"}},
      {"TruncatedBeforeKvCount", cut(16), kDataLoss, {"kv_count needs 8 bytes at offset 16"}},
      {"TruncatedAfterCounts",
       cut(24),
       kDataLoss,
       {"header: kv_count 4 needs at least 56 bytes, 0 left"}},
      {"TruncatedInKeyLength",
       cut(tokens_key + 4),
       kDataLoss,
       {"metadata entry 3 of 4: key length needs 8 bytes"}},
      {"TruncatedInKey",
       cut(tokens_key + 8 + 5),
       kDataLoss,
       {"metadata entry 3 of 4: key of 21 bytes", "passes end of file, 5 left"}},
      {"TruncatedInValueType",
       cut(l.kv_type_offsets[3] + 2),
       kDataLoss,
       {"metadata key \"tokenizer.ggml.tokens\": value type needs 4 bytes"}},
      {"TruncatedInArrayCount",
       cut(tokens_value + 4 + 3),
       kDataLoss,
       {"\"tokenizer.ggml.tokens\": array count needs 8 bytes"}},
      {"TruncatedInArrayElements",
       cut(tokens_value + 12 + 8 + 3 + 8 + 1),
       kDataLoss,
       {"\"tokenizer.ggml.tokens\": STRING value of 3 bytes", "1 left"}},
      {"TruncatedBeforeTensorInfos",
       cut(l.tensor_info_starts[0]),
       kDataLoss,
       {"header: tensor_count 3 needs at least 75 bytes, 0 left after the metadata"}},
      {"TruncatedInTensorName",
       cut(last_info + 8 + 4),
       kDataLoss,
       {"tensor info 2 of 3: name of 18 bytes", "4 left"}},
      {"TruncatedInTensorDims",
       cut(last_info + 8 + 18 + 4 + 3),
       kDataLoss,
       {"tensor \"output_norm.weight\": dimension needs 8 bytes"}},
      {"TruncatedInTensorOffset",
       cut(l.tensor_infos_end - 1),
       kDataLoss,
       {"tensor \"output_norm.weight\": offset needs 8 bytes", "7 left"}},
      {"TruncatedInPadding",
       cut(l.tensor_infos_end + 1),
       kDataLoss,
       {"header: data section at offset", "starts past end of file"}},
      {"TruncatedInData",
       cut(l.data_offset + 10),
       kDataLoss,
       {"tensor \"token_embd.weight\": 128 bytes at data offset 0 past end of file (10 bytes of "
        "data)"}},
      {"TruncatedInLastTensor",
       cut(base.size() - 1),
       kDataLoss,
       {"tensor \"output_norm.weight\": 16 bytes at data offset 192 past end of file"}},
      // Header fields.
      {"BadMagic",
       Serialized([](GgufTestFile& f) { f.magic = "GGML"; }),
       kDataLoss,
       {"model.gguf: header: not a GGUF file: magic is \"GGML\""}},
      {"BinaryMagic",
       Serialized([](GgufTestFile& f) { f.magic = std::string("\0\x01\"Z", 4); }),
       kDataLoss,
       {"magic is \"\\x00\\x01\\x22Z\""}},
      {"Version1",
       Serialized([](GgufTestFile& f) { f.version = 1; }),
       kUnimplemented,
       {"model.gguf: GGUF version 1 is not supported"}},
      {"Version4",
       Serialized([](GgufTestFile& f) { f.version = 4; }),
       kUnimplemented,
       {"model.gguf: GGUF version 4 is not supported"}},
      {"BigEndian",
       Serialized([](GgufTestFile& f) { f.version = 0x03000000; }),
       kUnimplemented,
       {"big-endian GGUF (version 3)"}},
      {"HugeTensorCount",
       Serialized([](GgufTestFile& f) { f.tensor_count = UINT64_MAX; }),
       kDataLoss,
       {"tensor_count 18446744073709551615 needs more than 2^64 bytes"}},
      {"HugeKvCount",
       Serialized([&](GgufTestFile& f) { f.kv_count = big; }),
       kDataLoss,
       {"kv_count 1099511627776 needs at least 15393162788864 bytes"}},
      // Metadata.
      {"HugeKeyLength",
       patch(l.kv_starts[0], big, 8),
       kDataLoss,
       {"metadata entry 0 of 4: key length 1099511627776 exceeds 65535"}},
      {"EmptyKey",
       Serialized([](GgufTestFile& f) { f.kvs[0].first = ""; }),
       kDataLoss,
       {"metadata entry 0 of 4: empty key"}},
      {"KeyNotUtf8",
       Serialized([](GgufTestFile& f) { f.kvs[2].first = "llama.\xc0\xaf"; }),
       kDataLoss,
       {"metadata entry 2 of 4: key \"llama.\\xc0\\xaf\" is not UTF-8"}},
      {"HugeStringLength",
       patch(l.kv_type_offsets[0] + 4, big, 8),
       kDataLoss,
       {"metadata key \"general.architecture\": STRING value of 1099511627776 bytes",
        "passes end of file"}},
      {"HugeArrayCount",
       patch(tokens_value + 4, 4294967295u, 8),
       kDataLoss,
       {"model.gguf: metadata key \"tokenizer.ggml.tokens\": array of 4294967295 strings needs "
        "at least 34359738360 bytes, "}},
      {"HugeNestedArrayCount",
       Serialized([](GgufTestFile& f) {
         f.kvs.emplace_back(
             "nest", GgufValue::Array(GgufType::kArray, {GgufValue::Array(GgufType::kUint64, {})}));
       }),
       kDataLoss,
       {}},  // patched below
      {"NestedTooDeep",
       Serialized([](GgufTestFile& f) {
         GgufValue v = GgufValue::Array(GgufType::kUint8, {});
         for (int i = 0; i < GgufSource::kMaxArrayNesting; ++i) {
           v = GgufValue::Array(GgufType::kArray, {v});
         }
         f.kvs.emplace_back("deep", v);
       }),
       kDataLoss,
       {"metadata key \"deep\": arrays nested deeper than 8 levels"}},
      {"UnknownValueType",
       patch(l.kv_type_offsets[0], 13, 4),
       kDataLoss,
       {"metadata key \"general.architecture\": unknown value type 13"}},
      {"UnknownArrayElementType",
       patch(tokens_value, 99, 4),
       kDataLoss,
       {"metadata key \"tokenizer.ggml.tokens\": unknown array element type 99"}},
      {"BoolNotZeroOrOne",
       [&] {
         GgufTestFile f = BaseFile();
         f.kvs.emplace_back("flag", GgufValue::Bool(true));
         GgufTestLayout fl;
         std::string b = SerializeGguf(f, &fl);
         PatchLe(&b, fl.kv_type_offsets[4] + 4, 2, 1);
         return b;
       }(),
       kDataLoss,
       {"metadata key \"flag\": BOOL value 2 is neither 0 nor 1"}},
      {"DuplicateKey",
       Serialized([](GgufTestFile& f) { f.kvs[2].first = "general.architecture"; }),
       kDataLoss,
       {"model.gguf: metadata key \"general.architecture\": duplicate key"}},
      {"AlignmentZero",
       Serialized([](GgufTestFile& f) { f.kvs[1].second = U32(0); }),
       kDataLoss,
       {"metadata key \"general.alignment\": alignment 0 is not a nonzero power of two"}},
      {"AlignmentThree",
       Serialized([](GgufTestFile& f) { f.kvs[1].second = U32(3); }),
       kDataLoss,
       {"\"general.alignment\": alignment 3 is not a nonzero power of two"}},
      {"AlignmentWrongType",
       Serialized(
           [](GgufTestFile& f) { f.kvs[1].second = GgufValue::Unsigned(GgufType::kUint64, 32); }),
       kDataLoss,
       {"metadata key \"general.alignment\": is UINT64, expected UINT32"}},
      // Tensor infos.
      {"UnknownTensorType",
       patch(l.tensor_type_offsets[1], 99, 4),
       kDataLoss,
       {"model.gguf: tensor \"blk.0.attn_q.weight\": unknown tensor type 99"}},
      {"UnsupportedTensorType",
       patch(l.tensor_type_offsets[1], 16, 4),
       kUnimplemented,
       {"tensor \"blk.0.attn_q.weight\": unsupported tensor type 16 (IQ2_XXS)"}},
      {"FiveDims",
       Serialized([](GgufTestFile& f) {
         f.tensors[2].ne = {8, 1, 1, 1, 1};
       }),
       kDataLoss,
       {"tensor \"output_norm.weight\": n_dims 5 exceeds 4"}},
      {"DimAboveInt64",
       patch(l.tensor_info_starts[0] + 8 + 17 + 4, 1ull << 63, 8),
       kDataLoss,
       {"tensor \"token_embd.weight\": dimension 0 is 9223372036854775808, above 2^63 - 1"}},
      {"ShapeOverflows",
       Serialized([](GgufTestFile& f) {
         f.tensors[0].ne = {1ull << 32, 1ull << 32, 1ull << 32};
         f.tensors[0].data = "";
       }),
       kDataLoss,
       {"tensor \"token_embd.weight\": F32 [4294967296, 4294967296, 4294967296]:",
        "overflows 64 bits"}},
      {"DimNotMultipleOfBlock",
       Serialized([](GgufTestFile& f) {
         f.tensors[1].ne = {33, 2};
         f.tensors[1].data = std::string(40, '\0');
       }),
       kDataLoss,
       {"tensor \"blk.0.attn_q.weight\": Q4_0 [2, 33]: innermost dimension 33",
        "not a multiple of its block size 32"}},
      {"MisalignedOffset",
       Serialized([](GgufTestFile& f) { f.tensors[1].offset = 144; }),
       kDataLoss,
       {"tensor \"blk.0.attn_q.weight\": offset 144 is not a multiple of the alignment 32"}},
      {"OffsetPastEnd",
       patch(l.tensor_offset_offsets[2], 1 << 20, 8),
       kDataLoss,
       {"tensor \"output_norm.weight\": 16 bytes at data offset 1048576 past end of file"}},
      {"OffsetNearUint64Max",
       patch(l.tensor_offset_offsets[2], UINT64_MAX - 31, 8),
       kDataLoss,
       {"tensor \"output_norm.weight\"", "past end of file"}},
      {"OverlappingTensors",
       Serialized([](GgufTestFile& f) { f.tensors[1].offset = 96; }),
       kDataLoss,
       {"tensor \"blk.0.attn_q.weight\": bytes [", "overlap tensor \"token_embd.weight\" ["}},
      {"EmptyTensorName",
       Serialized([](GgufTestFile& f) { f.tensors[1].name = ""; }),
       kDataLoss,
       {"tensor info 1 of 3: empty tensor name"}},
      {"DuplicateTensorName",
       Serialized([](GgufTestFile& f) { f.tensors[2].name = "token_embd.weight"; }),
       kDataLoss,
       {"model.gguf: tensor \"token_embd.weight\": duplicate tensor name"}},
  };
  // An inner array whose count exceeds the file: the check applies at every level.
  for (BadCase& c : cases) {
    if (c.name != "HugeNestedArrayCount") continue;
    const size_t at = c.bytes.find("nest") + 4 + 4 + 4 + 8 + 4;  // inner array's count
    PatchLe(&c.bytes, at, big, 8);
    c.parts = {
        "metadata key \"nest\": array of 1099511627776 UINT64 values needs at least "
        "8796093022208 bytes"};
  }
  return cases;
}

class GgufMalformedTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(GgufMalformedTest, IsRejectedWithOneLineNamingTheProblem) {
  const BadCase& c = GetParam();
  InMemoryEnv env;
  env.AddFile(kPath, c.bytes);
  auto source = GgufSource::Open(&env, kPath);
  ASSERT_FALSE(source.ok());
  const Status& s = source.status();
  EXPECT_EQ(s.code(), c.code) << s;
  EXPECT_EQ(s.message().rfind("model.gguf: ", 0), 0u) << s;
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s;
  for (const std::string& part : c.parts) {
    EXPECT_NE(s.message().find(part), std::string::npos) << "missing \"" << part << "\" in " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, GgufMalformedTest, ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

TEST(GgufMalformedFileTest, BaseFileIsValidAndHasPadding) {
  GgufTestLayout l;
  const std::string bytes = SerializeGguf(BaseFile(), &l);
  ASSERT_GT(l.data_offset, l.tensor_infos_end + 1) << "padding test needs padding";
  InMemoryEnv env;
  env.AddFile(kPath, bytes);
  auto source = GgufSource::Open(&env, kPath);
  ASSERT_TRUE(source.ok()) << source.status();
}

// Every prefix of a valid file is rejected cleanly (the sanitizer build
// checks no prefix reads out of bounds).
TEST(GgufMalformedFileTest, EveryTruncationIsDataLoss) {
  const std::string bytes = SerializeGguf(BaseFile());
  for (size_t n = 0; n < bytes.size(); ++n) {
    InMemoryEnv env;
    env.AddFile(kPath, bytes.substr(0, n));
    auto source = GgufSource::Open(&env, kPath);
    ASSERT_FALSE(source.ok()) << n;
    EXPECT_EQ(source.status().code(), StatusCode::kDataLoss) << n << ": " << source.status();
  }
}

}  // namespace
}  // namespace relayout
