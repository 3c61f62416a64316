#include "server/rpc/generation_service.h"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "engine/tokenizer/streaming_decoder.h"
#include "server/rpc/admission.h"
#include "server/rpc/cancellable_unary_reactor.h"
#include "server/rpc/generate_reactor.h"
#include "server/rpc/generation_messages.h"
#include "server/rpc/status_conversion.h"

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

// One unary call's end: Finish exactly once. A backend callback that is
// dropped without being called (it owns the last reference) still ends the
// call, with INTERNAL, so no call is ever left behind.
class GenerationService::UnaryCall {
 public:
  UnaryCall(const GenerationService* service, grpc::ServerUnaryReactor* reactor, const char* rpc)
      : service_(service), reactor_(reactor), rpc_(rpc), start_(Clock::now()) {
    service_->deps_.inflight->Begin(rpc_);
  }
  ~UnaryCall() {
    Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                        StrCat(rpc_, ": the backend dropped the call without an answer")));
  }
  UnaryCall(const UnaryCall&) = delete;
  UnaryCall& operator=(const UnaryCall&) = delete;

  // Counts the call and finishes it; later calls do nothing.
  void Finish(const grpc::Status& status) {
    if (finished_.exchange(true)) return;
    service_->deps_.metrics->OnRequest(
        rpc_, StatusCodeName(static_cast<StatusCode>(status.error_code())), SecondsSince(start_));
    // Finish before the count drops, so a drain that sees no call in flight
    // has no reply left to send.
    reactor_->Finish(status);
    service_->deps_.inflight->End(rpc_);
  }
  Clock::time_point start() const { return start_; }

 private:
  const GenerationService* service_;
  grpc::ServerUnaryReactor* reactor_;
  const char* rpc_;
  const Clock::time_point start_;
  std::atomic<bool> finished_{false};
};

grpc::Status GenerationService::Admit(const grpc::CallbackServerContext& context, Work work,
                                      bool needs_model, std::shared_ptr<const Tokenizer>* tokenizer,
                                      GenerationBackend** backend) const {
  const Admission admission(deps_.state, deps_.auth);
  if (grpc::Status s = admission.Check(
          context, work == Work::kNew ? Admission::Work::kNew : Admission::Work::kExisting,
          needs_model ? Admission::Needs::kModel : Admission::Needs::kTokenizer, tokenizer);
      !s.ok()) {
    return s;
  }
  if (backend == nullptr) return grpc::Status::OK;
  *backend = backend_.load();
  return *backend != nullptr ? grpc::Status::OK : NotAttached();
}

