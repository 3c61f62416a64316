#include "engine/checkpoint/safetensors_source.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <cstring>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/checkpoint/safetensors_test_util.h"

namespace relayout {
namespace {

using testing::SafetensorsFile;
using testing::SafetensorsLengthPrefix;
using testing::SafetensorsWriter;

constexpr char kPath[] = "model.safetensors";

// n bytes 0, 1, 2, ... (mod 256).
std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i & 0xff);
  return s;
}

// Three tensors of different dtypes, 30 data bytes, header padded to 8.
SafetensorsWriter ValidWriter() {
  SafetensorsWriter w;
  w.Metadata("format", "pt");
  w.AddF32("a", {2, 2}, {1.0f, 2.0f, 3.0f, 4.0f});
  w.Add("b", "BF16", {3}, Bytes(6));
  w.Add("c", "I64", {1}, Bytes(8));
  return w;
}

Result<std::unique_ptr<SafetensorsSource>> OpenBytes(std::string bytes, InMemoryEnv* env) {
  env->AddFile(kPath, std::move(bytes));
  return SafetensorsSource::Open(env, kPath);
}

Result<std::unique_ptr<SafetensorsSource>> OpenBytes(std::string bytes) {
  InMemoryEnv env;
  return OpenBytes(std::move(bytes), &env);
}

TEST(SafetensorsSourceTest, ValidFileListsTensorsMetadataAndOffsets) {
  const SafetensorsWriter w = ValidWriter();
  const uint64_t data_start = 8 + w.Header().size();
  auto source = OpenBytes(w.Build());
  ASSERT_TRUE(source.ok()) << source.status();
  const SafetensorsSource& s = **source;
  EXPECT_EQ(s.format(), CheckpointFormat::kSafetensors);
  EXPECT_EQ(s.paths(), std::vector<std::string>{kPath});
  EXPECT_EQ(s.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(s.tensors().size(), 3u);
  const TensorInfo& a = s.tensors()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.byte_size, 16u);
  EXPECT_EQ(a.file_index, 0u);
  EXPECT_EQ(a.file_offset, data_start);
  EXPECT_EQ(s.tensors()[1].dtype, DType::kBF16);
  EXPECT_EQ(s.tensors()[1].file_offset, data_start + 16);
  EXPECT_EQ(s.tensors()[2].dtype, DType::kI64);
  EXPECT_EQ(s.tensors()[2].file_offset, data_start + 22);
  EXPECT_EQ(s.TotalBytes(), 30u);

  std::vector<float> values(4);
  ASSERT_TRUE(s.ReadTensor(0, std::as_writable_bytes(std::span(values))).ok());
  EXPECT_EQ(values, (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f}));
  std::string c(8, '\0');
  ASSERT_TRUE(s.ReadTensor(2, std::as_writable_bytes(std::span(c))).ok());
  EXPECT_EQ(c, Bytes(8));
}

TEST(SafetensorsSourceTest, TensorsAreInFileOrderNotHeaderOrder) {
  const std::string header =
      R"({"late": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]},)"
      R"( "early": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
      R"( "empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [4, 4]}})";
  auto source = OpenBytes(SafetensorsFile(header, Bytes(8)));
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_EQ((*source)->tensors().size(), 3u);
  EXPECT_EQ((*source)->tensors()[0].name, "early");
  EXPECT_EQ((*source)->tensors()[1].name, "empty");
  EXPECT_EQ((*source)->tensors()[2].name, "late");
  EXPECT_TRUE((*source)->metadata().empty());
}

TEST(SafetensorsSourceTest, GapsTrailingBytesAndEmptyTensorsAreAllowed) {
  // 4 bytes of alignment padding between tensors, 5 trailing bytes, a scalar,
  // and an empty tensor inside another tensor's range (it overlaps nothing).
  const std::string header =
      R"({"x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},)"
      R"( "y": {"dtype": "I16", "shape": [2], "data_offsets": [8, 12]},)"
      R"( "z": {"dtype": "BOOL", "shape": [3, 0], "data_offsets": [10, 10]}})";
  auto source = OpenBytes(SafetensorsFile(header, Bytes(17)));
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_EQ((*source)->tensors().size(), 3u);
  EXPECT_EQ((*source)->tensors()[2].name, "z");
  std::vector<std::byte> none;
  EXPECT_TRUE((*source)->ReadTensor(2, none).ok());
}

