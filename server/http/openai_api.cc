#include "server/http/openai_api.h"

#include <chrono>
#include <ctime>
#include <mutex>
#include <utility>

#include "engine/text/json_writer.h"
#include "server/observe/token_timing.h"
#include "server/rpc/admission.h"
#include "server/rpc/generation_messages.h"
#include "server/rpc/kserve_messages.h"
#include "server/rpc/status_conversion.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kJson = "application/json";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// One request's accounting: InflightCalls from construction, and
// relayout_requests_total when its exchange completes (exactly once: the
// HttpServer guarantees on_complete).
class OpenAiApi::Call {
 public:
  Call(const OpenAiApiDeps* deps, const char* rpc, std::shared_ptr<HttpExchange> exchange)
      : deps_(deps), rpc_(rpc), exchange_(std::move(exchange)), start_(Clock::now()) {
    deps_->inflight->Begin(rpc_);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // The exchange completed: the last byte written (delivered) or not.
  void Complete(bool delivered) {
    const StatusCode code = delivered ? code_.load() : StatusCode::kCancelled;
    deps_->metrics->OnRequest(rpc_, StatusCodeName(code), Seconds(Clock::now() - start_));
    deps_->inflight->End(rpc_);
  }

  void SetCode(StatusCode code) { code_.store(code); }

  void RespondError(const OpenAiError& e, std::span<const HttpHeader> headers = {}) {
    SetCode(e.status_code);
    exchange_->Respond(e.http_status, kJson, OpenAiErrorJson(e), headers);
  }
  void RespondError(const Status& status, OpenAiEndpoint endpoint) {
    RespondError(ToOpenAiError(status, endpoint));
  }

  HttpExchange& exchange() { return *exchange_; }
  Clock::time_point start() const { return start_; }

 private:
  const OpenAiApiDeps* deps_;
  const char* rpc_;
  const std::shared_ptr<HttpExchange> exchange_;
  const Clock::time_point start_;
  std::atomic<StatusCode> code_{StatusCode::kOk};
};

// One generation request, shared with the backend's callbacks (engine
// threads), which format and queue its bytes.
class OpenAiApi::Generation {
 public:
  Generation(std::shared_ptr<Call> call, ServerMetrics* metrics,
             std::shared_ptr<const Tokenizer> tokenizer, OpenAiResponseContext ctx, bool stream,
             int64_t prompt_tokens)
      : call_(std::move(call)),
        tokenizer_(std::move(tokenizer)),
        stream_(stream),
        prompt_tokens_(prompt_tokens),
        ctx_(std::move(ctx)),
        timing_(metrics, call_->start()) {}

  void OnTokens(std::span<const GeneratedToken> tokens) {
    if (tokens.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    timing_.OnTokens(tokens.size(), prompt_tokens_);
    if (!stream_) {
      accumulator_.Add(tokens);
      return;
    }
    if (call_->exchange().aborted()) return;  // the client left: do not format
    StartStreamLocked();
    call_->exchange().Write(OpenAiTokenEvents(&ctx_, tokens, *tokenizer_));
  }

  void OnEnd(const Status& status, const StreamSummary& summary) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    ended_ = true;
    timing_.Finish();
    HttpExchange& exchange = call_->exchange();
    if (!status.ok()) {
      const OpenAiError e = ToOpenAiError(status, ctx_.endpoint);
      if (!head_sent_) {
        call_->RespondError(e);
        return;
      }
      call_->SetCode(e.status_code);
      exchange.Write(OpenAiErrorEvent(e));
      exchange.Write(kSseDone);
      exchange.End();
      return;
    }
    const OpenAiUsage usage{summary.prompt_tokens, summary.generated_tokens};
    if (!stream_) {
      exchange.Respond(200, kJson, accumulator_.Finish(ctx_, summary.finish, usage, *tokenizer_));
      return;
    }
    StartStreamLocked();
    exchange.Write(OpenAiFinishEvent(ctx_, summary.finish));
    if (ctx_.include_usage) exchange.Write(OpenAiUsageEvent(ctx_, usage));
    exchange.Write(kSseDone);
    exchange.End();
  }

 private:
  void StartStreamLocked() {
    if (head_sent_) return;
    head_sent_ = true;
    call_->exchange().StartStream(200, "text/event-stream");
    if (ctx_.endpoint == OpenAiEndpoint::kChatCompletions) {
      call_->exchange().Write(OpenAiRoleEvent(ctx_));
    }
  }

