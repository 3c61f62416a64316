#include "engine/checkpoint/model_config.h"

#include <gtest/gtest.h>

#include "engine/checkpoint/gguf_metadata.h"
#include "engine/checkpoint/weight_source.h"
#include "engine/text/json.h"

namespace relayout {
namespace {

constexpr const char* kStoriesConfig = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512,
  "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
  "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8,
  "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "rope_scaling": null, "hidden_act": "silu", "tie_word_embeddings": true,
  "attention_bias": false, "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2})";

Result<ModelConfig> FromText(const std::string& text) {
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) return json.status();
  return ModelConfigFromHfJson(*json, "config.json");
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return text.replace(pos, from.size(), to);
}

TEST(ModelConfigTest, HfConfigReadsEveryField) {
  Result<ModelConfig> c = FromText(kStoriesConfig);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_layers, 5);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->rope_dim, 8);
  EXPECT_EQ(c->ffn_size, 172);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->context_length, 512);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c->q_dim(), 64);
  EXPECT_EQ(c->kv_dim(), 32);
}

TEST(ModelConfigTest, HfDefaultsKvHeadsAndHeadDim) {
  std::string text = Replace(kStoriesConfig, R"("num_key_value_heads": 4, "head_dim": 8,)", "");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 8);
}

TEST(ModelConfigTest, HfLlama3RopeScaling) {
  std::string text =
      Replace(kStoriesConfig, R"("rope_scaling": null)",
              R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
}

TEST(ModelConfigTest, HfLinearRopeScalingAndEosList) {
  std::string text = Replace(kStoriesConfig, R"("rope_scaling": null)",
                             R"("rope_scaling": {"type": "linear", "factor": 2.0})");
  text = Replace(text, R"("eos_token_id": 2)", R"("eos_token_id": [2, 7])");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 2.0);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2, 7}));
}

