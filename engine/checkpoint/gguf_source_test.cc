#include "engine/checkpoint/gguf_source.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "engine/checkpoint/gguf_test_util.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout {
namespace {

using testing::GgufTestFile;
using testing::GgufTestLayout;
using testing::GgufTestTensor;
using testing::PatchLe;
using testing::SerializeGguf;

constexpr char kPath[] = "model.gguf";
constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2;

GgufValue U32(uint64_t v) { return GgufValue::Unsigned(GgufType::kUint32, v); }
GgufValue Str(std::string s) { return GgufValue::String(std::move(s)); }

// A small valid file: four metadata entries, three tensors of three types.
GgufTestFile BaseFile() {
  GgufTestFile f;
  f.kvs = {
      {"general.architecture", Str("llama")},
      {"general.alignment", U32(32)},
      {"llama.embedding_length", U32(8)},
      {"tokenizer.ggml.tokens", GgufValue::Array(GgufType::kString, {Str("<s>"), Str("a")})},
  };
  f.tensors = {
      {"token_embd.weight", kF32, {8, 4}, {}, {}},      // 128 bytes at 0
      {"blk.0.attn_q.weight", kQ4_0, {32, 2}, {}, {}},  // 36 bytes at 128
      {"output_norm.weight", kF16, {8}, {}, {}},        // 16 bytes at 192
  };
  return f;
}

Result<std::unique_ptr<GgufSource>> OpenBytes(std::string bytes) {
  InMemoryEnv env;
  env.AddFile(kPath, std::move(bytes));
  return GgufSource::Open(&env, kPath);
}

::testing::AssertionResult HasError(const Status& s, StatusCode code,
                                    const std::vector<std::string>& parts) {
  if (s.code() != code) {
    return ::testing::AssertionFailure()
           << "expected " << StatusCodeName(code) << ", got " << s.ToString();
  }
  for (const std::string& part : parts) {
    if (s.message().find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << s.message();
    }
  }
  if (s.message().find('\n') != std::string::npos) {
    return ::testing::AssertionFailure() << "message is not one line: " << s.message();
  }
  return ::testing::AssertionSuccess();
}

TEST(GgufSourceTest, OpensValidFileWithShapesOutermostFirst) {
  GgufTestLayout layout;
  const std::string bytes = SerializeGguf(BaseFile(), &layout);
  auto source = OpenBytes(bytes);
  ASSERT_TRUE(source.ok()) << source.status();
  const GgufSource& s = **source;
  EXPECT_EQ(s.format(), CheckpointFormat::kGguf);
  EXPECT_EQ(s.version(), 3u);
  EXPECT_EQ(s.alignment(), 32u);
  EXPECT_EQ(s.data_offset(), layout.data_offset);
  EXPECT_EQ(s.paths(), std::vector<std::string>{kPath});
  EXPECT_EQ(*s.metadata().GetString("general.architecture"), "llama");
  EXPECT_EQ(*s.metadata().GetUint("llama.embedding_length"), 8u);
  ASSERT_EQ(s.tensors().size(), 3u);
  const TensorInfo& embd = s.tensors()[0];
  EXPECT_EQ(embd.name, "token_embd.weight");
  EXPECT_EQ(embd.dtype, DType::kF32);
  EXPECT_EQ(embd.shape, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(embd.byte_size, 128u);
  EXPECT_EQ(embd.file_offset, layout.data_offset);
  EXPECT_EQ(s.tensors()[1].dtype, DType::kQ4_0);
  EXPECT_EQ(s.tensors()[1].shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(s.tensors()[1].byte_size, 36u);
  EXPECT_EQ(s.tensors()[1].file_offset, layout.data_offset + 128);
  EXPECT_EQ(s.tensors()[2].dtype, DType::kF16);
  EXPECT_EQ(s.tensors()[2].byte_size, 16u);
  for (size_t i = 0; i < 3; ++i) {
    const TensorInfo& t = s.tensors()[i];
    std::string buf(t.byte_size, '\0');
    ASSERT_TRUE(s.ReadTensor(i, std::as_writable_bytes(std::span(buf))).ok());
    EXPECT_EQ(buf, bytes.substr(t.file_offset, t.byte_size)) << t.name;
  }
}

TEST(GgufSourceTest, TensorsAreListedByOffsetNotHeaderOrder) {
  GgufTestFile f = BaseFile();
  f.tensors[0].offset = 64;  // token_embd after blk.0 (36 bytes at 0)
  f.tensors[1].offset = 0;
  f.tensors[2].offset = 192;
  auto source = OpenBytes(SerializeGguf(f));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->tensors()[0].name, "blk.0.attn_q.weight");
  EXPECT_EQ((*source)->tensors()[1].name, "token_embd.weight");
}

TEST(GgufSourceTest, DefaultAlignmentIs32AndVersion2Reads) {
  GgufTestFile f = BaseFile();
  f.version = 2;
  f.kvs.erase(f.kvs.begin() + 1);
  auto source = OpenBytes(SerializeGguf(f));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->version(), 2u);
  EXPECT_EQ((*source)->alignment(), 32u);
}

TEST(GgufSourceTest, LargerAlignmentIsHonoured) {
  GgufTestFile f = BaseFile();
  f.kvs[1].second = U32(256);
  f.alignment = 256;
  GgufTestLayout layout;
  auto source = OpenBytes(SerializeGguf(f, &layout));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->alignment(), 256u);
  EXPECT_EQ((*source)->data_offset() % 256, 0u);
  EXPECT_EQ((*source)->tensors()[1].file_offset, layout.data_offset + 256);
}

