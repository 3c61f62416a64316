#include "server/rpc/model_service.h"

#include <chrono>

#include "engine/conversion/strategy.h"

namespace relayout::server {
namespace {

v1::LifecycleState ToProtoState(LifecycleState state) {
  switch (state) {
    case LifecycleState::kLoading:
      return v1::LIFECYCLE_STATE_LOADING;
    case LifecycleState::kConverting:
      return v1::LIFECYCLE_STATE_CONVERTING;
    case LifecycleState::kServing:
      return v1::LIFECYCLE_STATE_SERVING;
    case LifecycleState::kDraining:
      return v1::LIFECYCLE_STATE_DRAINING;
  }
  return v1::LIFECYCLE_STATE_UNSPECIFIED;
}

void ToProtoConfig(const ModelConfig& c, v1::ModelConfig* out) {
  out->set_architecture(c.architecture);
  out->set_hidden_size(c.hidden_size);
  out->set_num_layers(c.num_layers);
  out->set_num_heads(c.num_heads);
  out->set_num_kv_heads(c.num_kv_heads);
  out->set_head_dim(c.head_dim);
  out->set_ffn_size(c.ffn_size);
  out->set_vocab_size(c.vocab_size);
  out->set_context_length(c.context_length);
  out->set_rms_eps(c.rms_eps);
  out->set_rope_theta(c.rope_theta);
  out->set_rope_scaling(std::string(RopeScalingName(c.rope_scaling.type)));
  out->set_tie_word_embeddings(c.tie_word_embeddings);
  out->set_bos_token_id(c.bos_token_id);
  for (int64_t id : c.eos_token_ids) out->add_eos_token_ids(id);
}

}  // namespace

void ToProtoReport(const RelayoutReport& r, bool include_tensors, v1::RelayoutReport* out) {
  out->set_device(r.device);
  out->set_workers(r.workers);
  out->set_weights_bytes(r.weights_bytes);
  out->set_budget_bytes(r.budget_bytes);
  out->set_predicted_peak_bytes(r.predicted_peak_bytes);
  out->set_measured_peak_bytes(r.measured_peak_bytes);
  out->set_scratch_peak_bytes(r.scratch_peak_bytes);
  out->set_staging_peak_bytes(r.staging_peak_bytes);
  out->set_host_scratch_peak_bytes(r.host_scratch_peak_bytes);
  out->set_os_peak_rss_bytes(r.os_peak_rss_bytes);
  out->set_baseline_rss_bytes(r.baseline_rss_bytes);
  out->set_seconds(r.seconds);
  out->set_bytes_per_second(r.bytes_per_second);
  if (!include_tensors) return;
  for (const TensorConversionReport& t : r.tensors) {
    v1::TensorReport* p = out->add_tensors();
    p->set_name(t.name);
    p->set_internal_name(t.internal_name);
    p->set_dtype(std::string(DTypeName(t.dtype)));
    for (int64_t d : t.shape) p->add_shape(d);
    p->set_layout(t.layout);
    p->set_strategy(std::string(StrategyName(t.strategy)));
    p->set_bytes(t.bytes);
    p->set_scratch_bytes(t.scratch_bytes);
    p->set_on_device(t.on_device);
    p->set_seconds(t.seconds);
  }
}

void ToModelInfo(const ServerState::Snapshot& s, bool include_tensors, v1::ModelInfo* out) {
  out->set_state(ToProtoState(s.state));
  v1::ConversionProgress* p = out->mutable_progress();
  p->set_tensors_done(s.progress.tensors_done);
  p->set_tensors_total(s.progress.tensors_total);
  p->set_bytes_done(s.progress.bytes_done);
  p->set_bytes_total(s.progress.bytes_total);
  p->set_ratio(s.report != nullptr && !s.converting ? 1.0 : s.progress.ratio());
  out->set_converting(s.converting);
  out->set_model_path(s.model_path);
  out->set_error(s.error);
  if (s.description.has_value()) {
    const ModelDescription& d = *s.description;
    out->set_format(d.format);
    ToProtoConfig(d.config, out->mutable_config());
    out->set_device(d.device);
    out->set_layout_mode(d.layout_mode);
    for (const TensorClassSummary& c : d.tensor_classes) {
      v1::TensorClass* t = out->add_tensor_classes();
      t->set_role(c.role);
      t->set_dtype(c.dtype);
      t->set_layout(c.layout);
      t->set_tensor_count(c.tensor_count);
      t->set_bytes(c.bytes);
    }
    if (d.layout_tuning.has_value()) {
      for (const ClassTuning& c : d.layout_tuning->classes) {
        v1::LayoutTuning* t = out->add_layout_tuning();
        t->set_tensor_class(std::string(TensorClassName(c.tensor_class)));
        t->set_dtype(std::string(DTypeName(c.dtype)));
        t->set_rows(c.rows);
        t->set_cols(c.cols);
        t->set_timed_rows(c.timed_rows);
        t->set_chosen_layout(c.chosen);
        t->set_measured(c.measured);
        t->set_tensor_count(static_cast<uint32_t>(c.tensors));
        for (const CandidateTiming& timing : c.candidates) {
          v1::LayoutTiming* l = t->add_candidates();
          l->set_layout(timing.layout);
          l->set_decode_seconds(timing.decode_seconds);
          l->set_prefill_seconds(timing.prefill_seconds);
        }
      }
    }
  }
  if (s.report != nullptr) ToProtoReport(*s.report, include_tensors, out->mutable_report());
}

grpc::ServerUnaryReactor* ModelService::GetModelInfo(grpc::CallbackServerContext* context,
                                                     const v1::GetModelInfoRequest* request,
                                                     v1::ModelInfo* response) {
  const auto start = std::chrono::steady_clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status = auth_->Check(*context);
  if (status.ok()) ToModelInfo(state_->Get(), request->include_tensors(), response);
  metrics_->OnRequest(
      "GetModelInfo", StatusCodeName(static_cast<StatusCode>(status.error_code())),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  reactor->Finish(status);
  return reactor;
}

}  // namespace relayout::server
