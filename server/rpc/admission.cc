#include "server/rpc/admission.h"

namespace relayout::server {

grpc::Status Admission::CheckToken(const grpc::ServerContextBase& context) const {
  return auth_->Check(context);
}

grpc::Status Admission::Check(const grpc::ServerContextBase& context, Work work, Needs needs,
                              std::shared_ptr<const Tokenizer>* tokenizer) const {
  if (grpc::Status s = CheckToken(context); !s.ok()) return s;
  return CheckState(work, needs, tokenizer);
}

grpc::Status Admission::CheckState(Work work, Needs needs,
                                   std::shared_ptr<const Tokenizer>* tokenizer) const {
  const LifecycleState state = state_->state();
  if (state == LifecycleState::kDraining && work == Work::kNew) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  }
  *tokenizer = state_->tokenizer();
  // The tokenizer is loaded before SERVING; a drain that began during
  // start-up has none.
  if (*tokenizer != nullptr && (state == LifecycleState::kServing ||
                                state == LifecycleState::kDraining || needs == Needs::kTokenizer)) {
    return grpc::Status::OK;
  }
  const ConversionProgressSnapshot p = state_->progress();
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      StrCat("model not ready: ", LifecycleStateName(state), ", ",
                             static_cast<int>(p.ratio() * 100), "% converted"));
}

}  // namespace relayout::server
