// OpenAI request parsing and response formatting, without a server: every
// refused request names its field, and every response parses back into
// OpenAI's shape.
#include "server/http/openai_protocol.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/base/env.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout::server {
namespace {

constexpr size_t kMax = 1 << 20;
const std::string kTokenizer = std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/tok512.bin";

Result<OpenAiRequest> Chat(std::string_view body) {
  return ParseOpenAiRequest(OpenAiEndpoint::kChatCompletions, body, kMax);
}
Result<OpenAiRequest> Completion(std::string_view body) {
  return ParseOpenAiRequest(OpenAiEndpoint::kCompletions, body, kMax);
}

// The message of a refused chat request ("" when it was accepted).
std::string ChatError(std::string_view body) {
  Result<OpenAiRequest> r = Chat(body);
  if (r.ok()) return "";
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status();
  return r.status().message();
}
std::string CompletionError(std::string_view body) {
  Result<OpenAiRequest> r = Completion(body);
  if (r.ok()) return "";
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status();
  return r.status().message();
}

JsonValue Parse(std::string_view json) {
  Result<JsonValue> v = ParseJson(json);
  EXPECT_TRUE(v.ok()) << v.status() << "\n" << json;
  return v.ok() ? *v : JsonValue();
}

// The JSON of one "data: {...}\n\n" event.
JsonValue ParseEvent(std::string_view event) {
  EXPECT_TRUE(event.starts_with("data: ")) << event;
  EXPECT_TRUE(event.ends_with("\n\n")) << event;
  return Parse(event.substr(6, event.size() - 8));
}

constexpr std::string_view kHello = R"({"messages": [{"role": "user", "content": "Hi"}]})";

// ---- Chat requests ---------------------------------------------------------

TEST(OpenAiRequestTest, AMinimalChatTakesTheDefaults) {
  Result<OpenAiRequest> r = Chat(kHello);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].role, "user");
  EXPECT_EQ(r->messages[0].content, "Hi");
  EXPECT_TRUE(r->add_generation_prompt);
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->model, "");
  EXPECT_EQ(r->sampling.max_new_tokens(), 0u);  // the server's limit
  EXPECT_FALSE(r->sampling.has_temperature());
  EXPECT_FALSE(r->sampling.has_seed());
}

TEST(OpenAiRequestTest, ChatSamplingFieldsReachTheSamplingParams) {
  Result<OpenAiRequest> r = Chat(R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
      "max_tokens": 7, "temperature": 0, "top_p": 0.5, "seed": 42, "stop": ["a", "b"],
      "frequency_penalty": 0.5, "presence_penalty": -0.5, "top_k": 40, "min_p": 0.1,
      "repetition_penalty": 1.1, "ignore_eos": true, "stop_token_ids": [2], "logprobs": true,
      "top_logprobs": 3, "stream": true, "stream_options": {"include_usage": true}, "n": 1,
      "user": "ignored", "some_unknown_field": {"is": "ignored"}})");
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::SamplingParams& s = r->sampling;
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(s.max_new_tokens(), 7u);
  EXPECT_EQ(s.temperature(), 0.0f);
  EXPECT_FLOAT_EQ(s.top_p(), 0.5f);
  EXPECT_EQ(s.seed(), 42u);
  ASSERT_EQ(s.stop_size(), 2);
  EXPECT_EQ(s.stop(1), "b");
  EXPECT_FLOAT_EQ(s.frequency_penalty(), 0.5f);
  EXPECT_FLOAT_EQ(s.presence_penalty(), -0.5f);
  EXPECT_EQ(s.top_k(), 40);
  EXPECT_FLOAT_EQ(s.min_p(), 0.1f);
  EXPECT_FLOAT_EQ(s.repetition_penalty(), 1.1f);
  EXPECT_TRUE(s.ignore_eos());
  ASSERT_EQ(s.stop_token_ids_size(), 1);
  EXPECT_TRUE(s.logprobs());
  EXPECT_EQ(s.top_logprobs(), 3);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(OpenAiRequestTest, MaxCompletionTokensWinsOverMaxTokensInChat) {
  Result<OpenAiRequest> r = Chat(
      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9, "max_completion_tokens": 4})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.max_new_tokens(), 4u);
}