TEST(SafetensorsSourceTest, EmptyHeaderObjectHasNoTensors) {
  auto source = OpenBytes(SafetensorsFile("{}", ""));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->tensors().empty());
}

TEST(SafetensorsSourceTest, EveryElementwiseDTypeIsAccepted) {
  const struct {
    const char* name;
    DType dtype;
    size_t bytes;
  } kCases[] = {{"F32", DType::kF32, 4},  {"F16", DType::kF16, 2}, {"BF16", DType::kBF16, 2},
                {"F64", DType::kF64, 8},  {"I8", DType::kI8, 1},   {"U8", DType::kU8, 1},
                {"I16", DType::kI16, 2},  {"U16", DType::kU16, 2}, {"I32", DType::kI32, 4},
                {"U32", DType::kU32, 4},  {"I64", DType::kI64, 8}, {"U64", DType::kU64, 8},
                {"BOOL", DType::kBool, 1}};
  for (const auto& c : kCases) {
    SafetensorsWriter w;
    w.Add("t", c.name, {3}, Bytes(3 * c.bytes));
    auto source = OpenBytes(w.Build());
    ASSERT_TRUE(source.ok()) << c.name << ": " << source.status();
    EXPECT_EQ((*source)->tensors()[0].dtype, c.dtype) << c.name;
    EXPECT_EQ((*source)->tensors()[0].byte_size, 3 * c.bytes) << c.name;
  }
}

TEST(SafetensorsSourceTest, MissingFileIsNotFound) {
  InMemoryEnv env;
  auto source = SafetensorsSource::Open(&env, "absent.safetensors");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsNotFound());
  EXPECT_EQ(source.status().message(), "absent.safetensors: no such file");
}

// A one-tensor header with the given entry for tensor "t" and 16 data bytes.
std::string OneTensor(const std::string& entry, size_t data_bytes = 16) {
  return SafetensorsFile(R"({"t": )" + entry + "}", Bytes(data_bytes));
}

struct MalformedCase {
  const char* name;
  std::string bytes;
  StatusCode code;
  std::string message;  // the whole expected message
};

