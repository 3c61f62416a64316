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
            "/m: no tokenizer beside the weights (tried tokenizer.model, tok512.bin, "
            "tokenizer.bin)");
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