TEST(OpenAiRequestTest, TextPartsAreJoinedAndDeveloperIsSystem) {
  Result<OpenAiRequest> r = Chat(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": null}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "a\nb");
  EXPECT_EQ(r->messages[2].content, "");
}

TEST(OpenAiRequestTest, ChatTemplateKwargsAndAddGenerationPromptAreKept) {
  Result<OpenAiRequest> r = Chat(R"({"messages": [{"role": "user", "content": "Hi"}],
      "add_generation_prompt": false, "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->add_generation_prompt);
  ASSERT_TRUE(r->chat_template_kwargs.has_value());
  EXPECT_NE(r->chat_template_kwargs->Find("enable_thinking"), nullptr);
}

TEST(OpenAiRequestTest, NullIsTheSameAsAbsent) {
  Result<OpenAiRequest> r = Chat(R"({"messages": [{"role": "user", "content": "Hi"}],
      "temperature": null, "stop": null, "max_tokens": null, "stream_options": null})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->sampling.has_temperature());
}

TEST(OpenAiRequestTest, MalformedJsonIsRefused) {
  EXPECT_NE(ChatError("{\"messages\": [").find("body: not valid JSON"), std::string::npos);
  EXPECT_NE(ChatError("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ChatError("[1, 2]").find("body: must be a JSON object, got array"), std::string::npos);
}

TEST(OpenAiRequestTest, WrongTypesNameTheField) {
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"})"),
            "temperature: must be a number, got string");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "stream": 1})"),
            "stream: must be a boolean, got number");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1.5})"),
            "max_tokens: must be an integer");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "stop": 3})"),
            "stop: must be a string or an array of strings, got number");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "stop": ["a", 1]})"),
            "stop[1]: must be a string, got number");
  EXPECT_EQ(ChatError(R"({"messages": "Hi"})"), "messages: must be an array, got string");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": 5}]})"),
            "messages[0].content: must be a string or an array of content parts, got number");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "model": 1})"),
            "model: must be a string, got number");
  EXPECT_EQ(
      ChatError(R"({"messages": [{"role": "user", "content": "Hi"}], "chat_template_kwargs": []})"),
      "chat_template_kwargs: must be an object, got array");
}

TEST(OpenAiRequestTest, MissingOrEmptyMessagesAreRefused) {
  EXPECT_EQ(ChatError("{}"), "messages: required");
  EXPECT_EQ(ChatError(R"({"messages": []})"), "messages: empty");
  EXPECT_EQ(ChatError(R"({"messages": [{"content": "Hi"}]})"), "messages[0].role: required");
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "user"}]})"), "messages[0].content: required");
}

TEST(OpenAiRequestTest, RolesOtherThanTheFourAreRefused) {
  EXPECT_EQ(ChatError(R"({"messages": [{"role": "tool", "content": "x"}]})"),
            "messages[0].role: \"tool\": must be system, developer, user or assistant");
  EXPECT_NE(ChatError(R"({"messages": [{"role": "wizard", "content": "x"}]})"), "");
}

TEST(OpenAiRequestTest, NonTextPartsAreRefused) {
  EXPECT_EQ(
      ChatError(
          R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})"),
      "messages[0].content[0].type: \"image_url\": only text parts are supported");
}

TEST(OpenAiRequestTest, WhatWeCannotHonourIsRefusedNotIgnored) {
  const std::string base = R"({"messages": [{"role": "user", "content": "Hi"}], )";
  EXPECT_EQ(ChatError(base + R"("n": 2})"), "n: 2: only n = 1 is supported");
  EXPECT_EQ(ChatError(base + R"("max_tokens": 0})"), "max_tokens: 0, must be >= 1");
  EXPECT_EQ(ChatError(base + R"("tools": [{"type": "function"}]})"),
            "tools: tools is not supported");
  EXPECT_EQ(ChatError(base + R"("logit_bias": {"5": 1}})"),
            "logit_bias: logit_bias is not supported");
  EXPECT_NE(ChatError(base + R"("response_format": {"type": "json_object"}})"), "");
  EXPECT_EQ(ChatError(base + R"("response_format": {"type": "text"}})"), "");
  EXPECT_EQ(ChatError(base + R"("stream_options": {"include_usage": true}})"),
            "stream_options: only allowed when stream is true");
  EXPECT_EQ(ChatError(base + R"("top_logprobs": 2})"), "top_logprobs: needs logprobs set to true");
  EXPECT_EQ(ChatError(base + R"("logprobs": true, "top_logprobs": 21})"),
            "top_logprobs: 21 is outside [0, 20]");
}

// ---- Completion requests ---------------------------------------------------

