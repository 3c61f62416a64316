#include "engine/checkpoint/model_spec.h"

#include <gtest/gtest.h>

namespace relayout {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.head_dim = 8;
  c.rope_dim = 8;
  c.ffn_size = 172;
  c.vocab_size = 512;
  c.tie_word_embeddings = false;
  return c;
}

// The tensors a checkpoint of `config` has, as the spec says, in `scheme`.
std::vector<TensorInfo> TensorsFor(const ModelConfig& config, NamingScheme scheme) {
  const ModelSpec spec = ModelSpec::ForLlama(config);
  std::vector<TensorInfo> out;
  for (const ExpectedTensor& e : spec.tensors()) {
    if (!e.required) continue;
    TensorInfo t;
    t.name = ContainerTensorName(e.ref, scheme);
    t.dtype = DType::kF32;
    for (const std::string& d : e.dims) t.shape.push_back(spec.dim_values().at(d));
    t.byte_size = *ByteSizeOf(t.dtype, t.shape);
    out.push_back(t);
  }
  return out;
}

TensorInfo* Named(std::vector<TensorInfo>& tensors, const std::string& name) {
  for (TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return &tensors.front();
}

TEST(ModelSpecTest, ParsesBothNamingSchemesToOneRole) {
  const auto hf = ParseTensorName("model.layers.3.self_attn.q_proj.weight", NamingScheme::kHf);
  const auto gguf = ParseTensorName("blk.3.attn_q.weight", NamingScheme::kGguf);
  ASSERT_TRUE(hf && gguf);
  EXPECT_EQ(*hf, *gguf);
  EXPECT_EQ(hf->role, TensorRole::kAttnQ);
  EXPECT_EQ(hf->layer, 3);
  EXPECT_EQ(InternalTensorName(hf->role, hf->layer), "blk.3.attn_q");
  EXPECT_EQ(ParseTensorName("model.embed_tokens.weight", NamingScheme::kHf)->role,
            TensorRole::kTokenEmbd);
  EXPECT_EQ(ParseTensorName("output.weight", NamingScheme::kGguf)->role, TensorRole::kOutput);
  EXPECT_EQ(ParseTensorName("blk.0.ffn_down.bias", NamingScheme::kGguf)->role,
            TensorRole::kFfnDownBias);
}

TEST(ModelSpecTest, RejectsMalformedNames) {
  EXPECT_FALSE(ParseTensorName("blk.x.attn_q.weight", NamingScheme::kGguf));
  EXPECT_FALSE(ParseTensorName("blk.01.attn_q.weight", NamingScheme::kGguf));
  EXPECT_FALSE(ParseTensorName("blk.-1.attn_q.weight", NamingScheme::kGguf));
  EXPECT_FALSE(ParseTensorName("blk.1attn_q.weight", NamingScheme::kGguf));
  EXPECT_FALSE(ParseTensorName("model.layers.0.self_attn.q_proj.weight", NamingScheme::kGguf));
  EXPECT_FALSE(ParseTensorName("blk.0.attn_q.weight", NamingScheme::kHf));
}

TEST(ModelSpecTest, ContainerNamesRoundTrip) {
  for (NamingScheme scheme : {NamingScheme::kHf, NamingScheme::kGguf}) {
    for (const TensorInfo& t : TensorsFor(SmallConfig(), scheme)) {
      const auto ref = ParseTensorName(t.name, scheme);
      ASSERT_TRUE(ref) << t.name;
      EXPECT_EQ(ContainerTensorName(*ref, scheme), t.name);
    }
  }
}

TEST(ModelSpecTest, CompleteCheckpointBindsEveryTensorAndDim) {
  const ModelConfig config = SmallConfig();
  const auto tensors = TensorsFor(config, NamingScheme::kGguf);
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_TRUE(bound.ok()) << bound.status();
  EXPECT_EQ(bound->tensors.size(), tensors.size());
  EXPECT_EQ(bound->dims.at("vocab_size"), 512);
  EXPECT_EQ(bound->dims.at("kv_dim"), 32);
  const BoundTensor* q = bound->Find(TensorRole::kAttnQ, 1);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->internal_name, "blk.1.attn_q");
  EXPECT_EQ(tensors[q->source_index].name, "blk.1.attn_q.weight");
}