TEST(SafetensorsSourceTest, MalformedFilesAreRejectedWithOneLineNamingFileAndTensor) {
  const SafetensorsWriter w = ValidWriter();
  const std::string valid = w.Build();
  const uint64_t n = w.Header().size();
  const std::string N = std::to_string(n);
  const StatusCode kDataLoss = StatusCode::kDataLoss;
  const std::string p = std::string(kPath) + ": ";

  const MalformedCase kCases[] = {
      // Truncated at each section boundary and inside each section.
      {"empty file", "", kDataLoss, p + "file is 0 bytes, too short for the 8-byte header length"},
      {"inside the length prefix", valid.substr(0, 5), kDataLoss,
       p + "file is 5 bytes, too short for the 8-byte header length"},
      {"after the length prefix", valid.substr(0, 8), kDataLoss,
       p + "header length " + N + " passes the end of the file (8 bytes)"},
      {"inside the header", valid.substr(0, 8 + n / 2), kDataLoss,
       p + "header length " + N + " passes the end of the file (" + std::to_string(8 + n / 2) +
           " bytes)"},
      {"after the header", valid.substr(0, 8 + n), kDataLoss,
       p + "tensor \"a\": data_offsets [0, 16] past the end of the data section (0 bytes)"},
      {"inside the data", valid.substr(0, 8 + n + 20), kDataLoss,
       p + "tensor \"b\": data_offsets [16, 22] past the end of the data section (20 bytes)"},
      {"last byte missing", valid.substr(0, valid.size() - 1), kDataLoss,
       p + "tensor \"c\": data_offsets [22, 30] past the end of the data section (29 bytes)"},
      // The length prefix.
      {"header length 2^63", SafetensorsLengthPrefix(1ull << 63) + valid.substr(8), kDataLoss,
       p + "header length 9223372036854775808 passes the end of the file (" +
           std::to_string(valid.size()) + " bytes)"},
      {"header length 2^64-1", SafetensorsLengthPrefix(UINT64_MAX) + valid.substr(8), kDataLoss,
       p + "header length 18446744073709551615 passes the end of the file (" +
           std::to_string(valid.size()) + " bytes)"},
      {"header length zero", SafetensorsLengthPrefix(0) + valid.substr(8), kDataLoss,
       p + "header is not valid JSON: JSON at byte 0: unexpected end of input, expected a value"},
      // The header's JSON.
      {"bad JSON", SafetensorsFile(R"({"t": {"dtype": "F32",)", ""), kDataLoss,
       p + "header is not valid JSON: JSON at byte 22: unexpected end of input, expected a "
           "string key"},
      {"header is an array", SafetensorsFile("[1, 2]", ""), kDataLoss,
       p + "header is an array, expected a JSON object"},
      {"header is a string", SafetensorsFile(R"("x")", ""), kDataLoss,
       p + "header is a string, expected a JSON object"},
      {"duplicate tensor name",
       SafetensorsFile(R"({"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                       R"( "t": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                       Bytes(2)),
       kDataLoss, p + "header is not valid JSON: JSON at byte 61: duplicate key \"t\""},
      {"duplicate key in entry",
       OneTensor(R"({"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "dtype": "F32"})"),
       kDataLoss, p + "header is not valid JSON: JSON at byte 60: duplicate key \"dtype\""},
      // Byte ranges.
      {"overlapping offsets",
       SafetensorsFile(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                       R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                       Bytes(16)),
       kDataLoss, p + "tensor \"b\": data_offsets [8, 16] overlap tensor \"a\" at [0, 16]"},
      {"identical offsets",
       SafetensorsFile(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]},)"
                       R"( "b": {"dtype": "I8", "shape": [4], "data_offsets": [4, 8]}})",
                       Bytes(16)),
       kDataLoss, p + "tensor \"b\": data_offsets [4, 8] overlap tensor \"a\" at [4, 8]"},
      {"offsets past the data section",
       OneTensor(R"({"dtype": "F32", "shape": [8], "data_offsets": [0, 32]})"), kDataLoss,
       p + "tensor \"t\": data_offsets [0, 32] past the end of the data section (16 bytes)"},
      {"offsets near 2^64",
       OneTensor(R"({"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551614,)"
                 R"( 18446744073709551615]})"),
       kDataLoss,
       p + "tensor \"t\": data_offsets [18446744073709551614, 18446744073709551615] past the end "
           "of the data section (16 bytes)"},
      {"begin after end", OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]})"),
       kDataLoss, p + "tensor \"t\": data_offsets [16, 0] begin after end"},
      {"size mismatch",
       OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [10, 20]})", 32), kDataLoss,
       p + "tensor \"t\": data_offsets [10, 20] hold 10 bytes, but F32 [4] needs 16"},
      {"negative offset", OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [-1, 15]})"),
       kDataLoss, p + "tensor \"t\": data_offsets must be an array of two non-negative integers"},
      {"three offsets", OneTensor(R"({"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]})"),
       kDataLoss, p + "tensor \"t\": data_offsets must be an array of two non-negative integers"},
      {"fractional offset", OneTensor(R"({"dtype": "U8", "shape": [1], "data_offsets": [0, 1.0]})"),
       kDataLoss, p + "tensor \"t\": data_offsets must be an array of two non-negative integers"},
      // Dtype and shape.
      {"unknown dtype", OneTensor(R"({"dtype": "F33", "shape": [4], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": unknown dtype \"F33\""},
      {"quantized dtype", OneTensor(R"({"dtype": "Q4_0", "shape": [32], "data_offsets": [0, 18]})"),
       kDataLoss, p + "tensor \"t\": unknown dtype \"Q4_0\""},
      {"lower-case dtype", OneTensor(R"({"dtype": "f32", "shape": [4], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": unknown dtype \"f32\""},
      {"unsupported fp8 dtype",
       OneTensor(R"({"dtype": "F8_E4M3", "shape": [16], "data_offsets": [0, 16]})"),
       StatusCode::kUnimplemented, p + "tensor \"t\": dtype \"F8_E4M3\" is not supported"},
      {"dtype not a string", OneTensor(R"({"dtype": 4, "shape": [4], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": dtype is 4, expected a string"},
      {"negative dim", OneTensor(R"({"dtype": "F32", "shape": [4, -1], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": shape[1] is -1, expected a non-negative integer"},
      {"fractional dim", OneTensor(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 16]})"),
       kDataLoss,
       p + "tensor \"t\": shape[0] is the non-integer 1.5, expected a non-negative integer"},
      {"string dim", OneTensor(R"({"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": shape[0] is a string, expected a non-negative integer"},
      {"dim above int64",
       OneTensor(R"({"dtype": "U8", "shape": [9223372036854775808], "data_offsets": [0, 16]})"),
       kDataLoss,
       p + "tensor \"t\": shape[0] is 9223372036854775808, expected a non-negative integer"},
      {"shape not an array", OneTensor(R"({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": shape is 4, expected an array"},
      {"element count overflows",
       OneTensor(R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": shape [4294967296, 4294967296] overflows 64 bits"},
      {"byte size overflows",
       OneTensor(R"({"dtype": "U64", "shape": [2305843009213693952], "data_offsets": [0, 16]})"),
       kDataLoss, p + "tensor \"t\": byte size of shape [2305843009213693952] overflows 64 bits"},
      // Entry keys.
      {"missing dtype", OneTensor(R"({"shape": [4], "data_offsets": [0, 16]})"), kDataLoss,
       p + "tensor \"t\": missing key \"dtype\""},
      {"missing shape", OneTensor(R"({"dtype": "F32", "data_offsets": [0, 16]})"), kDataLoss,
       p + "tensor \"t\": missing key \"shape\""},
      {"missing data_offsets", OneTensor(R"({"dtype": "F32", "shape": [4]})"), kDataLoss,
       p + "tensor \"t\": missing key \"data_offsets\""},
      {"extra key",
       OneTensor(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "offset": 0})"),
       kDataLoss, p + "tensor \"t\": unknown key \"offset\""},
      {"entry not an object", OneTensor("[1]"), kDataLoss,
       p + "tensor \"t\": entry is an array, expected an object"},
      {"entry is null", OneTensor("null"), kDataLoss,
       p + "tensor \"t\": entry is null, expected an object"},
      // __metadata__.
      {"metadata with a number", SafetensorsFile(R"({"__metadata__": {"n": 1}})", ""), kDataLoss,
       p + "\"__metadata__\" key \"n\" is 1, expected a string"},
      {"metadata with an object", SafetensorsFile(R"({"__metadata__": {"o": {}}})", ""), kDataLoss,
       p + "\"__metadata__\" key \"o\" is an object, expected a string"},
      {"metadata not an object", SafetensorsFile(R"({"__metadata__": "pt"})", ""), kDataLoss,
       p + "\"__metadata__\" is a string, expected an object of strings"},
  };
  for (const MalformedCase& c : kCases) {
    auto source = OpenBytes(c.bytes);
    ASSERT_FALSE(source.ok()) << c.name;
    EXPECT_EQ(source.status().code(), c.code) << c.name << ": " << source.status();
    EXPECT_EQ(source.status().message(), c.message) << c.name;
    EXPECT_EQ(source.status().message().find('\n'), std::string::npos) << c.name;
  }
}

TEST(SafetensorsSourceTest, HostileTensorNameIsEscapedInTheMessage) {
  auto source = OpenBytes(SafetensorsFile(R"({"a\n\"b": {"dtype": "X"}})", ""));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().message(),
            "model.safetensors: tensor \"a\\x0a\\\"b\": missing key \"shape\"");
}

TEST(SafetensorsSourceTest, HeaderAboveTheCapIsRejectedBeforeItIsRead) {
  const uint64_t n = SafetensorsSource::kMaxHeaderBytes + 1;
  std::string bytes = SafetensorsLengthPrefix(n);
  bytes.resize(8 + n, ' ');
  auto source = OpenBytes(std::move(bytes));
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(),
            "model.safetensors: header length 104857601 is above the limit of 104857600");
}

TEST(SafetensorsSourceTest, ReadTensorChecksTheDestinationSizeAndIndex) {
  auto source = OpenBytes(ValidWriter().Build());
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<std::byte> small(15);
  Status s = (*source)->ReadTensor(0, small);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(),
            "model.safetensors: tensor \"a\": destination is 15 bytes, the tensor is 16");
  s = (*source)->ReadTensor(3, small);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(), "ReadTensor: tensor index 3 out of range (3 tensors)");
}

TEST(SafetensorsSourceTest, ReadTensorRangeReadsAPieceAndChecksTheRange) {
  auto source = OpenBytes(ValidWriter().Build());
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<std::byte> whole(16), piece(6);
  ASSERT_TRUE((*source)->ReadTensor(0, whole).ok());
  ASSERT_TRUE((*source)->ReadTensorRange(0, 10, piece).ok());
  EXPECT_TRUE(std::equal(piece.begin(), piece.end(), whole.begin() + 10));
  EXPECT_TRUE((*source)->ReadTensorRange(0, 16, std::span(piece).first(0)).ok());
  const Status past = (*source)->ReadTensorRange(0, 11, piece);
  EXPECT_TRUE(past.IsInvalidArgument());
  EXPECT_EQ(past.message(), "tensor \"a\": bytes [11, 17) outside its 16");
  EXPECT_TRUE((*source)->ReadTensorRange(3, 0, piece).IsInvalidArgument());
}

TEST(SafetensorsSourceTest, InjectedReadErrorNamesFileAndTensor) {
  const SafetensorsWriter w = ValidWriter();
  const uint64_t data_start = 8 + w.Header().size();
  InMemoryEnv env;
  env.AddFile(kPath, w.Build());
  // Only tensor "c" (the last 8 bytes) reaches past this point.
  env.InjectReadError(kPath, data_start + 24);
  auto source = SafetensorsSource::Open(&env, kPath);
  ASSERT_TRUE(source.ok()) << source.status();  // opening reads only the header
  std::vector<std::byte> a(16), c(8);
  EXPECT_TRUE((*source)->ReadTensor(0, a).ok());
  const Status s = (*source)->ReadTensor(2, c);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "model.safetensors: tensor \"c\": injected read error at offset " +
                             std::to_string(data_start + 24));
}