grpc::ServerUnaryReactor* GenerationService::Prefill(grpc::CallbackServerContext* context,
                                                     const v1::PrefillRequest* request,
                                                     v1::PrefillResponse* response) {
  auto* reactor = new CancellableUnaryReactor;
  const std::shared_ptr<CancelHook> hook = reactor->hook();
  auto call = std::make_shared<UnaryCall>(this, reactor, "Prefill");
  std::shared_ptr<const Tokenizer> tokenizer;
  GenerationBackend* backend = nullptr;
  if (grpc::Status s = Admit(*context, Work::kNew, true, &tokenizer, &backend); !s.ok()) {
    call->Finish(s);
    return reactor;
  }
  Result<GenerationRequest> converted =
      ToGenerationRequest(request->prompt(), request->sampling(), *tokenizer, deps_.limits,
                          backend->sampling_defaults(), deps_.state->chat_template().get());
  if (!converted.ok()) {
    call->Finish(ToGrpcStatus(converted.status()));
    return reactor;
  }
  const uint64_t id = backend->StartSession(
      std::move(*converted),
      [this, call, response, tokenizer, context, backend](Result<SessionStart> result) {
        if (!result.ok()) {
          call->Finish(ToGrpcStatus(result.status()));
          return;
        }
        // A client that gave up (deadline, cancel) never learns the session's
        // name: free it now rather than at its idle TTL.
        if (result->finish == FinishReason::kNone && context->IsCancelled()) {
          (void)backend->Release(result->session_id);
          call->Finish(
              grpc::Status(grpc::StatusCode::CANCELLED, "Prefill: cancelled by the client"));
          return;
        }
        deps_.metrics->OnTimeToFirstToken(SecondsSince(call->start()));
        deps_.metrics->AddPromptTokens(static_cast<uint64_t>(result->prompt_tokens));
        deps_.metrics->AddGeneratedTokens(1);
        response->set_session_id(result->session_id);
        ToProtoToken(result->first_token, *tokenizer, response->mutable_token());
        response->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
        response->set_finish_reason(ToProtoFinishReason(result->finish));
        call->Finish(grpc::Status::OK);
      });
  // A client that leaves while the prefill waits frees its queue slot.
  if (id != 0) hook->Set([backend, id] { backend->Cancel(id); });
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Decode(grpc::CallbackServerContext* context,
                                                    const v1::DecodeRequest* request,
                                                    v1::DecodeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto call = std::make_shared<UnaryCall>(this, reactor, "Decode");
  std::shared_ptr<const Tokenizer> tokenizer;
  GenerationBackend* backend = nullptr;
  if (grpc::Status s = Admit(*context, Work::kExisting, true, &tokenizer, &backend); !s.ok()) {
    call->Finish(s);
    return reactor;
  }
  Result<int64_t> count = DecodeTokenCount(*request, deps_.limits);
  if (!count.ok()) {
    call->Finish(ToGrpcStatus(count.status()));
    return reactor;
  }
  backend->Decode(
      request->session_id(), *count,
      [this, call, response, tokenizer](Result<DecodeResult> result) {
        if (!result.ok()) {
          call->Finish(ToGrpcStatus(result.status()));
          return;
        }
        if (!result->tokens.empty()) {
          deps_.metrics->OnTimePerOutputToken(SecondsSince(call->start()) /
                                              static_cast<double>(result->tokens.size()));
        }
        deps_.metrics->AddGeneratedTokens(result->tokens.size());
        for (const GeneratedToken& t : result->tokens) {
          ToProtoToken(t, *tokenizer, response->add_tokens());
        }
        response->set_finish_reason(ToProtoFinishReason(result->finish));
        response->mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
        response->mutable_usage()->set_generated_tokens(
            static_cast<uint32_t>(result->generated_tokens));
        call->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  const Clock::time_point start = Clock::now();
  deps_.inflight->Begin("Generate");
  auto* reactor = new GenerateReactor(deps_.metrics, deps_.inflight, start);
  std::shared_ptr<const Tokenizer> tokenizer;
  GenerationBackend* backend = nullptr;
  if (grpc::Status s = Admit(*context, Work::kNew, true, &tokenizer, &backend); !s.ok()) {
    reactor->FinishWithStatus(s);
    return reactor;
  }
  Result<GenerationRequest> converted =
      ToGenerationRequest(request->prompt(), request->sampling(), *tokenizer, deps_.limits,
                          backend->sampling_defaults(), deps_.state->chat_template().get());
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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  UnaryCall call(this, reactor, "Release");
  std::shared_ptr<const Tokenizer> tokenizer;
  GenerationBackend* backend = nullptr;
  grpc::Status status = Admit(*context, Work::kExisting, true, &tokenizer, &backend);
  if (status.ok() && request->session_id().empty()) {
    status = ToGrpcStatus(Status::InvalidArgument("session_id", "empty"));
  }
  if (status.ok()) status = ToGrpcStatus(backend->Release(request->session_id()));
  call.Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  UnaryCall call(this, reactor, "Tokenize");
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, false, &tokenizer); !s.ok()) {
    call.Finish(s);
    return reactor;
  }
  // The reply holds at most one id per byte (plus BOS): bounding the text
  // bounds the ids and the memory the call takes.
  const int64_t bytes = static_cast<int64_t>(request->text().size());
  if (bytes > deps_.limits.max_tokenize_bytes) {
    call.Finish(ToGrpcStatus(Status::ResourceExhausted(
        "text", StrCat(bytes, " bytes, above the limit of ", deps_.limits.max_tokenize_bytes,
                       " (--max-tokenize-bytes)"))));
    return reactor;
  }
  EncodeOptions options;
  options.add_bos = !request->has_add_bos() || request->add_bos();
  options.parse_special = request->parse_special();
  grpc::Status status;
  if (Result<std::vector<int32_t>> ids = tokenizer->Encode(request->text(), options); !ids.ok()) {
    status = ToGrpcStatus(Status::InvalidArgument("text", ids.status().message()));
  } else {
    response->mutable_token_ids()->Reserve(static_cast<int>(ids->size()));
    for (int32_t id : *ids) {
      response->add_token_ids(id);
      response->add_pieces(ToValidUtf8(tokenizer->piece(id)));
    }
  }
  call.Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* context,
                                                        const v1::DetokenizeRequest* request,
                                                        v1::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  UnaryCall call(this, reactor, "Detokenize");
  std::shared_ptr<const Tokenizer> tokenizer;
  if (grpc::Status s = Admit(*context, Work::kNew, false, &tokenizer); !s.ok()) {
    call.Finish(s);
    return reactor;
  }
  const auto& ids = request->token_ids();
  if (ids.size() > deps_.limits.max_detokenize_ids) {
    call.Finish(ToGrpcStatus(Status::ResourceExhausted(
        "token_ids", StrCat(ids.size(), " ids, above the limit of ",
                            deps_.limits.max_detokenize_ids, " (--max-detokenize-ids)"))));
    return reactor;
  }
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= tokenizer->vocab_size()) {
      call.Finish(ToGrpcStatus(Status::InvalidArgument(
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
  call.Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace relayout::server
