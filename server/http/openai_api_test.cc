// OpenAiApi behind a real HttpServer on loopback, with the fake backend
// (tokens 300, 301, ... each with text "x"): routes, admission, errors,
// whole and streamed answers, a client leaving, the drain, and metrics.
#include "server/http/openai_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "engine/base/env.h"
#include "server/http/http_test_client.h"
#include "server/rpc/generation_messages.h"
#include "server/testing/api_front_test.h"
#include "server/testing/fake_generation_backend.h"

namespace relayout::server {
namespace {

using testing::TestHttpClient;

constexpr std::string_view kChat = "/v1/chat/completions";
constexpr std::string_view kCompletions = "/v1/completions";

std::string ChatBody(std::string_view extra = "") {
  return StrCat(R"({"model": "stories", "messages": [{"role": "user", "content": "Hi"}])", extra,
                "}");
}

// The "data: " events of a streamed body, [DONE] included.
std::vector<std::string> Events(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    events.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return events;
}

JsonValue Json(std::string_view text) {
  Result<JsonValue> v = ParseJson(text);
  EXPECT_TRUE(v.ok()) << v.status() << "\n" << text;
  return v.ok() ? *v : JsonValue();
}

// The error object's field, or "" when there is none.
std::string ErrorField(const TestHttpClient::Response& r, std::string_view field) {
  const JsonValue v = Json(r.body());
  const JsonValue* error = v.Find("error");
  if (error == nullptr || error->Find(field) == nullptr || !error->Find(field)->is_string()) {
    return "";
  }
  return error->Find(field)->as_string();
}

class OpenAiApiTest : public ApiFrontTest {
 protected:
  void SetUp() override {
    ApiFrontTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    state_.SetModelPath("/models/stories.gguf");
    state_.SetChatTemplate(ChatTemplate::ChatMl("<s>", "</s>"));
  }
  void TearDown() override { server_.reset(); }