TEST(SafetensorsSourceTest, ReadErrorInTheHeaderFailsOpen) {
  InMemoryEnv env;
  env.AddFile(kPath, ValidWriter().Build());
  env.InjectReadError(kPath, 20);
  auto source = SafetensorsSource::Open(&env, kPath);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(source.status().message(), "model.safetensors: injected read error at offset 20");
}

// ---- Sharded checkpoints -------------------------------------------------

constexpr char kIndex[] = "ckpt/model.safetensors.index.json";
constexpr char kShard1[] = "model-00001-of-00002.safetensors";
constexpr char kShard2[] = "model-00002-of-00002.safetensors";

std::string Index(const std::string& weight_map) {
  return R"({"metadata": {"total_size": 28}, "weight_map": {)" + weight_map + "}}";
}

// Shard 1 holds "embed" and "norm", shard 2 holds "head".
void AddValidShards(InMemoryEnv* env) {
  env->AddFile(std::string("ckpt/") + kShard1, SafetensorsWriter()
                                                   .Metadata("format", "pt")
                                                   .AddF32("norm", {2}, {5.0f, 6.0f})
                                                   .AddF32("embed", {2}, {1.0f, 2.0f})
                                                   .Build());
  env->AddFile(
      std::string("ckpt/") + kShard2,
      SafetensorsWriter().Metadata("format", "pt").AddF32("head", {3}, {7.0f, 8.0f, 9.0f}).Build());
}