TEST(ModelConfigTest, HfDynamicRopeScaling) {
  Result<ModelConfig> c =
      FromText(Replace(kStoriesConfig, R"("rope_scaling": null)",
                       R"("rope_scaling": {"type": "dynamic", "factor": 2.0})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kDynamic);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 2.0);
  EXPECT_EQ(RopeScalingName(c->rope_scaling.type), "dynamic");
  // Served unscaled, so sequences stay within the trained context.
  EXPECT_EQ(c->context_length, 512);
}

TEST(ModelConfigTest, HfHeadDimApartFromHiddenOverHeads) {
  // Qwen3/Gemma-style: 8 heads of 16 over a hidden size of 64.
  Result<ModelConfig> c =
      FromText(Replace(kStoriesConfig, R"("head_dim": 8)", R"("head_dim": 16)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope_dim, 16);
  EXPECT_EQ(c->q_dim(), 128);
  EXPECT_EQ(c->kv_dim(), 64);
}

TEST(ModelConfigTest, HfUntiedAndBiasFlags) {
  std::string text =
      Replace(kStoriesConfig, R"("tie_word_embeddings": true)", R"("tie_word_embeddings": false)");
  text = Replace(text, R"("attention_bias": false, "mlp_bias": false)",
                 R"("attention_bias": true, "mlp_bias": true)");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->mlp_bias);
}

// Qwen2's config names no attention_bias, yet its q/k/v projections have
// biases; a sliding window is off unless use_sliding_window says so.
TEST(ModelConfigTest, HfQwen2HasQkvBiases) {
  std::string text =
      Replace(kStoriesConfig, R"("model_type": "llama")", R"("model_type": "qwen2")");
  text = Replace(text, R"("attention_bias": false, "mlp_bias": false)",
                 R"("use_sliding_window": false, "sliding_window": 64)");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_EQ(c->context_length, 512);

  c = FromText(Replace(text, R"("use_sliding_window": false)", R"("use_sliding_window": true)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_length, 64);
}

TEST(ModelConfigTest, HfMistralSlidingWindowCapsTheContext) {
  std::string text =
      Replace(kStoriesConfig, R"("model_type": "llama")", R"("model_type": "mistral")");
  text = Replace(text, R"("mlp_bias": false)", R"("mlp_bias": false, "sliding_window": 128)");
  Result<ModelConfig> c = FromText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_length, 128);
  EXPECT_FALSE(c->attention_bias);

  c = FromText(Replace(text, R"("sliding_window": 128)", R"("sliding_window": null)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_length, 512);
}

struct BadConfigCase {
  const char* from;
  const char* to;
  StatusCode code;
  const char* message_part;
};

void PrintTo(const BadConfigCase& c, std::ostream* os) { *os << c.message_part; }

class BadHfConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadHfConfigTest, IsRejectedNamingTheField) {
  const BadConfigCase& c = GetParam();
  Result<ModelConfig> r = FromText(Replace(kStoriesConfig, c.from, c.to));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), c.code) << r.status();
  EXPECT_NE(r.status().message().find(c.message_part), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("config.json"), std::string::npos) << r.status();
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadHfConfigTest,
    ::testing::Values(BadConfigCase{R"("hidden_size": 64,)", "", StatusCode::kInvalidArgument,
                                    "\"hidden_size\" is missing"},
                      BadConfigCase{R"("hidden_size": 64)", R"("hidden_size": "64")",
                                    StatusCode::kInvalidArgument,
                                    "\"hidden_size\" must be an integer"},
                      BadConfigCase{R"("num_key_value_heads": 4)", R"("num_key_value_heads": 3)",
                                    StatusCode::kInvalidArgument,
                                    "num_kv_heads is 3, must divide num_heads (8)"},
                      BadConfigCase{R"("vocab_size": 512)", R"("vocab_size": 0)",
                                    StatusCode::kInvalidArgument, "vocab_size is 0"},
                      BadConfigCase{R"("head_dim": 8)", R"("head_dim": 7)",
                                    StatusCode::kInvalidArgument, "head_dim is 7"},
                      BadConfigCase{R"("model_type": "llama")", R"("model_type": "gpt2")",
                                    StatusCode::kUnimplemented, "model_type \"gpt2\""},
                      BadConfigCase{R"("hidden_act": "silu")", R"("hidden_act": "gelu")",
                                    StatusCode::kUnimplemented, "hidden_act"},
                      BadConfigCase{R"("rope_scaling": null)",
                                    R"("rope_scaling": {"rope_type": "yarn", "factor": 4})",
                                    StatusCode::kUnimplemented, "rope_scaling type \"yarn\""},
                      BadConfigCase{R"("rms_norm_eps": 1e-05)", R"("rms_norm_eps": -1)",
                                    StatusCode::kInvalidArgument, "rms_eps"},
                      BadConfigCase{R"("eos_token_id": 2)", R"("eos_token_id": 900)",
                                    StatusCode::kInvalidArgument, "eos_token_id is 900"},
                      BadConfigCase{R"("tie_word_embeddings": true)", R"("tie_word_embeddings": 1)",
                                    StatusCode::kInvalidArgument,
                                    "\"tie_word_embeddings\" must be true or false"}));

GgufMetadata StoriesMetadata() {
  GgufMetadata md;
  auto u32 = [](uint64_t v) { return GgufValue::Unsigned(GgufType::kUint32, v); };
  EXPECT_TRUE(md.Add("general.architecture", GgufValue::String("llama")).ok());
  EXPECT_TRUE(md.Add("llama.embedding_length", u32(64)).ok());
  EXPECT_TRUE(md.Add("llama.block_count", u32(5)).ok());
  EXPECT_TRUE(md.Add("llama.attention.head_count", u32(8)).ok());
  EXPECT_TRUE(md.Add("llama.attention.head_count_kv", u32(4)).ok());
  EXPECT_TRUE(md.Add("llama.feed_forward_length", u32(172)).ok());
  EXPECT_TRUE(md.Add("llama.context_length", u32(128)).ok());
  EXPECT_TRUE(md.Add("llama.rope.dimension_count", u32(8)).ok());
  EXPECT_TRUE(
      md.Add("llama.attention.layer_norm_rms_epsilon", GgufValue::Float(GgufType::kFloat32, 1e-5))
          .ok());
  EXPECT_TRUE(md.Add("tokenizer.ggml.bos_token_id", u32(1)).ok());
  EXPECT_TRUE(md.Add("tokenizer.ggml.eos_token_id", u32(2)).ok());
  return md;
}

std::vector<TensorInfo> EmbeddingOnly(bool with_output) {
  std::vector<TensorInfo> t;
  t.push_back(TensorInfo{"token_embd.weight", DType::kF32, {512, 64}, 512 * 64 * 4, 0, 0});
  if (with_output)
    t.push_back(TensorInfo{"output.weight", DType::kF32, {512, 64}, 512 * 64 * 4, 0, 0});
  return t;
}

TEST(ModelConfigTest, GgufMetadataReadsEveryField) {
  Result<ModelConfig> c = ModelConfigFromGguf(StoriesMetadata(), EmbeddingOnly(true), "model.gguf");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_layers, 5);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->ffn_size, 172);
  EXPECT_EQ(c->vocab_size, 512);  // from token_embd.weight: no vocab_size key, no tokens
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
}

TEST(ModelConfigTest, GgufTiesEmbeddingsWhenOutputIsAbsent) {
  Result<ModelConfig> c =
      ModelConfigFromGguf(StoriesMetadata(), EmbeddingOnly(false), "model.gguf");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tie_word_embeddings);
}

TEST(ModelConfigTest, GgufRejectsOtherArchitectures) {
  GgufMetadata md;
  ASSERT_TRUE(md.Add("general.architecture", GgufValue::String("falcon")).ok());
  Result<ModelConfig> c = ModelConfigFromGguf(md, {}, "model.gguf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("architecture \"falcon\""), std::string::npos);
}

TEST(ModelConfigTest, GgufMissingKeyIsNamed) {
  GgufMetadata md;
  ASSERT_TRUE(md.Add("general.architecture", GgufValue::String("llama")).ok());
  Result<ModelConfig> c = ModelConfigFromGguf(md, {}, "model.gguf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "model.gguf: metadata key \"llama.embedding_length\" is missing");
}

TEST(ModelConfigTest, GgufWrongTypeIsNamed) {
  GgufMetadata md = StoriesMetadata();
  GgufMetadata bad;
  for (const auto& [k, v] : md.entries()) {
    ASSERT_TRUE(bad.Add(k, k == "llama.block_count" ? GgufValue::String("5") : v).ok());
  }
  Result<ModelConfig> c = ModelConfigFromGguf(bad, EmbeddingOnly(true), "model.gguf");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("\"llama.block_count\" is STRING, expected an integer"),
            std::string::npos)
      << c.status();
}

TEST(ModelConfigTest, GgufRopeFreqsTensorMeansLlama3) {
  std::vector<TensorInfo> t = EmbeddingOnly(true);
  t.push_back(TensorInfo{"rope_freqs.weight", DType::kF32, {4}, 16, 0, 0});
  Result<ModelConfig> c = ModelConfigFromGguf(StoriesMetadata(), t, "model.gguf");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_TRUE(c->rope_scaling.from_freq_factors_tensor);
}

}  // namespace
}  // namespace relayout