  void Start(const std::string& token = "", size_t max_body = 1 << 20) {
    OpenAiApiDeps deps{Deps(token), ""};
    deps.max_body_bytes = max_body;
    api_ = std::make_unique<OpenAiApi>(deps);
    HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.max_body_bytes = max_body;
    options.error_body = [api = api_.get()](int status, std::string_view message) {
      return api->ErrorBody(status, message);
    };
    options.error_content_type = "application/json";
    Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(
        options, [api = api_.get()](const HttpRequest& r, const std::shared_ptr<HttpExchange>& e) {
          api->Handle(r, e);
        });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  void Serve() {
    MoveToServing();
    api_->AttachBackend(&backend_);
  }

  TestHttpClient::Response Post(std::string_view path, std::string_view body,
                                std::string_view headers = "") {
    TestHttpClient client(server_->port());
    return client.Roundtrip("POST", path, body, headers);
  }

  bool WaitIdle() {
    return inflight_.WaitUntilIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }

  FakeGenerationBackend backend_;  // outlives the server (declared before it)
  std::unique_ptr<OpenAiApi> api_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(OpenAiApiTest, ModelsListsTheModelNamedAfterItsFile) {
  Start();
  TestHttpClient client(server_->port());
  TestHttpClient::Response r = client.Roundtrip("GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body();
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  const JsonValue v = Json(r.body());
  EXPECT_EQ(v.Find("object")->as_string(), "list");
  const JsonValue& model = v.Find("data")->as_array().at(0);
  EXPECT_EQ(model.Find("id")->as_string(), "stories");
  EXPECT_EQ(model.Find("object")->as_string(), "model");
}

TEST_F(OpenAiApiTest, HealthIs200OnlyWhileServingAndNeedsNoToken) {
  Start("s3cret");
  TestHttpClient client(server_->port());
  TestHttpClient::Response loading = client.Roundtrip("GET", "/health");
  EXPECT_EQ(loading.status, 503);
  EXPECT_EQ(loading.body(), "loading\n");
  Serve();
  EXPECT_EQ(client.Roundtrip("GET", "/health").status, 200);
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  EXPECT_EQ(client.Roundtrip("GET", "/health").status, 503);
}

TEST_F(OpenAiApiTest, OneModelIsRetrievedByItsIdAndAnotherIsNotFound) {
  Start();
  TestHttpClient client(server_->port());
  TestHttpClient::Response r = client.Roundtrip("GET", "/v1/models/stories");
  ASSERT_EQ(r.status, 200) << r.body();
  EXPECT_EQ(Json(r.body()).Find("id")->as_string(), "stories");
  TestHttpClient::Response other = client.Roundtrip("GET", "/v1/models/gpt-4");
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(ErrorField(other, "code"), "model_not_found");
}

TEST_F(OpenAiApiTest, AChatCompletionAnswersWithOneMessageAndUsage) {
  Start();
  Serve();
  TestHttpClient::Response r = Post(kChat, ChatBody(R"(, "max_tokens": 5)"));
  ASSERT_EQ(r.status, 200) << r.body();
  const JsonValue v = Json(r.body());
  EXPECT_TRUE(v.Find("id")->as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(v.Find("object")->as_string(), "chat.completion");
  EXPECT_EQ(v.Find("model")->as_string(), "stories");
  const JsonValue& choice = v.Find("choices")->as_array().at(0);
  EXPECT_EQ(choice.Find("message")->Find("role")->as_string(), "assistant");
  EXPECT_EQ(choice.Find("message")->Find("content")->as_string(), "xxxxx");
  EXPECT_EQ(choice.Find("finish_reason")->as_string(), "length");
  EXPECT_EQ(*v.Find("usage")->Find("completion_tokens")->as_int64(), 5);
  EXPECT_GT(*v.Find("usage")->Find("prompt_tokens")->as_int64(), 0);
  ASSERT_TRUE(WaitIdle());
  const std::string metrics = metrics_.Serialize();
  EXPECT_NE(metrics.find("relayout_requests_total{code=\"OK\",rpc=\"openai.chat.completions\"} 1"),
            std::string::npos);
  // The token metrics move as for Generate (TokenTiming).
  EXPECT_NE(metrics.find("relayout_generated_tokens_total 5"), std::string::npos);
  EXPECT_NE(metrics.find("relayout_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(metrics.find("relayout_time_per_output_token_seconds_count 1"), std::string::npos);
}

TEST_F(OpenAiApiTest, WithoutMaxTokensTheServersLimitApplies) {
  limits_.max_new_tokens = 7;
  Start();
  Serve();
  TestHttpClient::Response r = Post(kCompletions, R"({"prompt": "Once"})");
  ASSERT_EQ(r.status, 200) << r.body();
  const JsonValue v = Json(r.body());
  EXPECT_EQ(v.Find("object")->as_string(), "text_completion");
  EXPECT_EQ(v.Find("choices")->as_array()[0].Find("text")->as_string(), "xxxxxxx");
}

TEST_F(OpenAiApiTest, AChatStreamSendsTheRoleOneChunkPerTokenTheFinishUsageAndDone) {
  Start();
  Serve();
  TestHttpClient::Response r = Post(
      kChat,
      ChatBody(R"(, "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true})"));
  ASSERT_EQ(r.status, 200) << r.body();
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  const std::vector<std::string> events = Events(r.body());
  ASSERT_EQ(events.size(), 1u + 3u + 1u + 1u + 1u) << r.body();
  EXPECT_EQ(Json(events[0]).Find("choices")->as_array()[0].Find("delta")->Find("role")->as_string(),
            "assistant");
  for (int i = 1; i <= 3; ++i) {
    const JsonValue chunk = Json(events[static_cast<size_t>(i)]);
    EXPECT_EQ(chunk.Find("object")->as_string(), "chat.completion.chunk");
    EXPECT_EQ(chunk.Find("choices")->as_array()[0].Find("delta")->Find("content")->as_string(),
              "x");
  }
  EXPECT_EQ(Json(events[4]).Find("choices")->as_array()[0].Find("finish_reason")->as_string(),
            "length");
  const JsonValue usage = Json(events[5]);
  EXPECT_TRUE(usage.Find("choices")->as_array().empty());
  EXPECT_EQ(*usage.Find("usage")->Find("completion_tokens")->as_int64(), 3);
  EXPECT_EQ(events[6], "[DONE]");
}

TEST_F(OpenAiApiTest, ACompletionStreamSendsTextChunksThenDone) {
  Start();
  Serve();
  TestHttpClient::Response r =
      Post(kCompletions, R"({"prompt": "Once", "max_tokens": 2, "stream": true})");
  ASSERT_EQ(r.status, 200) << r.body();
  const std::vector<std::string> events = Events(r.body());
  ASSERT_EQ(events.size(), 2u + 1u + 1u) << r.body();
  EXPECT_EQ(Json(events[0]).Find("choices")->as_array()[0].Find("text")->as_string(), "x");
  EXPECT_EQ(Json(events[0]).Find("object")->as_string(), "text_completion");
  EXPECT_EQ(events[3], "[DONE]");
}

TEST_F(OpenAiApiTest, TwoRequestsShareAKeptAliveConnection) {
  Start();
  Serve();
  TestHttpClient client(server_->port());
  EXPECT_EQ(client.Roundtrip("POST", kCompletions, R"({"prompt": "a", "max_tokens": 1})").status,
            200);
  EXPECT_EQ(
      client.Roundtrip("POST", kChat, ChatBody(R"(, "max_tokens": 1, "stream": true)")).status,
      200);
  EXPECT_EQ(client.Roundtrip("GET", "/v1/models").status, 200);
}

TEST_F(OpenAiApiTest, AClientThatLeavesMidStreamCancelsItsGeneration) {
  Start();
  Serve();
  backend_.delay_ms = 20;
  {
    TestHttpClient client(server_->port());
    ASSERT_TRUE(client.Send(TestHttpClient::Request(
        "POST", kChat, ChatBody(R"(, "max_tokens": 1000, "stream": true)"))));
    ASSERT_FALSE(client.ReadUntil("\"content\":\"x\"").empty());
    client.Close();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (backend_.cancel_calls.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(backend_.cancel_calls.load(), 1);
  ASSERT_TRUE(WaitIdle());
  EXPECT_NE(metrics_.Serialize().find(
                "relayout_requests_total{code=\"CANCELLED\",rpc=\"openai.chat.completions\"} 1"),
            std::string::npos);
}

TEST_F(OpenAiApiTest, AStreamTheServerCancelsEndsWithAbortAndDone) {
  Start();
  Serve();
  backend_.delay_ms = 10;
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send(
      TestHttpClient::Request("POST", kChat, ChatBody(R"(, "max_tokens": 1000, "stream": true)"))));
  ASSERT_FALSE(client.ReadUntil("\"content\":\"x\"").empty());
  backend_.CancelAll();  // the drain's grace expired
  const std::string raw = client.ReadUntil("data: [DONE]\n\n");
  EXPECT_NE(raw.find("\"finish_reason\":\"abort\""), std::string::npos) << raw;
}

TEST_F(OpenAiApiTest, WhileDrainingNewRequestsGet503) {
  Start();
  Serve();
  ASSERT_TRUE(state_.SetState(LifecycleState::kDraining));
  TestHttpClient::Response r = Post(kChat, ChatBody());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorField(r, "message"), "draining");
}

TEST_F(OpenAiApiTest, WhileLoadingRequestsGet503SayingSo) {
  Start();
  TestHttpClient::Response r = Post(kChat, ChatBody());
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(ErrorField(r, "message").starts_with("model not ready: loading")) << r.body();
}

TEST_F(OpenAiApiTest, ATokenIsRequiredOnEveryV1PathWhenConfigured) {
  Start("s3cret");
  Serve();
  TestHttpClient client(server_->port());
  TestHttpClient::Response missing = client.Roundtrip("GET", "/v1/models");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(ErrorField(missing, "type"), "authentication_error");
  EXPECT_EQ(Post(kChat, ChatBody(), "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(
      Post(kChat, ChatBody(R"(, "max_tokens": 1)"), "Authorization: Bearer s3cret\r\n").status,
      200);
}

TEST_F(OpenAiApiTest, RoutesAndMethodsAreChecked) {
  Start();
  Serve();
  TestHttpClient client(server_->port());
  EXPECT_EQ(client.Roundtrip("GET", "/v1/nothing").status, 404);
  EXPECT_EQ(client.Roundtrip("GET", "/").status, 404);
  TestHttpClient::Response get = client.Roundtrip("GET", kChat);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.header("Allow"), "POST");
  // No CORS: a preflight is just another method.
  TestHttpClient::Response options = client.Roundtrip("OPTIONS", kChat);
  EXPECT_EQ(options.status, 405);
  EXPECT_EQ(options.header("Access-Control-Allow-Origin"), "");
}

TEST_F(OpenAiApiTest, AnotherModelNameIs404ModelNotFound) {
  Start();
  Serve();
  TestHttpClient::Response r =
      Post(kCompletions, R"({"model": "gpt-4", "prompt": "a", "max_tokens": 1})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorField(r, "code"), "model_not_found");
  EXPECT_EQ(ErrorField(r, "param"), "model");
  EXPECT_EQ(Post(kCompletions, R"({"prompt": "a", "max_tokens": 1})").status, 200);
}

TEST_F(OpenAiApiTest, BadRequestsAre400WithTheField) {
  Start();
  Serve();
  TestHttpClient::Response malformed = Post(kChat, "{not json");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(ErrorField(malformed, "type"), "invalid_request_error");
  EXPECT_EQ(ErrorField(malformed, "param"), "body");
  TestHttpClient::Response n = Post(kChat, ChatBody(R"(, "n": 2)"));
  EXPECT_EQ(n.status, 400);
  EXPECT_EQ(ErrorField(n, "param"), "n");
  EXPECT_EQ(Post(kChat, R"({"messages": [{"role": "robot", "content": "Hi"}]})").status, 400);
  EXPECT_EQ(Post(kChat, R"({"model": "stories"})").status, 400);
  TestHttpClient::Response temperature = Post(kChat, ChatBody(R"(, "temperature": -1)"));
  EXPECT_EQ(temperature.status, 400);
  EXPECT_EQ(ErrorField(temperature, "param"), "temperature");
  EXPECT_EQ(Post(kCompletions, R"({"prompt": [99999]})").status, 400);
}

TEST_F(OpenAiApiTest, RequestsAboveTheServersLimitsAre400NotRetried) {
  limits_.max_new_tokens = 10;
  Start();
  Serve();
  TestHttpClient::Response r = Post(kChat, ChatBody(R"(, "max_tokens": 11)"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r, "param"), "max_tokens");
  EXPECT_NE(ErrorField(r, "message").find("--max-new-tokens"), std::string::npos) << r.body();
}

TEST_F(OpenAiApiTest, AHugeBodyIs413InOpenAisShape) {
  Start("", 1000);
  Serve();
  TestHttpClient::Response r =
      Post(kCompletions, StrCat(R"({"prompt": ")", std::string(5000, 'a'), R"("})"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorField(r, "type"), "invalid_request_error");
  EXPECT_NE(ErrorField(r, "message").find("--max-message-bytes"), std::string::npos);
}

TEST_F(OpenAiApiTest, BadTemplateVariablesAre400) {
  Result<std::shared_ptr<const ChatTemplate>> t = ChatTemplate::Compile(
      "{% if strict %}{{ raise_exception('strict mode refuses this') }}{% endif %}"
      "{% for m in messages %}{{ m.content }}{% endfor %}",
      "<s>", "</s>");
  ASSERT_TRUE(t.ok()) << t.status();
  state_.SetChatTemplate(*t);
  Start();
  Serve();
  TestHttpClient::Response r =
      Post(kChat, ChatBody(R"(, "chat_template_kwargs": {"strict": true})"));
  EXPECT_EQ(r.status, 400) << r.body();
  EXPECT_NE(ErrorField(r, "message").find("strict mode refuses this"), std::string::npos)
      << r.body();
  EXPECT_EQ(Post(kChat, ChatBody(R"(, "chat_template_kwargs": 3)")).status, 400);
  EXPECT_EQ(Post(kChat, ChatBody(R"(, "max_tokens": 1)")).status, 200);
}

TEST_F(OpenAiApiTest, AModelWithoutAChatTemplateRefusesChatButNotCompletions) {
  state_.SetChatTemplate(nullptr);
  Start();
  Serve();
  TestHttpClient::Response r = Post(kChat, ChatBody());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorField(r, "message"), kNoChatTemplateMessage);
  EXPECT_EQ(Post(kCompletions, R"({"prompt": "a", "max_tokens": 1})").status, 200);
}

TEST_F(OpenAiApiTest, WithoutABackendGenerationIs501) {
  Start();
  ASSERT_TRUE(state_.SetState(LifecycleState::kConverting));
  ASSERT_TRUE(state_.SetState(LifecycleState::kServing));
  EXPECT_EQ(Post(kChat, ChatBody()).status, 501);
}

}  // namespace
}  // namespace relayout::server