const std::string kValidWeightMap = std::string(R"("head": ")") + kShard2 + R"(", "embed": ")" +
                                    kShard1 + R"(", "norm": ")" + kShard1 + R"(")";

Result<std::unique_ptr<SafetensorsSource>> OpenSharded(InMemoryEnv* env,
                                                       const std::string& weight_map) {
  env->AddFile(kIndex, Index(weight_map));
  return SafetensorsSource::OpenSharded(env, kIndex);
}

TEST(SafetensorsShardedTest, ValidShardsAreListedShardByShardInOffsetOrder) {
  InMemoryEnv env;
  AddValidShards(&env);
  auto source = OpenSharded(&env, kValidWeightMap);
  ASSERT_TRUE(source.ok()) << source.status();
  const SafetensorsSource& s = **source;
  EXPECT_EQ(s.paths(), (std::vector<std::string>{std::string("ckpt/") + kShard1,
                                                 std::string("ckpt/") + kShard2}));
  ASSERT_EQ(s.tensors().size(), 3u);
  EXPECT_EQ(s.tensors()[0].name, "norm");
  EXPECT_EQ(s.tensors()[0].file_index, 0u);
  EXPECT_EQ(s.tensors()[1].name, "embed");
  EXPECT_EQ(s.tensors()[2].name, "head");
  EXPECT_EQ(s.tensors()[2].file_index, 1u);
  EXPECT_EQ(s.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  std::vector<float> head(3);
  ASSERT_TRUE(s.ReadTensor(2, std::as_writable_bytes(std::span(head))).ok());
  EXPECT_EQ(head, (std::vector<float>{7.0f, 8.0f, 9.0f}));
  std::vector<float> embed(2);
  ASSERT_TRUE(s.ReadTensor(1, std::as_writable_bytes(std::span(embed))).ok());
  EXPECT_EQ(embed, (std::vector<float>{1.0f, 2.0f}));
}

TEST(SafetensorsShardedTest, TensorMissingFromItsShardIsDataLoss) {
  InMemoryEnv env;
  AddValidShards(&env);
  auto source = OpenSharded(&env, kValidWeightMap + R"(, "lm_head": ")" + kShard2 + R"(")");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(), std::string(kIndex) +
                                           ": weight_map assigns tensor \"lm_head\" to shard \"" +
                                           kShard2 + "\", which does not hold it");
}