TEST(OpenAiRequestTest, ACompletionPromptIsTextWithControlTokensMatched) {
  Result<OpenAiRequest> r = Completion(R"({"prompt": "Once upon", "logprobs": 2, "echo": false})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt.text(), "Once upon");
  EXPECT_TRUE(r->prompt.parse_special());
  EXPECT_TRUE(r->sampling.logprobs());
  EXPECT_EQ(r->sampling.top_logprobs(), 2);
}

TEST(OpenAiRequestTest, ACompletionPromptMayBeOneStringInAListOrTokenIds) {
  Result<OpenAiRequest> one = Completion(R"({"prompt": ["Once"]})");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->prompt.text(), "Once");
  Result<OpenAiRequest> ids = Completion(R"({"prompt": [1, 2, 3]})");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->prompt.token_ids().ids_size(), 3);
  Result<OpenAiRequest> nested = Completion(R"({"prompt": [[4, 5]]})");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(nested->prompt.token_ids().ids_size(), 2);
}

TEST(OpenAiRequestTest, CompletionErrorsNameTheField) {
  EXPECT_EQ(CompletionError("{}"), "prompt: required");
  EXPECT_EQ(CompletionError(R"({"prompt": ["a", "b"]})"),
            "prompt: 2 prompts: only one prompt per request is supported");
  EXPECT_EQ(CompletionError(R"({"prompt": [1, -2]})"), "prompt[1]: -2 is outside [0, 2147483647]");
  EXPECT_EQ(CompletionError(R"({"prompt": 5})"),
            "prompt: must be a string, an array of strings or an array of token ids, got number");
  EXPECT_EQ(CompletionError(R"({"prompt": "a", "echo": true})"), "echo: echo is not supported");
  EXPECT_EQ(CompletionError(R"({"prompt": "a", "best_of": 3})"), "best_of: 3: only 1 is supported");
  EXPECT_EQ(CompletionError(R"({"prompt": "a", "suffix": "z"})"),
            "suffix: suffix is not supported");
  EXPECT_EQ(CompletionError(R"({"prompt": "a", "logprobs": true})"),
            "logprobs: must be an integer, got bool");
  EXPECT_EQ(CompletionError(R"({"prompt": "a", "n": 2})"), "n: 2: only n = 1 is supported");
}

TEST(OpenAiRequestTest, ABodyAboveTheLimitIsRefused) {
  const std::string body = StrCat(R"({"prompt": ")", std::string(2000, 'a'), R"("})");
  Result<OpenAiRequest> r = ParseOpenAiRequest(OpenAiEndpoint::kCompletions, body, 1000);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status();
}

// ---- Errors ----------------------------------------------------------------

TEST(OpenAiErrorTest, EachStatusHasItsHttpStatusAndType) {
  const auto http = [](const Status& s) {
    return ToOpenAiError(s, OpenAiEndpoint::kCompletions).http_status;
  };
  EXPECT_EQ(http(Status::InvalidArgument("x", "y")), 400);
  EXPECT_EQ(http(Status::FailedPrecondition("no template")), 400);
  EXPECT_EQ(http(Status::Unauthenticated("token")), 401);
  EXPECT_EQ(http(Status::NotFound("model")), 404);
  EXPECT_EQ(http(Status::ResourceExhausted("queue")), 429);
  EXPECT_EQ(http(Status::Unimplemented("backend")), 501);
  EXPECT_EQ(http(Status::Unavailable("draining")), 503);
  EXPECT_EQ(http(Status::Internal("bug")), 500);
  const OpenAiError e =
      ToOpenAiError(Status::Unauthenticated("missing"), OpenAiEndpoint::kCompletions);
  EXPECT_EQ(e.type, "authentication_error");
  EXPECT_EQ(e.code, "invalid_api_key");
}

TEST(OpenAiErrorTest, TheParamIsTheFieldInTheRequestsWords) {
  const auto param = [](const Status& s, OpenAiEndpoint e) { return ToOpenAiError(s, e).param; };
  const OpenAiEndpoint chat = OpenAiEndpoint::kChatCompletions;
  const OpenAiEndpoint completions = OpenAiEndpoint::kCompletions;
  EXPECT_EQ(param(Status::InvalidArgument("sampling", "temperature is -1, must be >= 0"), chat),
            "temperature");
  EXPECT_EQ(param(Status::InvalidArgument("sampling.max_new_tokens", "5000 is above"), chat),
            "max_tokens");
  EXPECT_EQ(param(Status::InvalidArgument("sampling.stop[0]", "0 bytes"), chat), "stop");
  EXPECT_EQ(param(Status::InvalidArgument("prompt", "4097 tokens"), chat), "messages");
  EXPECT_EQ(param(Status::InvalidArgument("prompt", "4097 tokens"), completions), "prompt");
  EXPECT_EQ(param(Status::InvalidArgument("messages[1].role", "bad"), chat), "messages[1].role");
  EXPECT_EQ(param(Status::InvalidArgument("chat template: line 3: unknown filter"), chat), "");
}

