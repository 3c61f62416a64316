#include "server/rpc/generation_messages.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace relayout::server {
namespace {

const std::string kTokenizer = std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/tok512.bin";

class GenerationMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kTokenizer)) GTEST_SKIP() << kTokenizer << " missing";
    Result<std::unique_ptr<Tokenizer>> t = LoadTokenizerFile(Env::Default(), kTokenizer);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(*t);
  }

  Result<GenerationRequest> Convert(const v1::Prompt& prompt, const v1::SamplingParams& sampling) {
    return ToGenerationRequest(prompt, sampling, *tokenizer_, limits_);
  }

  static v1::Prompt Text(const std::string& text) {
    v1::Prompt p;
    p.set_text(text);
    return p;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  ServingLimits limits_;
};

TEST_F(GenerationMessagesTest, TextPromptIsTokenizedWithBos) {
  Result<GenerationRequest> r = Convert(Text("Once upon a time"), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(r->max_new_tokens, limits_.max_new_tokens);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_FALSE(r->seed_given);
  EXPECT_FALSE(r->logprobs);
}

TEST_F(GenerationMessagesTest, AddBosFalseDropsBos) {
  v1::Prompt p = Text("Once upon a time");
  p.set_add_bos(false);
  Result<GenerationRequest> r = Convert(p, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_ids, (std::vector<int32_t>{403, 407, 261, 378}));
}

TEST_F(GenerationMessagesTest, EmptyPromptIsInvalidArgument) {
  for (const v1::Prompt& p : {v1::Prompt(), Text("")}) {
    Result<GenerationRequest> r = Convert(p, {});
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalidArgument());
    EXPECT_EQ(r.status().message().rfind("prompt: ", 0), 0u) << r.status();
  }
}

TEST_F(GenerationMessagesTest, TokenIdOutsideVocabularyIsInvalidArgumentNamingIt) {
  v1::Prompt p;
  p.mutable_token_ids()->add_ids(1);
  p.mutable_token_ids()->add_ids(512);
  Result<GenerationRequest> r = Convert(p, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "prompt.token_ids[1]: 512 is outside the vocabulary [0, 512)");
}

TEST_F(GenerationMessagesTest, PromptOverTheLimitIsResourceExhausted) {
  limits_.max_prompt_tokens = 3;
  Result<GenerationRequest> r = Convert(Text("Once upon a time"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsResourceExhausted());
  EXPECT_EQ(r.status().message(), "prompt: 5 tokens, above the limit of 3 (--max-prompt-tokens)");
}

TEST_F(GenerationMessagesTest, BadSamplingValuesAreInvalidArgumentNamingTheField) {
  v1::SamplingParams s;
  s.set_temperature(-1);
  Result<GenerationRequest> r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("temperature"), std::string::npos);

  s.Clear();
  s.set_top_p(0);
  r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("top_p"), std::string::npos);

  s.Clear();
  s.set_top_logprobs(21);
  r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("top_logprobs"), std::string::npos);

  s.Clear();
  s.add_stop("");
  r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "sampling.stop[0]: 0 bytes, must be 1..256");

  s.Clear();
  s.add_stop_token_ids(-1);
  r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "sampling.stop_token_ids[0]: -1 is outside the vocabulary [0, 512)");
}