TEST(SafetensorsShardedTest, MissingShardIsNotFoundNamingIndexAndShard) {
  InMemoryEnv env;
  AddValidShards(&env);
  auto source = OpenSharded(&env, kValidWeightMap + R"(, "extra": "model-extra.safetensors")");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsNotFound());
  EXPECT_EQ(source.status().message(),
            std::string(kIndex) +
                ": shard \"model-extra.safetensors\": ckpt/model-extra.safetensors: no such file");
}

TEST(SafetensorsShardedTest, TensorInTwoShardsIsDataLoss) {
  InMemoryEnv env;
  AddValidShards(&env);
  env.AddFile(std::string("ckpt/") + kShard2,
              SafetensorsWriter().AddF32("head", {1}, {1.0f}).AddF32("norm", {1}, {1.0f}).Build());
  auto source = OpenSharded(&env, kValidWeightMap);
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(), std::string(kIndex) +
                                           ": tensor \"norm\" is in both shard \"" + kShard1 +
                                           "\" and shard \"" + kShard2 + "\"");
}

TEST(SafetensorsShardedTest, ShardTensorNotInWeightMapIsDataLoss) {
  InMemoryEnv env;
  AddValidShards(&env);
  auto source = OpenSharded(
      &env, std::string(R"("head": ")") + kShard2 + R"(", "embed": ")" + kShard1 + R"(")");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(),
            std::string(kIndex) + ": shard \"" + kShard1 +
                "\" holds tensor \"norm\", which weight_map does not list");
}

TEST(SafetensorsShardedTest, WeightMapNamingTheWrongShardIsDataLoss) {
  InMemoryEnv env;
  AddValidShards(&env);
  // "norm" is in shard 1, but weight_map says shard 2 (which lacks it).
  auto source = OpenSharded(&env, std::string(R"("head": ")") + kShard2 + R"(", "embed": ")" +
                                      kShard1 + R"(", "norm": ")" + kShard2 + R"(")");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(),
            std::string(kIndex) + ": shard \"" + kShard1 +
                "\" holds tensor \"norm\", which weight_map assigns to shard \"" + kShard2 + "\"");
}

TEST(SafetensorsShardedTest, CorruptShardNamesTheShardFile) {
  InMemoryEnv env;
  AddValidShards(&env);
  env.AddFile(std::string("ckpt/") + kShard2, "short");
  auto source = OpenSharded(&env, kValidWeightMap);
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(), std::string("ckpt/") + kShard2 +
                                           ": file is 5 bytes, too short for the 8-byte header "
                                           "length");
}

