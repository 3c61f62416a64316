#include "server/generation_service.h"

#include <memory>
#include <utility>

#include "engine/streaming_decoder.h"
#include "server/generate_reactor.h"
#include "server/generation_messages.h"
#include "server/status_conversion.h"

namespace relayout::server {
namespace {

using Clock = std::chrono::steady_clock;

grpc::Status NotAttached() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "generation backend not attached");
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

grpc::Status GenerationService::Admit(const grpc::CallbackServerContext& context, Work work,
                                      bool needs_model,
                                      std::shared_ptr<const Tokenizer>* tokenizer) const {
  if (grpc::Status s = deps_.auth->Check(context); !s.ok()) return s;
  const LifecycleState state = deps_.state->state();
  if (state == LifecycleState::kDraining && work == Work::kNew) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  }
  *tokenizer = deps_.state->tokenizer();
  // The tokenizer is loaded before SERVING; a drain that began during
  // start-up has none.
  if (*tokenizer != nullptr &&
      (state == LifecycleState::kServing || state == LifecycleState::kDraining || !needs_model)) {
    return grpc::Status::OK;
  }
  const ConversionProgressSnapshot p = deps_.state->progress();
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      StrCat("model not ready: ", LifecycleStateName(state), ", ",
                             static_cast<int>(p.ratio() * 100), "% converted"));
}

void GenerationService::Finish(grpc::ServerUnaryReactor* reactor, const char* rpc,
                               Clock::time_point start, const grpc::Status& status) const {
  deps_.metrics->OnRequest(rpc, StatusCodeName(static_cast<StatusCode>(status.error_code())),
                           SecondsSince(start));
  deps_.inflight->End();
  reactor->Finish(status);
}