TEST(GgufSourceTest, VocabOnlyFileWithoutPaddingOpens) {
  GgufTestFile f = BaseFile();
  f.tensors.clear();
  GgufTestLayout layout;
  std::string bytes = SerializeGguf(f, &layout);
  bytes.resize(layout.tensor_infos_end);
  auto source = OpenBytes(bytes);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->tensors().empty());
  EXPECT_EQ((*source)->TotalBytes(), 0u);
}

TEST(GgufSourceTest, ReadTensorChecksIndexAndDestinationSize) {
  auto source = OpenBytes(SerializeGguf(BaseFile()));
  ASSERT_TRUE(source.ok());
  std::vector<std::byte> buf(127);
  EXPECT_TRUE(HasError((*source)->ReadTensor(0, buf), StatusCode::kInvalidArgument,
                       {"model.gguf", "token_embd.weight", "128 bytes", "127"}));
  EXPECT_TRUE(HasError((*source)->ReadTensor(3, buf), StatusCode::kOutOfRange,
                       {"model.gguf", "tensor index 3"}));
}

TEST(GgufSourceTest, EveryValueTypeRoundTripsIncludingNestedArrays) {
  using T = GgufType;
  const double nan = std::nan("");
  std::vector<GgufValue> inner_u8 = {GgufValue::Unsigned(T::kUint8, 1),
                                     GgufValue::Unsigned(T::kUint8, 255)};
  std::vector<GgufValue> inner_str = {Str(""), Str("x y")};
  GgufTestFile f;
  f.kvs = {
      {"u8", GgufValue::Unsigned(T::kUint8, 255)},
      {"i8", GgufValue::Signed(T::kInt8, -128)},
      {"u16", GgufValue::Unsigned(T::kUint16, 65535)},
      {"i16", GgufValue::Signed(T::kInt16, -32768)},
      {"u32", GgufValue::Unsigned(T::kUint32, 4294967295u)},
      {"i32", GgufValue::Signed(T::kInt32, -2147483647 - 1)},
      {"f32", GgufValue::Float(T::kFloat32, -1.5)},
      {"f32.nan", GgufValue::Float(T::kFloat32, nan)},
      {"bool.t", GgufValue::Bool(true)},
      {"bool.f", GgufValue::Bool(false)},
      {"str", Str("héllo\n")},
      {"str.empty", Str("")},
      {"u64", GgufValue::Unsigned(T::kUint64, UINT64_MAX)},
      {"i64", GgufValue::Signed(T::kInt64, INT64_MIN)},
      {"f64", GgufValue::Float(T::kFloat64, 1e300)},
      {"arr.empty", GgufValue::Array(T::kInt32, {})},
      {"arr.f32", GgufValue::Array(T::kFloat32, {GgufValue::Float(T::kFloat32, 0.25)})},
      {"arr.bool", GgufValue::Array(T::kBool, {GgufValue::Bool(true), GgufValue::Bool(false)})},
      {"arr.nested", GgufValue::Array(T::kArray, {GgufValue::Array(T::kUint8, inner_u8),
                                                  GgufValue::Array(T::kString, inner_str),
                                                  GgufValue::Array(T::kArray, {})})},
  };
  GgufValue deep = GgufValue::Array(T::kUint8, inner_u8);
  for (int i = 1; i < GgufSource::kMaxArrayNesting; ++i) deep = GgufValue::Array(T::kArray, {deep});
  f.kvs.emplace_back("arr.deepest_allowed", deep);
  auto source = OpenBytes(SerializeGguf(f));
  ASSERT_TRUE(source.ok()) << source.status();
  const GgufMetadata& m = (*source)->metadata();
  ASSERT_EQ(m.size(), f.kvs.size());
  for (size_t i = 0; i < f.kvs.size(); ++i) {
    const auto& [key, want] = f.kvs[i];
    EXPECT_EQ(m.entries()[i].first, key);
    EXPECT_EQ(m.entries()[i].second.type(), want.type()) << key;
    EXPECT_EQ(m.entries()[i].second.ToString(100), want.ToString(100)) << key;
  }
  EXPECT_EQ(*m.Find("i8")->AsInt(), -128);
  EXPECT_EQ(*m.Find("i64")->AsInt(), INT64_MIN);
  EXPECT_EQ(*m.Find("u64")->AsUint(), UINT64_MAX);
  EXPECT_FALSE(m.Find("u64")->AsInt().has_value());
  EXPECT_FALSE(m.Find("i8")->AsUint().has_value());
  EXPECT_EQ(*m.GetFloat("f32"), -1.5);
  EXPECT_TRUE(std::isnan(*m.GetFloat("f32.nan")));
  EXPECT_EQ(*m.GetFloat("f64"), 1e300);
  EXPECT_EQ(*m.GetBool("bool.t"), true);
  EXPECT_EQ(*m.GetString("str"), "héllo\n");
  const std::vector<GgufValue>& nested = *m.Find("arr.nested")->AsArray();
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[0].array_type(), T::kUint8);
  EXPECT_EQ(*(*nested[0].AsArray())[1].AsUint(), 255u);
  EXPECT_EQ(*(*nested[1].AsArray())[1].AsString(), "x y");
  EXPECT_EQ(m.Find("arr.nested")->ToString(),
            "ARRAY[3] [UINT8[2] [1, 255], STRING[2] [\"\", \"x y\"], ARRAY[0] []]");
}