TEST(SafetensorsShardedTest, ShardNameLeavingTheDirectoryIsDataLoss) {
  for (const char* name : {"../model.safetensors", "/etc/model.safetensors", "a/../../b", ""}) {
    InMemoryEnv env;
    AddValidShards(&env);
    auto source = OpenSharded(&env, std::string(R"("t": ")") + name + R"(")");
    ASSERT_FALSE(source.ok()) << name;
    EXPECT_TRUE(source.status().IsDataLoss()) << name;
    EXPECT_EQ(source.status().message(),
              std::string(kIndex) +
                  ": weight_map entry for tensor \"t\" must be a relative file "
                  "name inside the index's directory");
  }
}

TEST(SafetensorsShardedTest, MalformedIndexIsDataLoss) {
  const struct {
    std::string index;
    std::string message;
  } kCases[] = {
      {"[]", "index is an array, expected a JSON object"},
      {"{",
       "index is not valid JSON: JSON at byte 1: unexpected end of input, expected a string key"},
      {R"({"metadata": {}})", "missing \"weight_map\" object"},
      {R"({"weight_map": []})", "missing \"weight_map\" object"},
      {R"({"weight_map": {}})", "\"weight_map\" is empty"},
      {R"({"metadata": 3, "weight_map": {"a": "b"}})", "\"metadata\" is 3, expected an object"},
      {R"({"weight_map": {"a": 1}})",
       "weight_map entry for tensor \"a\" must be a relative file name inside the index's "
       "directory"},
  };
  for (const auto& c : kCases) {
    InMemoryEnv env;
    env.AddFile(kIndex, c.index);
    auto source = SafetensorsSource::OpenSharded(&env, kIndex);
    ASSERT_FALSE(source.ok()) << c.index;
    EXPECT_TRUE(source.status().IsDataLoss()) << c.index;
    EXPECT_EQ(source.status().message(), std::string(kIndex) + ": " + c.message) << c.index;
  }
}

TEST(SafetensorsShardedTest, ShardsDisagreeingOnMetadataAreDataLoss) {
  InMemoryEnv env;
  AddValidShards(&env);
  env.AddFile(
      std::string("ckpt/") + kShard2,
      SafetensorsWriter().Metadata("format", "tf").AddF32("head", {3}, {7.0f, 8.0f, 9.0f}).Build());
  auto source = OpenSharded(&env, kValidWeightMap);
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsDataLoss());
  EXPECT_EQ(source.status().message(),
            std::string(kIndex) + ": shard \"" + kShard2 +
                "\" has \"__metadata__\" key \"format\" = \"tf\", but an earlier shard has \"pt\"");
}

// ---- The real model ------------------------------------------------------

TEST(SafetensorsSourceTest, Stories260KOpensAndEveryTensorReads) {
  const std::string path =
      std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.safetensors";
  Env* env = Env::Default();
  if (!env->FileExists(path)) GTEST_SKIP() << path << " is missing";
  auto source = SafetensorsSource::Open(env, path);
  ASSERT_TRUE(source.ok()) << source.status();
  const SafetensorsSource& s = **source;
  EXPECT_EQ(s.metadata().at("format"), "pt");

  auto file = env->OpenForRead(path);
  ASSERT_TRUE(file.ok());
  std::array<std::byte, 8> prefix{};
  ASSERT_TRUE((*file)->ReadAt(0, prefix).ok());
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | std::to_integer<uint64_t>(prefix[i]);
  // The tensors tile the data section exactly.
  EXPECT_EQ(s.TotalBytes(), (*file)->size() - 8 - header_len);

  ASSERT_GT(s.tensors().size(), 40u);  // embedding + 5 layers x 9 + final norm
  for (size_t i = 0; i < s.tensors().size(); ++i) {
    const TensorInfo& t = s.tensors()[i];
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
    std::vector<std::byte> buf(t.byte_size);
    ASSERT_TRUE(s.ReadTensor(i, buf).ok()) << t.name;
  }
  const TensorInfo* embed = s.Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(embed->file_offset, 8 + header_len);
  std::vector<float> values(512 * 64);
  ASSERT_TRUE(s.ReadTensor(0, std::as_writable_bytes(std::span(values))).ok());
  EXPECT_FLOAT_EQ(values[0], -0.29474878311157227f);
  EXPECT_FLOAT_EQ(values[1], 0.5618956089019775f);
}

}  // namespace
}  // namespace relayout