  const std::shared_ptr<Call> call_;
  const std::shared_ptr<const Tokenizer> tokenizer_;
  const bool stream_;
  const int64_t prompt_tokens_;

  std::mutex mu_;
  OpenAiResponseContext ctx_;              // GUARDED_BY(mu_)
  OpenAiResponseAccumulator accumulator_;  // GUARDED_BY(mu_)
  bool head_sent_ = false;                 // GUARDED_BY(mu_)
  bool ended_ = false;                     // GUARDED_BY(mu_)
  TokenTiming timing_;                     // GUARDED_BY(mu_)
};

std::string OpenAiApi::model_id() const {
  if (!deps_.served_model_name.empty()) return deps_.served_model_name;
  return ServedModelName(deps_.state->Get().model_path);
}

std::string OpenAiApi::ErrorBody(int http_status, std::string_view message) const {
  OpenAiError e;
  e.http_status = http_status;
  e.type = "invalid_request_error";
  e.message = http_status == 413 ? StrCat("the request body is above the limit of ",
                                          deps_.max_body_bytes, " bytes (--max-message-bytes)")
                                 : StrCat("malformed HTTP request: ", message);
  return OpenAiErrorJson(e);
}

void OpenAiApi::Handle(const HttpRequest& request, const std::shared_ptr<HttpExchange>& exchange) {
  // vLLM's readiness probe: no token, not counted (probes are frequent).
  if (request.path == "/health" && request.method == "GET") {
    const LifecycleState s = deps_.state->state();
    exchange->Respond(s == LifecycleState::kServing ? 200 : 503, "text/plain; charset=utf-8",
                      s == LifecycleState::kServing ? "" : StrCat(LifecycleStateName(s), "\n"));
    return;
  }
  struct Route {
    std::string_view path;
    const char* rpc;
    std::string_view method;
  };
  static constexpr Route kRoutes[] = {
      {"/v1/models", "openai.models", "GET"},
      {"/v1/models/", "openai.models", "GET"},  // + an id: one model
      {"/v1/completions", "openai.completions", "POST"},
      {"/v1/chat/completions", "openai.chat.completions", "POST"},
  };
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    const bool prefix = r.path.ends_with('/');
    if (prefix ? request.path.starts_with(r.path) && request.path.size() > r.path.size()
               : request.path == r.path) {
      route = &r;
    }
  }
  auto call =
      std::make_shared<Call>(&deps_, route != nullptr ? route->rpc : "openai.other", exchange);
  exchange->SetOnComplete([call](bool delivered) { call->Complete(delivered); });
  const OpenAiEndpoint endpoint = route != nullptr && route->path == "/v1/chat/completions"
                                      ? OpenAiEndpoint::kChatCompletions
                                      : OpenAiEndpoint::kCompletions;

  if (request.path.starts_with("/v1/")) {
    const grpc::Status auth =
        deps_.auth->CheckHeader(request.authorization, request.has_authorization);
    if (!auth.ok()) {
      call->RespondError(Status::Unauthenticated(auth.error_message()), endpoint);
      return;
    }
  }
  if (route == nullptr) {
    call->RespondError(
        Status::NotFound(StrCat("no route ", request.method, " ", request.path),
                         "the API serves /v1/models, /v1/completions and /v1/chat/completions"),
        endpoint);
    return;
  }
  if (request.method != route->method) {
    OpenAiError e =
        ToOpenAiError(Status::Unimplemented(StrCat(request.method, " ", request.path),
                                            StrCat("method not allowed, use ", route->method)),
                      endpoint);
    e.http_status = 405;
    e.type = "invalid_request_error";
    const HttpHeader allow{"Allow", std::string(route->method)};
    call->RespondError(e, std::span<const HttpHeader>(&allow, 1));
    return;
  }
  if (route->method == "GET") {  // /v1/models, /v1/models/<id>
    const std::string id = model_id();
    const bool one = route->path.ends_with('/');
    if (one && std::string_view(request.path).substr(route->path.size()) != id) {
      OpenAiError e = ToOpenAiError(
          Status::NotFound(
              StrCat("The model `", request.path.substr(route->path.size()), "` does not exist.")),
          endpoint);
      e.code = "model_not_found";
      call->RespondError(e);
      return;
    }
    std::string body;
    JsonWriter w(&body, /*pretty=*/false);
    if (!one) w.BeginObject().Key("object").String("list").Key("data").BeginArray();
    w.BeginObject();
    w.Key("id").String(id);
    w.Key("object").String("model");
    w.Key("created").Int(static_cast<int64_t>(std::time(nullptr)));
    w.Key("owned_by").String("relayoutd");
    w.Key("max_model_len").Int(deps_.limits.max_prompt_tokens + deps_.limits.max_new_tokens);
    w.EndObject();
    if (!one) w.EndArray().EndObject();
    exchange->Respond(200, kJson, body);
    return;
  }
  Generate(request, endpoint, call);
}