TEST(OpenAiErrorTest, ARequestsOwnLimitIsA400NotA429) {
  const Status limit = AsRequestError(Status::ResourceExhausted("prompt", "too long"));
  EXPECT_TRUE(limit.IsInvalidArgument());
  EXPECT_EQ(limit.message(), "prompt: too long");
  EXPECT_TRUE(AsRequestError(Status::Unavailable("x")).code() == StatusCode::kUnavailable);
}

TEST(OpenAiErrorTest, TheErrorObjectHasOpenAisFields) {
  OpenAiError e = ToOpenAiError(Status::InvalidArgument("n", "2: only n = 1 is supported"),
                                OpenAiEndpoint::kCompletions);
  const JsonValue v = Parse(OpenAiErrorJson(e));
  const JsonValue* error = v.Find("error");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->Find("message")->as_string(), "n: 2: only n = 1 is supported");
  EXPECT_EQ(error->Find("type")->as_string(), "invalid_request_error");
  EXPECT_EQ(error->Find("param")->as_string(), "n");
  EXPECT_TRUE(error->Find("code")->is_null());
  EXPECT_TRUE(OpenAiErrorEvent(e).starts_with("data: {\"error\":"));
}

// ---- Responses -------------------------------------------------------------

TEST(OpenAiResponseTest, FinishReasonsAreOpenAisWords) {
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kEndOfGeneration), "stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kStopString), "stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kStopToken), "stop");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kMaxTokens), "length");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kContextFull), "length");
  EXPECT_EQ(OpenAiFinishReason(FinishReason::kCancelled), "abort");
}

TEST(OpenAiResponseTest, IdsArePrefixedAndDistinct) {
  const std::string a = NewOpenAiResponseId(OpenAiEndpoint::kChatCompletions);
  EXPECT_TRUE(a.starts_with("chatcmpl-"));
  EXPECT_EQ(a.size(), 9u + 32u);
  EXPECT_NE(a, NewOpenAiResponseId(OpenAiEndpoint::kChatCompletions));
  EXPECT_TRUE(NewOpenAiResponseId(OpenAiEndpoint::kCompletions).starts_with("cmpl-"));
}

class OpenAiResponseWithTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kTokenizer)) GTEST_SKIP() << kTokenizer << " missing";
    Result<std::unique_ptr<Tokenizer>> t = LoadTokenizerFile(Env::Default(), kTokenizer);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(*t);
    chat_.endpoint = OpenAiEndpoint::kChatCompletions;
    chat_.id = "chatcmpl-1";
    chat_.created = 1700000000;
    chat_.model = "m";
    completion_ = chat_;
    completion_.endpoint = OpenAiEndpoint::kCompletions;
    completion_.id = "cmpl-1";
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  OpenAiResponseContext chat_;
  OpenAiResponseContext completion_;
  const std::vector<GeneratedToken> tokens_ = {
      {300, "Hel", true, -0.25f, {{300, -0.25f}, {301, -2.0f}}},
      {301, "lo", true, -0.5f, {{301, -0.5f}}}};
};

TEST_F(OpenAiResponseWithTokenizerTest, AChatResponseHasTheMessageLogprobsAndUsage) {
  chat_.logprobs = true;
  OpenAiResponseAccumulator acc;
  acc.Add(tokens_);
  const JsonValue v = Parse(acc.Finish(chat_, FinishReason::kStopString, {5, 2}, *tokenizer_));
  EXPECT_EQ(v.Find("id")->as_string(), "chatcmpl-1");
  EXPECT_EQ(v.Find("object")->as_string(), "chat.completion");
  EXPECT_EQ(*v.Find("created")->as_int64(), 1700000000);
  EXPECT_EQ(v.Find("model")->as_string(), "m");
  const JsonValue& choice = v.Find("choices")->as_array().at(0);
  EXPECT_EQ(*choice.Find("index")->as_int64(), 0);
  EXPECT_EQ(choice.Find("message")->Find("role")->as_string(), "assistant");
  EXPECT_EQ(choice.Find("message")->Find("content")->as_string(), "Hello");
  EXPECT_EQ(choice.Find("finish_reason")->as_string(), "stop");
  const auto& content = choice.Find("logprobs")->Find("content")->as_array();
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0].Find("token")->as_string(), tokenizer_->DecodePiece(300));
  EXPECT_DOUBLE_EQ(content[0].Find("logprob")->as_double(), -0.25);
  EXPECT_EQ(content[0].Find("bytes")->as_array().size(), tokenizer_->DecodePiece(300).size());
  EXPECT_EQ(content[0].Find("top_logprobs")->as_array().size(), 2u);
  const JsonValue* usage = v.Find("usage");
  EXPECT_EQ(*usage->Find("prompt_tokens")->as_int64(), 5);
  EXPECT_EQ(*usage->Find("completion_tokens")->as_int64(), 2);
  EXPECT_EQ(*usage->Find("total_tokens")->as_int64(), 7);
}