TEST(GgufMetadataTest, TypedLookupsNameKeyAndType) {
  GgufMetadata m;
  ASSERT_TRUE(m.Add("a", U32(7)).ok());
  ASSERT_TRUE(m.Add("neg", GgufValue::Signed(GgufType::kInt32, -5)).ok());
  EXPECT_TRUE(HasError(m.Add("a", U32(8)), StatusCode::kInvalidArgument, {"\"a\"", "duplicate"}));
  EXPECT_TRUE(
      HasError(m.GetUint("b").status(), StatusCode::kNotFound, {"metadata key \"b\" is missing"}));
  EXPECT_TRUE(HasError(m.GetString("a").status(), StatusCode::kInvalidArgument,
                       {"metadata key \"a\" is UINT32, expected STRING"}));
  EXPECT_TRUE(
      HasError(m.GetUint("neg").status(), StatusCode::kInvalidArgument, {"\"neg\" is INT32 -5"}));
  EXPECT_EQ(*m.GetFloat("a"), 7.0);
  EXPECT_EQ(GgufTypeName(static_cast<GgufType>(99)), "UNKNOWN");
}

TEST(GgufSourceTest, InjectedReadErrorInHeaderIsReported) {
  InMemoryEnv env;
  env.AddFile(kPath, SerializeGguf(BaseFile()));
  env.InjectReadError(kPath, 40);
  auto source = GgufSource::Open(&env, kPath);
  EXPECT_TRUE(
      HasError(source.status(), StatusCode::kUnavailable, {"model.gguf", "injected read error"}));
}

