#include "engine/checkpoint/hf_side_files.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/checkpoint/checkpoint.h"
#include "engine/text/json.h"

namespace relayout {
namespace {

Result<HfTokenizerConfig> TokConfig(const std::string& text) {
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) return json.status();
  return HfTokenizerConfigFromJson(*json, "tokenizer_config.json");
}

Result<HfGenerationConfig> GenConfig(const std::string& text) {
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) return json.status();
  return HfGenerationConfigFromJson(*json, "generation_config.json");
}

TEST(HfSideFilesTest, SpecialTokensAsStringsOrAddedTokens) {
  Result<HfTokenizerConfig> c = TokConfig(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "special": true},
    "eos_token": "</s>", "unk_token": null, "pad_token": {"content": "<pad>"},
    "add_bos_token": true, "add_eos_token": false, "model_max_length": 2048,
    "chat_template": "{{ messages }}"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bos_token, "<s>");
  EXPECT_EQ(c->eos_token, "</s>");
  EXPECT_FALSE(c->unk_token.has_value());
  EXPECT_EQ(c->pad_token, "<pad>");
  EXPECT_EQ(c->add_bos_token, true);
  EXPECT_EQ(c->add_eos_token, false);
  ASSERT_NE(c->FindChatTemplate(), nullptr);
  EXPECT_EQ(c->FindChatTemplate()->source, "{{ messages }}");
}

TEST(HfSideFilesTest, NamedChatTemplates) {
  Result<HfTokenizerConfig> c = TokConfig(R"({"chat_template": [
    {"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]})");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->chat_templates.size(), 2u);
  EXPECT_EQ(c->FindChatTemplate("tool_use")->source, "B");
  EXPECT_EQ(c->FindChatTemplate("default")->source, "A");
  EXPECT_EQ(c->FindChatTemplate("rag"), nullptr);
  EXPECT_FALSE(c->add_bos_token.has_value());
}

TEST(HfSideFilesTest, TokenizerConfigWrongTypesAreNamed) {
  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"bos_token": 1})", "\"bos_token\""},
           {R"({"eos_token": {"id": 2}})", "\"eos_token\""},
           {R"({"add_bos_token": "yes"})", "\"add_bos_token\""},
           {R"({"chat_template": [{"name": "x"}]})", "\"chat_template\""},
           {R"({"chat_template": 3})", "\"chat_template\""}}) {
    Result<HfTokenizerConfig> c = TokConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_TRUE(c.status().IsInvalidArgument()) << c.status();
    EXPECT_NE(c.status().message().find("tokenizer_config.json: key " + key), std::string::npos)
        << c.status();
  }
}

TEST(HfSideFilesTest, GenerationConfigEosAndSampling) {
  Result<HfGenerationConfig> c = GenConfig(R"({"bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "do_sample": true, "temperature": 0.6,
    "top_p": 0.9, "top_k": 20, "transformers_version": "4.45.0"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FLOAT_EQ(*c->sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(*c->sampling.top_p, 0.9f);
  EXPECT_EQ(c->sampling.top_k, 20);

  c = GenConfig(R"({"eos_token_id": 2, "pad_token_id": 2})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(c->sampling.temperature || c->sampling.top_p || c->sampling.top_k);
}

TEST(HfSideFilesTest, GenerationConfigOutOfRangeIsNamed) {
  for (const auto& [text, part] : std::vector<std::pair<std::string, std::string>>{
           {R"({"temperature": -1})", "\"temperature\" is -1, must be >= 0"},
           {R"({"top_p": 0})", "\"top_p\" is 0, must be in (0, 1]"},
           {R"({"top_p": 1.5})", "\"top_p\" is 1.5, must be in (0, 1]"},
           {R"({"top_k": -3})", "\"top_k\" must be a non-negative integer"},
           {R"({"eos_token_id": [2, "x"]})", "\"eos_token_id\" must be a token id"}}) {
    Result<HfGenerationConfig> c = GenConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(part), std::string::npos) << c.status();
  }
}

TEST(HfSideFilesTest, AbsentFilesAreEmptyAndJinjaFileIsTheTemplate) {
  InMemoryEnv env;
  Result<HfTokenizerConfig> t = ReadHfTokenizerConfig(&env, "/m");
  Result<HfGenerationConfig> g = ReadHfGenerationConfig(&env, "/m");
  ASSERT_TRUE(t.ok() && g.ok());
  EXPECT_TRUE(t->chat_templates.empty());
  EXPECT_TRUE(g->eos_token_ids.empty());

  env.AddFile("/m/tokenizer_config.json", R"({"eos_token": "</s>"})");
  env.AddFile("/m/chat_template.jinja", "{% for m in messages %}{% endfor %}");
  t = ReadHfTokenizerConfig(&env, "/m");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->eos_token, "</s>");
  EXPECT_EQ(t->FindChatTemplate()->source, "{% for m in messages %}{% endfor %}");

  env.AddFile("/m/generation_config.json", "{not json");
  g = ReadHfGenerationConfig(&env, "/m");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("/m/generation_config.json"), std::string::npos);
}

// The side files of a folder reach the Checkpoint; generation_config's eos
// ids join config.json's stop set.
TEST(HfSideFilesTest, OpenCheckpointReadsSideFiles) {
  const std::string dir = std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K";
  std::ifstream in(dir + "/model.safetensors", std::ios::binary);
  if (!in) GTEST_SKIP() << dir;
  std::stringstream weights;
  weights << in.rdbuf();
  std::ifstream cfg(dir + "/config.json");
  std::stringstream config;
  config << cfg.rdbuf();
  InMemoryEnv env;
  env.AddFile("/m/model.safetensors", weights.str());
  env.AddFile("/m/config.json", config.str());
  env.AddFile("/m/tokenizer_config.json", R"({"chat_template": "T", "bos_token": "<s>"})");
  env.AddFile("/m/generation_config.json", R"({"eos_token_id": [2, 5], "temperature": 0.3})");
  Result<Checkpoint> c = OpenCheckpoint(&env, "/m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tokenizer_config.FindChatTemplate()->source, "T");
  EXPECT_EQ(c->tokenizer_config.bos_token, "<s>");
  EXPECT_FLOAT_EQ(*c->generation_config.sampling.temperature, 0.3f);
  EXPECT_EQ(c->config.eos_token_ids, (std::vector<int64_t>{2, 5}));

  env.AddFile("/m/generation_config.json", R"({"eos_token_id": 512})");
  c = OpenCheckpoint(&env, "/m");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "/m/generation_config.json: eos_token_id is 512, must be below vocab_size (512)");
}

}  // namespace
}  // namespace relayout