TEST_F(GenerationMessagesTest, MaxNewTokensOverTheLimitIsResourceExhausted) {
  v1::SamplingParams s;
  s.set_max_new_tokens(static_cast<uint32_t>(limits_.max_new_tokens + 1));
  Result<GenerationRequest> r = Convert(Text("a"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsResourceExhausted());
  EXPECT_EQ(r.status().message().rfind("sampling.max_new_tokens: 1025 is above", 0), 0u);
}

TEST_F(GenerationMessagesTest, SamplingFieldsAreCarriedOver) {
  v1::SamplingParams s;
  s.set_temperature(0);
  s.set_top_k(40);
  s.set_top_p(0.9f);
  s.set_min_p(0.05f);
  s.set_repetition_penalty(1.1f);
  s.set_seed(7);
  s.set_top_logprobs(3);
  s.add_stop("The End");
  s.add_stop_token_ids(2);
  s.set_max_new_tokens(16);
  Result<GenerationRequest> r = Convert(Text("a"), s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.temperature, 0.0f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_TRUE(r->seed_given);
  EXPECT_EQ(r->sampling.seed, 7u);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->stop_strings, std::vector<std::string>{"The End"});
  EXPECT_EQ(r->stop_token_ids, std::vector<int32_t>{2});
  EXPECT_EQ(r->max_new_tokens, 16);
}

// A model's generation_config.json fills what a request leaves unset; what
// it sets wins.
TEST_F(GenerationMessagesTest, UnsetSamplingFieldsTakeTheModelDefaults) {
  SamplingDefaults defaults;
  defaults.temperature = 0.6f;
  defaults.top_p = 0.9f;
  defaults.top_k = 20;
  Result<GenerationRequest> r =
      ToGenerationRequest(Text("a"), v1::SamplingParams(), *tokenizer_, limits_, defaults);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 20);

  v1::SamplingParams s;
  s.set_temperature(0);
  s.set_top_p(1);
  s.set_top_k(3);
  r = ToGenerationRequest(Text("a"), s, *tokenizer_, limits_, defaults);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.temperature, 0.0f);
  EXPECT_EQ(r->sampling.top_p, 1.0f);
  EXPECT_EQ(r->sampling.top_k, 3);

  // Without defaults, the proto's neutral values.
  r = Convert(Text("a"), v1::SamplingParams());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_EQ(r->sampling.top_p, 1.0f);
  EXPECT_EQ(r->sampling.top_k, 0);
}

TEST_F(GenerationMessagesTest, DecodeCountDefaultsToOneAndIsLimited) {
  v1::DecodeRequest d;
  EXPECT_TRUE(DecodeTokenCount(d, limits_).status().IsInvalidArgument());
  d.set_session_id("s1");
  EXPECT_EQ(*DecodeTokenCount(d, limits_), 1);
  d.set_num_tokens(static_cast<uint32_t>(limits_.max_new_tokens + 1));
  EXPECT_TRUE(DecodeTokenCount(d, limits_).status().IsResourceExhausted());
}

TEST_F(GenerationMessagesTest, ChatWithoutATemplateIsFailedPreconditionSayingHowToGiveOne) {
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  Result<std::vector<int32_t>> r =
      ChatPromptTokenIds(messages, true, nullptr, nullptr, *tokenizer_, limits_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), kNoChatTemplateMessage);
}

TEST_F(GenerationMessagesTest, ChatWithNoMessagesIsInvalidArgument) {
  std::shared_ptr<const ChatTemplate> chatml = ChatTemplate::ChatMl("<s>", "</s>");
  Result<std::vector<int32_t>> r =
      ChatPromptTokenIds({}, true, nullptr, chatml.get(), *tokenizer_, limits_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "prompt: messages: empty");
}