grpc::ServerUnaryReactor* GenerationService::Prefill(grpc::CallbackServerContext* context,
                                                     const v1::PrefillRequest* request,
                                                     v1::PrefillResponse* response) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, true, &tokenizer); !s.ok()) {
    Finish(reactor, "Prefill", start, s);
    return reactor;
  }
  GenerationBackend* backend = backend_.load();
  if (backend == nullptr) {
    Finish(reactor, "Prefill", start, NotAttached());
    return reactor;
  }
  Result<GenerationRequest> converted =
      ToGenerationRequest(request->prompt(), request->sampling(), *tokenizer, deps_.limits);
  if (!converted.ok()) {
    Finish(reactor, "Prefill", start, ToGrpcStatus(converted.status()));
    return reactor;
  }
  backend->StartSession(std::move(*converted), [this, reactor, response, tokenizer, start, context,
                                                backend](Result<SessionStart> result) {
    if (!result.ok()) {
      Finish(reactor, "Prefill", start, ToGrpcStatus(result.status()));
      return;
    }
    // A client that gave up (deadline, cancel) never learns the session's
    // name: free it now rather than at its idle TTL.
    if (result->finish == FinishReason::kNone && context->IsCancelled()) {
      (void)backend->Release(result->session_id);
      Finish(reactor, "Prefill", start,
             grpc::Status(grpc::StatusCode::CANCELLED, "Prefill: cancelled by the client"));
      return;
    }
    deps_.metrics->OnTimeToFirstToken(SecondsSince(start));
    deps_.metrics->AddPromptTokens(static_cast<uint64_t>(result->prompt_tokens));
    deps_.metrics->AddGeneratedTokens(1);
    response->set_session_id(result->session_id);
    ToProtoToken(result->first_token, *tokenizer, response->mutable_token());
    response->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
    response->set_finish_reason(ToProtoFinishReason(result->finish));
    Finish(reactor, "Prefill", start, grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Decode(grpc::CallbackServerContext* context,
                                                    const v1::DecodeRequest* request,
                                                    v1::DecodeResponse* response) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kExisting, true, &tokenizer); !s.ok()) {
    Finish(reactor, "Decode", start, s);
    return reactor;
  }
  GenerationBackend* backend = backend_.load();
  if (backend == nullptr) {
    Finish(reactor, "Decode", start, NotAttached());
    return reactor;
  }
  Result<int64_t> count = DecodeTokenCount(*request, deps_.limits);
  if (!count.ok()) {
    Finish(reactor, "Decode", start, ToGrpcStatus(count.status()));
    return reactor;
  }
  backend->Decode(
      request->session_id(), *count,
      [this, reactor, response, tokenizer, start](Result<DecodeResult> result) {
        if (!result.ok()) {
          Finish(reactor, "Decode", start, ToGrpcStatus(result.status()));
          return;
        }
        if (!result->tokens.empty()) {
          const double seconds = SecondsSince(start);
          deps_.metrics->OnTimePerOutputToken(seconds / static_cast<double>(result->tokens.size()));
        }
        deps_.metrics->AddGeneratedTokens(result->tokens.size());
        for (const GeneratedToken& t : result->tokens) {
          ToProtoToken(t, *tokenizer, response->add_tokens());
        }
        response->set_finish_reason(ToProtoFinishReason(result->finish));
        response->mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
        response->mutable_usage()->set_generated_tokens(
            static_cast<uint32_t>(result->generated_tokens));
        Finish(reactor, "Decode", start, grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  auto* reactor = new GenerateReactor(deps_.metrics, deps_.inflight, start);
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, true, &tokenizer); !s.ok()) {
    reactor->FinishWithStatus(s);
    return reactor;
  }
  GenerationBackend* backend = backend_.load();
  if (backend == nullptr) {
    reactor->FinishWithStatus(NotAttached());
    return reactor;
  }
  Result<GenerationRequest> converted =
      ToGenerationRequest(request->prompt(), request->sampling(), *tokenizer, deps_.limits);
  if (!converted.ok()) {
    reactor->FinishWithStatus(ToGrpcStatus(converted.status()));
    return reactor;
  }
  reactor->Run(backend, std::move(tokenizer), std::move(*converted));
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Release(grpc::CallbackServerContext* context,
                                                     const v1::ReleaseRequest* request,
                                                     v1::ReleaseResponse* /*response*/) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const Tokenizer> tokenizer;
  grpc::Status status = Admit(*context, Work::kExisting, true, &tokenizer);
  GenerationBackend* backend = backend_.load();
  if (status.ok() && backend == nullptr) status = NotAttached();
  if (status.ok() && request->session_id().empty()) {
    status = ToGrpcStatus(Status::InvalidArgument("session_id", "empty"));
  }
  if (status.ok()) status = ToGrpcStatus(backend->Release(request->session_id()));
  Finish(reactor, "Release", start, status);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, false, &tokenizer); !s.ok()) {
    Finish(reactor, "Tokenize", start, s);
    return reactor;
  }
  EncodeOptions options;
  options.add_bos = !request->has_add_bos() || request->add_bos();
  options.parse_special = request->parse_special();
  // The text's size is bounded by --max-message-bytes; the tokenizer's work
  // is linear in it.
  grpc::Status status;
  if (Result<std::vector<int32_t>> ids = tokenizer->Encode(request->text(), options); !ids.ok()) {
    status = ToGrpcStatus(Status::InvalidArgument("text", ids.status().message()));
  } else {
    for (int32_t id : *ids) {
      response->add_token_ids(id);
      response->add_pieces(ToValidUtf8(tokenizer->piece(id)));
    }
  }
  Finish(reactor, "Tokenize", start, status);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* context,
                                                        const v1::DetokenizeRequest* request,
                                                        v1::DetokenizeResponse* response) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, false, &tokenizer); !s.ok()) {
    Finish(reactor, "Detokenize", start, s);
    return reactor;
  }
  const auto& ids = request->token_ids();
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= tokenizer->vocab_size()) {
      Finish(reactor, "Detokenize", start,
             ToGrpcStatus(Status::InvalidArgument(
                 StrCat("token_ids[", i, "]"),
                 StrCat(ids[i], " is outside the vocabulary [0, ", tokenizer->vocab_size(), ")"))));
      return reactor;
    }
  }
  // The streaming decoder holds back split characters and replaces bytes
  // that never form one, so the text is valid UTF-8 as protobuf requires.
  StreamingDecoder decoder(tokenizer.get());
  std::string text;
  for (int32_t id : ids) text += decoder.Next(id);
  text += decoder.Flush();
  response->set_text(std::move(text));
  Finish(reactor, "Detokenize", start, grpc::Status::OK);
  return reactor;
}

}  // namespace relayout::server
