#include "engine/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace relayout {

Status SamplingParams::Validate() const {
  const auto bad = [](std::string_view field, auto value, std::string_view rule) {
    return Status::InvalidArgument("sampling", StrCat(field, " is ", value, ", ", rule));
  };
  if (!(temperature >= 0) || !std::isfinite(temperature))
    return bad("temperature", temperature, "must be >= 0");
  if (top_k < 0) return bad("top_k", top_k, "must be >= 0");
  if (!(top_p > 0 && top_p <= 1)) return bad("top_p", top_p, "must be in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) return bad("min_p", min_p, "must be in [0, 1]");
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", repetition_penalty, "must be > 0");
  }
  if (!(std::fabs(frequency_penalty) <= 2))
    return bad("frequency_penalty", frequency_penalty, "must be in [-2, 2]");
  if (!(std::fabs(presence_penalty) <= 2))
    return bad("presence_penalty", presence_penalty, "must be in [-2, 2]");
  if (top_logprobs < 0 || top_logprobs > 20)
    return bad("top_logprobs", top_logprobs, "must be in [0, 20]");
  return Status::OK();
}

int32_t ArgMax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::ObservePrompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) prompt_[t] = true;
}

void Sampler::ApplyPenalties(std::span<float> logits) const {
  const auto in_range = [&](int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < logits.size();
  };
  if (params_.repetition_penalty != 1.0f) {
    const auto penalise = [&](int32_t id) {
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    };
    for (const auto& [id, seen] : prompt_) {
      if (in_range(id) && !generated_.count(id)) penalise(id);
    }
    for (const auto& [id, count] : generated_) {
      if (in_range(id)) penalise(id);
    }
  }
  if (params_.frequency_penalty != 0 || params_.presence_penalty != 0) {
    for (const auto& [id, count] : generated_) {
      if (!in_range(id)) continue;
      logits[static_cast<size_t>(id)] -=
          static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
    }
  }
}

SampledToken Sampler::Sample(std::span<float> logits) {
  ApplyPenalties(logits);
  const bool greedy = params_.temperature == 0.0f || params_.top_k == 1;
  if (!greedy) {
    for (float& l : logits) l /= params_.temperature;
  }
  // Log-softmax of the (penalised, tempered) logits, for the reported
  // log-probabilities and for sampling.
  const float max_logit = logits[static_cast<size_t>(ArgMax(logits))];
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max_logit));
  const float log_z = max_logit + static_cast<float>(std::log(sum));

  SampledToken out;
  if (greedy) {
    out.id = ArgMax(logits);
  } else {
    // Candidates sorted by logit, best first (ties to the lower id), then
    // truncated by top-k, top-p and min-p.
    order_.resize(logits.size());
    std::iota(order_.begin(), order_.end(), 0);
    size_t keep = logits.size();
    if (params_.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(params_.top_k));
    const auto better = [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    if (keep < order_.size()) {
      std::partial_sort(order_.begin(), order_.begin() + static_cast<ptrdiff_t>(keep), order_.end(),
                        better);
    } else {
      std::sort(order_.begin(), order_.end(), better);
    }
    probs_.resize(keep);
    for (size_t i = 0; i < keep; ++i)
      probs_[i] = std::exp(logits[static_cast<size_t>(order_[i])] - log_z);
    if (params_.min_p > 0) {
      const float floor = params_.min_p * probs_[0];
      size_t n = 1;
      while (n < keep && probs_[n] >= floor) ++n;
      keep = n;
    }
    if (params_.top_p < 1) {
      double mass = 0;
      size_t n = 0;
      while (n < keep) {
        mass += probs_[n++];
        if (mass >= params_.top_p) break;
      }
      keep = n;
    }
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs_[i];
    std::uniform_real_distribution<double> uniform(0.0, total);
    const double r = uniform(rng_);
    double acc = 0;
    out.id = order_[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      acc += probs_[i];
      if (r < acc) {
        out.id = order_[i];
        break;
      }
    }
  }
  out.logprob = logits[static_cast<size_t>(out.id)] - log_z;
  if (params_.top_logprobs > 0) {
    const size_t n = std::min<size_t>(static_cast<size_t>(params_.top_logprobs), logits.size());
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(
        ids.begin(), ids.begin() + static_cast<ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
          const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
          return la > lb || (la == lb && a < b);
        });
    for (size_t i = 0; i < n; ++i)
      out.top.push_back({ids[i], logits[static_cast<size_t>(ids[i])] - log_z});
  }
  ++generated_[out.id];
  return out;
}

}  // namespace relayout
