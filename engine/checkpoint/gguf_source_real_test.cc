// GgufSource on the real checkpoints under RELAYOUT_SHARED_DIR/models, and on
// SmolLM2-135M-Instruct.Q4_1.gguf when RELAYOUT_SMOLLM2_GGUF names it.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "engine/checkpoint/gguf_source.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout {
namespace {

namespace fs = std::filesystem;
namespace ref = kernels::reference;

const std::string kModels = std::string(RELAYOUT_SHARED_DIR) + "/models";

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

std::vector<std::string> SharedGgufFiles() {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(kModels, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && it->path().extension() == ".gguf") out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::unique_ptr<GgufSource>> OpenShared(const std::string& relative) {
  return GgufSource::Open(Env::Default(), kModels + "/" + relative);
}

#define SKIP_WITHOUT_MODELS()                                                 \
  do {                                                                        \
    if (!fs::is_directory(kModels)) GTEST_SKIP() << kModels << " is missing"; \
  } while (0)

TEST(GgufRealFileTest, EverySharedGgufOpensAndEveryTensorReads) {
  SKIP_WITHOUT_MODELS();
  const std::vector<std::string> files = SharedGgufFiles();
  EXPECT_GE(files.size(), 5u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto source = GgufSource::Open(Env::Default(), path);
    ASSERT_TRUE(source.ok()) << source.status();
    const GgufSource& s = **source;
    EXPECT_EQ(s.version(), 3u);
    EXPECT_TRUE(s.metadata().GetString("general.architecture").ok());
    for (size_t i = 0; i < s.tensors().size(); ++i) {
      std::vector<std::byte> buf(s.tensors()[i].byte_size);
      ASSERT_TRUE(s.ReadTensor(i, buf).ok()) << s.tensors()[i].name;
    }
  }
}

TEST(GgufRealFileTest, Stories260KHasItsTensorsAndConfig) {
  SKIP_WITHOUT_MODELS();
  auto source = OpenShared("stories260K/model.gguf");
  ASSERT_TRUE(source.ok()) << source.status();
  const GgufSource& s = **source;
  EXPECT_EQ(s.tensors().size(), 48u);
  EXPECT_EQ(*s.metadata().GetUint("llama.embedding_length"), 64u);
  EXPECT_EQ(*s.metadata().GetString("general.architecture"), "llama");
  const TensorInfo* embd = s.Find("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dtype, DType::kF32);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(embd->byte_size, 512u * 64 * 4);
  for (const TensorInfo& t : s.tensors()) EXPECT_EQ(t.dtype, DType::kF32) << t.name;
  // Real weights: finite and not all zero.
  std::vector<float> w(512 * 64);
  ASSERT_TRUE(s.ReadTensor(embd - s.tensors().data(), std::as_writable_bytes(std::span(w))).ok());
  double sum_sq = 0;
  for (float x : w) {
    ASSERT_TRUE(std::isfinite(x));
    sum_sq += x * x;
  }
  EXPECT_GT(sum_sq, 1.0);
}

TEST(GgufRealFileTest, TinyRandomIsF16) {
  SKIP_WITHOUT_MODELS();
  auto source = OpenShared("tiny-random/llama-2-tiny-random.gguf");
  ASSERT_TRUE(source.ok()) << source.status();
  size_t f16 = 0;
  for (const TensorInfo& t : (*source)->tensors()) f16 += t.dtype == DType::kF16;
  EXPECT_GT(f16, 0u);
}

TEST(GgufRealFileTest, VocabOnlyGgufHasNoTensorsAndItsTokens) {
  SKIP_WITHOUT_MODELS();
  auto source = OpenShared("tokenizers/llama-spm-vocab/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->tensors().empty());
  const GgufValue* tokens = (*source)->metadata().Find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_NE(tokens->AsArray(), nullptr);
  EXPECT_EQ(tokens->AsArray()->size(), 32000u);
  EXPECT_EQ(*(*tokens->AsArray())[1].AsString(), "<s>");
}

// SmolLM2-135M-Instruct.Q4_1.gguf: a 2 MB header of tokenizer metadata and
// three tensor types. Set RELAYOUT_SMOLLM2_GGUF to its path to run.
class SmolLm2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("RELAYOUT_SMOLLM2_GGUF");
    if (path == nullptr || *path == '\0') GTEST_SKIP() << "RELAYOUT_SMOLLM2_GGUF is not set";
    path_ = path;
  }
  std::string path_;
};

TEST_F(SmolLm2Test, OpensQuicklyWithItsTensorTypes) {
  const auto start = std::chrono::steady_clock::now();
  auto source = GgufSource::Open(Env::Default(), path_);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(source.ok()) << source.status();
  const GgufSource& s = **source;
  std::map<DType, int> by_type;
  for (const TensorInfo& t : s.tensors()) ++by_type[t.dtype];
  EXPECT_EQ(s.tensors().size(), 272u);
  EXPECT_EQ(by_type[DType::kQ4_1], 210);
  EXPECT_EQ(by_type[DType::kF32], 61);
  EXPECT_EQ(by_type[DType::kQ8_0], 1);
  const TensorInfo* embd = s.Find("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dtype, DType::kQ8_0);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(*s.metadata().GetUint("llama.embedding_length"), 576u);
  const GgufValue* tokens = s.metadata().Find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->AsArray()->size(), 49152u);
  std::cout << "SmolLM2 header parsed in " << ms << " ms\n";
  if (!kSanitized) {
    EXPECT_LT(ms, 100.0);
  }
}

TEST_F(SmolLm2Test, DequantizedWeightsAreFinite) {
  auto source = GgufSource::Open(Env::Default(), path_);
  ASSERT_TRUE(source.ok()) << source.status();
  const GgufSource& s = **source;
  std::vector<std::byte> raw;
  std::vector<float> row;
  int checked = 0;
  for (size_t i = 0; i < s.tensors().size(); ++i) {
    const TensorInfo& t = s.tensors()[i];
    if (t.dtype != DType::kQ4_1 && t.dtype != DType::kQ8_0) continue;
    raw.resize(t.byte_size);
    ASSERT_TRUE(s.ReadTensor(i, raw).ok()) << t.name;
    const int64_t cols = t.shape.back();
    const uint64_t row_bytes = cols / 32 * (t.dtype == DType::kQ4_1 ? 20 : 34);
    const uint64_t rows = t.byte_size / row_bytes;
    row.resize(cols);
    double sum_abs = 0;
    for (uint64_t r = 0; r < rows; ++r) {
      const std::byte* src = raw.data() + r * row_bytes;
      if (t.dtype == DType::kQ4_1) {
        ref::DequantizeRowQ4_1(src, row.data(), cols);
      } else {
        ref::DequantizeRowQ8_0(src, row.data(), cols);
      }
      for (float x : row) {
        ASSERT_TRUE(std::isfinite(x)) << t.name << " row " << r;
        sum_abs += std::fabs(x);
      }
    }
    EXPECT_GT(sum_abs, 0.0) << t.name;
    ++checked;
  }
  EXPECT_EQ(checked, 211);
}

}  // namespace
}  // namespace relayout