TEST(ModelSpecTest, TiedCheckpointMayOmitOrCarryTheHead) {
  ModelConfig config = SmallConfig();
  config.tie_word_embeddings = true;
  auto tensors = TensorsFor(config, NamingScheme::kHf);
  EXPECT_TRUE(BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kHf, "m").ok());
  tensors.push_back(TensorInfo{"lm_head.weight", DType::kF32, {512, 64}, 512 * 64 * 4, 0, 0});
  EXPECT_TRUE(BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kHf, "m").ok());
}

TEST(ModelSpecTest, MissingTensorIsNamedWithItsExpectedShape) {
  const ModelConfig config = SmallConfig();
  auto tensors = TensorsFor(config, NamingScheme::kHf);
  std::erase_if(tensors,
                [](const TensorInfo& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kHf, "m.safetensors");
  ASSERT_FALSE(bound.ok());
  EXPECT_EQ(bound.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(
      bound.status().message(),
      "m.safetensors: missing tensor \"model.layers.1.mlp.up_proj.weight\" (blk.1.ffn_up, expected "
      "[ffn_size=172, hidden_size=64])");
}

TEST(ModelSpecTest, ExtraTensorIsNamed) {
  const ModelConfig config = SmallConfig();
  auto tensors = TensorsFor(config, NamingScheme::kGguf);
  tensors.push_back(TensorInfo{"blk.7.attn_q.weight", DType::kF32, {64, 64}, 64 * 64 * 4, 0, 0});
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("unexpected tensor \"blk.7.attn_q.weight\""),
            std::string::npos)
      << bound.status();
  tensors.back().name = "vision_tower.weight";
  bound = BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find(
                "unexpected tensor \"vision_tower.weight\": not part of a Llama model"),
            std::string::npos)
      << bound.status();
}

TEST(ModelSpecTest, SharedDimMustBindToOneValueAcrossTensors) {
  const ModelConfig config = SmallConfig();
  auto tensors = TensorsFor(config, NamingScheme::kGguf);
  Named(tensors, "output.weight")->shape = {500, 64};
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_EQ(bound.status().message(),
            "m.gguf: tensor \"output.weight\" has shape [500, 64], expected [vocab_size=512, "
            "hidden_size=64]: "
            "vocab_size is 512 in \"token_embd.weight\" [512, 64]");
}

TEST(ModelSpecTest, DimsMustAgreeWithTheConfig) {
  ModelConfig config = SmallConfig();
  auto tensors = TensorsFor(config, NamingScheme::kGguf);
  config.ffn_size = 256;  // the checkpoint says 172
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_EQ(bound.status().message(),
            "m.gguf: tensor \"blk.0.ffn_gate.weight\" has shape [172, 64], but the config gives "
            "[ffn_size=256, hidden_size=64]");
}

TEST(ModelSpecTest, WrongRankAndDtypeAreRejected) {
  const ModelConfig config = SmallConfig();
  auto tensors = TensorsFor(config, NamingScheme::kGguf);
  Named(tensors, "blk.0.attn_norm.weight")->shape = {64, 1};
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find(
                "\"blk.0.attn_norm.weight\" has shape [64, 1], expected [hidden_size=64]"),
            std::string::npos);
  tensors = TensorsFor(config, NamingScheme::kGguf);
  Named(tensors, "blk.0.attn_k.weight")->dtype = DType::kI32;
  bound = BindModelSpec(ModelSpec::ForLlama(config), tensors, NamingScheme::kGguf, "m.gguf");
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("has dtype I32, not usable as attn_k"),
            std::string::npos);
}

TEST(ModelSpecTest, BiasesAreRequiredWhenTheConfigSaysSo) {
  ModelConfig config = SmallConfig();
  config.attention_bias = true;
  const auto without = TensorsFor(SmallConfig(), NamingScheme::kHf);
  Result<BoundModel> bound =
      BindModelSpec(ModelSpec::ForLlama(config), without, NamingScheme::kHf, "m");
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(
      bound.status().message().find("missing tensor \"model.layers.0.self_attn.q_proj.bias\""),
      std::string::npos);
  EXPECT_TRUE(BindModelSpec(ModelSpec::ForLlama(config), TensorsFor(config, NamingScheme::kHf),
                            NamingScheme::kHf, "m")
                  .ok());
}

}  // namespace
}  // namespace relayout
