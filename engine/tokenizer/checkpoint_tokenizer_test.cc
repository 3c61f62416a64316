#include "engine/tokenizer/checkpoint_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace relayout {
namespace {

const std::string kModels = std::string(RELAYOUT_SHARED_DIR) + "/models";

std::vector<int32_t> Ids(const Tokenizer& t, std::string_view text) {
  Result<std::vector<int32_t>> ids = t.Encode(text, EncodeOptions{});
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(CheckpointTokenizerTest, NoTokenizerFileIsNotFoundNamingTheFilesTried) {
  InMemoryEnv env;
  Checkpoint checkpoint;
  checkpoint.path = "/m/model.safetensors";
  checkpoint.config_path = "/m/config.json";
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.status().IsNotFound());
  EXPECT_EQ(t.status().message(),
            "/m: no tokenizer beside the weights (tried tokenizer.json, tokenizer.model, "
            "tok512.bin, tokenizer.bin)");
}

// A byte-level tokenizer.json: <s> a b Ġ ab </s> <|im_end|>, no template, so
// the file alone implies bos <s> (by its spelling) and no add_bos.
constexpr char kTokenizerJson[] = R"({"added_tokens": [
    {"id": 0, "content": "<s>", "special": true},
    {"id": 5, "content": "</s>", "special": true},
    {"id": 6, "content": "<|im_end|>", "special": true}],
  "normalizer": null, "post_processor": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "model": {"type": "BPE", "vocab": {"<s>": 0, "a": 1, "b": 2, "Ġ": 3, "ab": 4},
            "merges": ["a b"]}})";

TEST(CheckpointTokenizerTest, TokenizerJsonWinsOverTheOthers) {
  InMemoryEnv env;
  env.AddFile("/m/tokenizer.json", kTokenizerJson);
  env.AddFile("/m/tokenizer.model", "not a model");
  Checkpoint checkpoint;
  checkpoint.config_path = "/m/config.json";
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 7);
  EXPECT_EQ(Ids(**t, "ab"), std::vector<int32_t>{4});
}

TEST(CheckpointTokenizerTest, TokenizerConfigSetsSpecialTokensAndAddBos) {
  InMemoryEnv env;
  env.AddFile("/m/tokenizer.json", kTokenizerJson);
  Checkpoint checkpoint;
  checkpoint.config_path = "/m/config.json";
  checkpoint.tokenizer_config.bos_token = "<|im_end|>";
  checkpoint.tokenizer_config.eos_token = "</s>";
  checkpoint.tokenizer_config.unk_token = "a";
  checkpoint.tokenizer_config.add_bos_token = true;
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_id(), 6);
  EXPECT_EQ((*t)->unk_id(), 1);
  EXPECT_TRUE((*t)->IsEndOfGeneration(5));
  EXPECT_EQ(Ids(**t, "ab"), (std::vector<int32_t>{6, 4}));

  checkpoint.tokenizer_config.add_bos_token = false;
  t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(Ids(**t, "ab"), std::vector<int32_t>{4});
}

TEST(CheckpointTokenizerTest, TokenizerConfigTokenOutsideTheVocabularyIsNamed) {
  InMemoryEnv env;
  env.AddFile("/m/tokenizer.json", kTokenizerJson);
  Checkpoint checkpoint;
  checkpoint.config_path = "/m/config.json";
  checkpoint.tokenizer_config.eos_token = "<|eot_id|>";
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.status().IsInvalidArgument()) << t.status();
  EXPECT_EQ(t.status().message(),
            "/m/tokenizer_config.json: eos_token \"<|eot_id|>\" is not in the vocabulary of "
            "/m/tokenizer.json");
}

TEST(CheckpointTokenizerTest, MalformedFileIsDataLossNamingIt) {
  InMemoryEnv env;
  env.AddFile("/m/tok512.bin", std::string("\x10\x00\x00\x00\x01", 5));
  Checkpoint checkpoint;
  checkpoint.config_path = "/m/config.json";
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(&env, checkpoint);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.status().IsDataLoss()) << t.status();
  EXPECT_NE(t.status().message().find("/m/tok512.bin"), std::string::npos) << t.status();
}

// stories260K has tokenizer.model; aidreams260K only tok512.bin; each GGUF
// embeds its vocabulary. Each container's tokenizer encodes the same ids.
TEST(CheckpointTokenizerTest, EveryContainerOfASharedModelGetsItsVocabulary) {
  for (const std::string model : {"stories260K", "aidreams260K"}) {
    const std::string dir = kModels + "/" + model;
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir;
    Result<Checkpoint> st = OpenCheckpoint(Env::Default(), dir + "/model.safetensors");
    Result<Checkpoint> gg = OpenCheckpoint(Env::Default(), dir + "/model.gguf");
    ASSERT_TRUE(st.ok() && gg.ok());
    Result<std::unique_ptr<Tokenizer>> a = LoadCheckpointTokenizer(Env::Default(), *st);
    Result<std::unique_ptr<Tokenizer>> b = LoadCheckpointTokenizer(Env::Default(), *gg);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*a)->vocab_size(), 512);
    EXPECT_EQ(Ids(**a, "I dreamed of a tapestry"), Ids(**b, "I dreamed of a tapestry")) << model;
  }
  Result<Checkpoint> st = OpenCheckpoint(Env::Default(), kModels + "/stories260K");
  ASSERT_TRUE(st.ok()) << st.status();
  Result<std::unique_ptr<Tokenizer>> t = LoadCheckpointTokenizer(Env::Default(), *st);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(Ids(**t, "Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

}  // namespace
}  // namespace relayout