TEST_F(OpenAiResponseWithTokenizerTest, ACompletionResponseHasTextAndLegacyLogprobs) {
  completion_.logprobs = true;
  OpenAiResponseAccumulator acc;
  acc.Add(tokens_);
  const JsonValue v = Parse(acc.Finish(completion_, FinishReason::kMaxTokens, {3, 2}, *tokenizer_));
  EXPECT_EQ(v.Find("object")->as_string(), "text_completion");
  const JsonValue& choice = v.Find("choices")->as_array().at(0);
  EXPECT_EQ(choice.Find("text")->as_string(), "Hello");
  EXPECT_EQ(choice.Find("finish_reason")->as_string(), "length");
  const JsonValue* lp = choice.Find("logprobs");
  EXPECT_EQ(lp->Find("tokens")->as_array().size(), 2u);
  EXPECT_DOUBLE_EQ(lp->Find("token_logprobs")->as_array()[1].as_double(), -0.5);
  EXPECT_EQ(lp->Find("top_logprobs")->as_array()[0].as_object().size(), 2u);
  EXPECT_EQ(*lp->Find("text_offset")->as_array()[1].as_int64(), 3);
}

TEST_F(OpenAiResponseWithTokenizerTest, ChatChunksAreRoleThenContentThenFinishThenUsage) {
  chat_.include_usage = true;
  const JsonValue role = ParseEvent(OpenAiRoleEvent(chat_));
  EXPECT_EQ(role.Find("object")->as_string(), "chat.completion.chunk");
  const JsonValue& delta = *role.Find("choices")->as_array().at(0).Find("delta");
  EXPECT_EQ(delta.Find("role")->as_string(), "assistant");
  EXPECT_EQ(delta.Find("content")->as_string(), "");
  EXPECT_TRUE(role.Find("usage")->is_null());

  const std::string events = OpenAiTokenEvents(&chat_, tokens_, *tokenizer_);
  const size_t split = events.find("\n\n") + 2;
  ASSERT_EQ(events.find("data: ", split), split);  // one event per token
  const JsonValue second = ParseEvent(events.substr(split));
  EXPECT_EQ(second.Find("choices")->as_array()[0].Find("delta")->Find("content")->as_string(),
            "lo");
  EXPECT_TRUE(second.Find("choices")->as_array()[0].Find("finish_reason")->is_null());

  const JsonValue finish = ParseEvent(OpenAiFinishEvent(chat_, FinishReason::kMaxTokens));
  EXPECT_EQ(finish.Find("choices")->as_array()[0].Find("finish_reason")->as_string(), "length");
  EXPECT_TRUE(finish.Find("choices")->as_array()[0].Find("delta")->as_object().empty());

  const JsonValue usage = ParseEvent(OpenAiUsageEvent(chat_, {4, 2}));
  EXPECT_TRUE(usage.Find("choices")->as_array().empty());
  EXPECT_EQ(*usage.Find("usage")->Find("total_tokens")->as_int64(), 6);
}

TEST_F(OpenAiResponseWithTokenizerTest, TokensWithoutTextMakeNoChunkUnlessLogprobsAreAsked) {
  const std::vector<GeneratedToken> held = {{300, "", false, 0, {}}};
  EXPECT_EQ(OpenAiTokenEvents(&completion_, held, *tokenizer_), "");
  completion_.logprobs = true;
  const JsonValue v = ParseEvent(OpenAiTokenEvents(&completion_, held, *tokenizer_));
  EXPECT_EQ(v.Find("choices")->as_array()[0].Find("text")->as_string(), "");
  EXPECT_EQ(v.Find("choices")->as_array()[0].Find("logprobs")->Find("tokens")->as_array().size(),
            1u);
}

TEST_F(OpenAiResponseWithTokenizerTest, InvalidUtf8BecomesReplacementCharacters) {
  const std::vector<GeneratedToken> bad = {{300, "a\xff", false, 0, {}}};
  OpenAiResponseAccumulator acc;
  acc.Add(bad);
  const JsonValue v = Parse(acc.Finish(completion_, FinishReason::kMaxTokens, {1, 1}, *tokenizer_));
  EXPECT_EQ(v.Find("choices")->as_array()[0].Find("text")->as_string(), "a\xEF\xBF\xBD");
}

}  // namespace
}  // namespace relayout::server