void OpenAiApi::Generate(const HttpRequest& request, OpenAiEndpoint endpoint,
                         const std::shared_ptr<Call>& call) {
  // Admission: the same lifecycle checks, codes and messages as the gRPC
  // services (the token was checked by Handle).
  std::shared_ptr<const Tokenizer> tokenizer;
  const grpc::Status admitted =
      Admission(deps_.state, deps_.auth)
          .CheckState(Admission::Work::kNew, Admission::Needs::kModel, &tokenizer);
  if (!admitted.ok()) {
    call->RespondError(FromGrpcStatus(admitted), endpoint);
    return;
  }
  GenerationBackend* backend = backend_.load();
  if (backend == nullptr) {
    call->RespondError(Status::Unimplemented("generation backend not attached"), endpoint);
    return;
  }

  Result<OpenAiRequest> parsed = ParseOpenAiRequest(endpoint, request.body, deps_.max_body_bytes);
  if (!parsed.ok()) {
    call->RespondError(parsed.status(), endpoint);
    return;
  }
  const std::string id = model_id();
  if (!parsed->model.empty() && parsed->model != id) {
    OpenAiError e =
        ToOpenAiError(Status::NotFound(StrCat("The model `", parsed->model, "` does not exist."),
                                       StrCat("this server serves `", id, "`")),
                      endpoint);
    e.param = "model";
    e.code = "model_not_found";
    call->RespondError(e);
    return;
  }
  v1::Prompt prompt;
  if (endpoint == OpenAiEndpoint::kChatCompletions) {
    const std::shared_ptr<const ChatTemplate> chat_template = deps_.state->chat_template();
    const JsonValue* extra =
        parsed->chat_template_kwargs ? &*parsed->chat_template_kwargs : nullptr;
    Result<std::vector<int32_t>> ids =
        ChatPromptTokenIds(parsed->messages, parsed->add_generation_prompt, extra,
                           chat_template.get(), *tokenizer, deps_.limits);
    if (!ids.ok()) {
      call->RespondError(AsRequestError(ids.status()), endpoint);
      return;
    }
    prompt.mutable_token_ids()->mutable_ids()->Add(ids->begin(), ids->end());
  } else {
    prompt = std::move(parsed->prompt);
  }
  Result<GenerationRequest> converted = ToGenerationRequest(
      prompt, parsed->sampling, *tokenizer, deps_.limits, backend->sampling_defaults());
  if (!converted.ok()) {
    call->RespondError(AsRequestError(converted.status()), endpoint);
    return;
  }

  OpenAiResponseContext ctx;
  ctx.endpoint = endpoint;
  ctx.id = NewOpenAiResponseId(endpoint);
  ctx.created = static_cast<int64_t>(std::time(nullptr));
  ctx.model = id;
  ctx.logprobs = converted->logprobs;
  ctx.include_usage = parsed->include_usage;
  auto generation = std::make_shared<Generation>(
      call, deps_.metrics, std::move(tokenizer), std::move(ctx), parsed->stream,
      static_cast<int64_t>(converted->prompt_ids.size()));
  Result<uint64_t> stream_id = backend->StreamGenerate(
      std::move(*converted),
      [generation](std::span<const GeneratedToken> tokens) { generation->OnTokens(tokens); },
      [generation](const Status& status, const StreamSummary& summary) {
        generation->OnEnd(status, summary);
      });
  if (!stream_id.ok()) {
    call->RespondError(stream_id.status(), endpoint);  // a full queue: 429
    return;
  }
  // The exchange aborts on the connection's strand, after this returns.
  call->exchange().SetOnAbort([backend, sid = *stream_id] { backend->Cancel(sid); });
}

}  // namespace relayout::server