TEST(GgufSourceTest, InjectedReadErrorInDataFailsReadTensorNamingIt) {
  // A data section past the first header chunk, so only the tensor read fails.
  GgufTestFile f = BaseFile();
  f.tensors.push_back({"big.weight", kF32, {1 << 19}, {}, {}});  // 2 MiB
  GgufTestLayout layout;
  std::string bytes = SerializeGguf(f, &layout);
  InMemoryEnv env;
  const uint64_t size = bytes.size();
  env.AddFile(kPath, std::move(bytes));
  env.InjectReadError(kPath, size - 100);
  auto source = GgufSource::Open(&env, kPath);
  ASSERT_TRUE(source.ok()) << source.status();
  const TensorInfo* big = (*source)->Find("big.weight");
  ASSERT_NE(big, nullptr);
  std::vector<std::byte> buf(big->byte_size);
  EXPECT_TRUE(HasError((*source)->ReadTensor(3, buf), StatusCode::kUnavailable,
                       {"reading tensor \"big.weight\"", "model.gguf", "injected"}));
  std::vector<std::byte> small(128);
  EXPECT_TRUE((*source)->ReadTensor(0, small).ok());
}

TEST(GgufSourceTest, MissingFileIsNotFound) {
  InMemoryEnv env;
  EXPECT_TRUE(
      HasError(GgufSource::Open(&env, "nope.gguf").status(), StatusCode::kNotFound, {"nope.gguf"}));
}

TEST(GgufSourceTest, GgmlTypeIdsMapBothWays) {
  const std::map<uint32_t, DType> want = {
      {0, DType::kF32},   {1, DType::kF16},     {2, DType::kQ4_0},  {3, DType::kQ4_1},
      {6, DType::kQ5_0},  {7, DType::kQ5_1},    {8, DType::kQ8_0},  {10, DType::kQ2_K},
      {11, DType::kQ3_K}, {12, DType::kQ4_K},   {13, DType::kQ5_K}, {14, DType::kQ6_K},
      {15, DType::kQ8_K}, {20, DType::kIQ4_NL}, {24, DType::kI8},   {25, DType::kI16},
      {26, DType::kI32},  {27, DType::kI64},    {28, DType::kF64},  {30, DType::kBF16}};
  for (uint32_t id = 0; id < 64; ++id) {
    auto it = want.find(id);
    EXPECT_EQ(DTypeFromGgmlType(id), it == want.end() ? std::nullopt : std::optional(it->second))
        << id;
    if (it != want.end()) {
      EXPECT_EQ(GgmlTypeFromDType(it->second), id);
    }
  }
  EXPECT_EQ(GgmlTypeFromDType(DType::kU32), std::nullopt);
  EXPECT_EQ(GgmlTypeName(3), "Q4_1");
  EXPECT_EQ(GgmlTypeName(16), "IQ2_XXS");
  EXPECT_EQ(GgmlTypeName(4), "");  // removed from ggml
}

}  // namespace
}  // namespace relayout