TEST_F(GenerationMessagesTest, ChatIsTheRenderedTemplateTokenizedWithoutAddedBos) {
  std::shared_ptr<const ChatTemplate> chatml = ChatTemplate::ChatMl("<s>", "</s>");
  const std::vector<ChatMessage> messages = {{"user", "Once upon a time"}};
  Result<std::vector<int32_t>> r =
      ChatPromptTokenIds(messages, true, nullptr, chatml.get(), *tokenizer_, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EncodeOptions options;
  options.add_bos = false;
  options.parse_special = true;
  Result<std::vector<int32_t>> expected = tokenizer_->Encode(
      "<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n", options);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(*r, *expected);
  EXPECT_NE(r->front(), tokenizer_->bos_id());
}

TEST_F(GenerationMessagesTest, ChatPromptRendersTheMessagesWithTheServersTemplate) {
  std::shared_ptr<const ChatTemplate> chatml = ChatTemplate::ChatMl("<s>", "</s>");
  v1::Prompt prompt;
  v1::ChatMessage* m = prompt.mutable_messages()->add_messages();
  m->set_role("user");
  m->set_content("Once upon a time");
  const std::vector<ChatMessage> messages = {{"user", "Once upon a time"}};
  // add_generation_prompt defaults to true; false leaves the cue out.
  for (const bool cue : {true, false}) {
    if (!cue) prompt.mutable_messages()->set_add_generation_prompt(false);
    Result<std::vector<int32_t>> want =
        ChatPromptTokenIds(messages, cue, nullptr, chatml.get(), *tokenizer_, limits_);
    ASSERT_TRUE(want.ok()) << want.status();
    Result<GenerationRequest> r =
        ToGenerationRequest(prompt, v1::SamplingParams(), *tokenizer_, limits_, {}, chatml.get());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->prompt_ids, *want) << "add_generation_prompt " << cue;
  }
  Result<std::vector<int32_t>> with_cue =
      ChatPromptTokenIds(messages, true, nullptr, chatml.get(), *tokenizer_, limits_);
  Result<std::vector<int32_t>> without_cue =
      ChatPromptTokenIds(messages, false, nullptr, chatml.get(), *tokenizer_, limits_);
  EXPECT_GT(with_cue->size(), without_cue->size());
}

TEST_F(GenerationMessagesTest, ChatPromptWithoutATemplateOrMessagesIsRefused) {
  v1::Prompt prompt;
  prompt.mutable_messages()->add_messages()->set_content("hi");
  Result<GenerationRequest> r =
      ToGenerationRequest(prompt, v1::SamplingParams(), *tokenizer_, limits_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), kNoChatTemplateMessage);
  std::shared_ptr<const ChatTemplate> chatml = ChatTemplate::ChatMl("<s>", "</s>");
  prompt.mutable_messages()->clear_messages();
  r = ToGenerationRequest(prompt, v1::SamplingParams(), *tokenizer_, limits_, {}, chatml.get());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "prompt: messages: empty");
}

TEST_F(GenerationMessagesTest, ChatOverTheLimitIsResourceExhausted) {
  std::shared_ptr<const ChatTemplate> chatml = ChatTemplate::ChatMl("<s>", "</s>");
  limits_.max_prompt_tokens = 3;
  const std::vector<ChatMessage> short_chat = {{"user", "Once upon a time"}};
  Result<std::vector<int32_t>> r =
      ChatPromptTokenIds(short_chat, true, nullptr, chatml.get(), *tokenizer_, limits_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsResourceExhausted());
  EXPECT_NE(r.status().message().find("above the limit of 3 (--max-prompt-tokens)"),
            std::string::npos)
      << r.status();
  // Far too many bytes are refused before rendering.
  const std::vector<ChatMessage> long_chat = {{"user", std::string(4096, 'a')}};
  r = ChatPromptTokenIds(long_chat, true, nullptr, chatml.get(), *tokenizer_, limits_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsResourceExhausted());
  EXPECT_NE(r.status().message().find("bytes of messages"), std::string::npos) << r.status();
}

TEST(ToValidUtf8Test, ReplacesEachInvalidByte) {
  EXPECT_EQ(ToValidUtf8("abc"), "abc");
  EXPECT_EQ(ToValidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(ToValidUtf8("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToValidUtf8("\xF0\x9F"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ToProtoFinishReasonTest, EveryReasonHasItsValue) {
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kNone), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kMaxTokens), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kContextFull), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kEndOfGeneration),
            v1::FINISH_REASON_END_OF_GENERATION);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kStopString), v1::FINISH_REASON_STOP_STRING);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kStopToken), v1::FINISH_REASON_STOP_TOKEN);
  EXPECT_EQ(ToProtoFinishReason(FinishReason::kCancelled), v1::FINISH_REASON_CANCELLED);
}

}  // namespace
}  // namespace relayout::server
