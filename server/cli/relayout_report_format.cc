#include "server/cli/relayout_report_format.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "engine/conversion/budget.h"
#include "engine/text/json_writer.h"
#include "kernels/cpu/runtime/cpu_features.h"

namespace relayout::cli {
namespace {

// Microseconds with 1 decimal.
std::string FormatMicros(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", seconds * 1e6);
  return text;
}

std::string LayoutName(const Layout& layout) {
  return layout.IsCommon() ? "native" : layout.Name();
}

void WriteShape(JsonWriter& w, const std::vector<int64_t>& shape) {
  w.BeginArray();
  for (int64_t d : shape) w.Int(d);
  w.EndArray();
}

}  // namespace

std::string LayoutSummary(const ConversionPlan& plan) {
  std::vector<TensorLayoutChoice> choices;
  for (const TensorConversion& t : plan.tensors) choices.push_back({t.ref.role, t.dtype, t.to});
  std::istringstream lines(SummarizeLayoutChoices(choices));
  std::string out, line;
  while (std::getline(lines, line)) out += "  " + line + "\n";
  return out;
}

std::string LayoutTuningText(const LayoutTuningReport& r) {
  std::string out;
  char line[256];
  for (const ClassTuning& c : r.classes) {
    std::string shape = StrCat("[", c.rows, ", ", c.cols, "]");
    if (c.timed_rows != c.rows) shape += StrCat(" (timed ", c.timed_rows, " rows)");
    out += StrCat("  ", TensorClassName(c.tensor_class), " ", DTypeName(c.dtype), " ", shape, " (",
                  c.tensors, c.tensors == 1 ? " tensor)" : " tensors)",
                  c.measured ? "" : StrCat(": ", c.note), "\n");
    for (const CandidateTiming& t : c.candidates) {
      const auto micros = [](double seconds) {
        return seconds > 0 ? StrCat(FormatMicros(seconds), " us") : std::string("-");
      };
      std::snprintf(line, sizeof line, "    %s %-18s %12s %12s\n", t.layout == c.chosen ? "*" : " ",
                    t.layout.c_str(), micros(t.decode_seconds).c_str(),
                    micros(t.prefill_seconds).c_str());
      out += line;
    }
    if (!c.measured &&
        std::none_of(c.candidates.begin(), c.candidates.end(),
                     [&](const CandidateTiming& t) { return t.layout == c.chosen; })) {
      out += StrCat("    * ", c.chosen, "\n");
    }
  }
  std::snprintf(line, sizeof line, "  total %.3f s (bound %.3f s) on %s", r.total_seconds,
                r.max_seconds, r.device.c_str());
  out += line;
  if (r.threads > 0) out += StrCat(", ", r.threads, " threads");
  out += "\n";
  return out;
}

std::string PlanJson(const PreparedLoad& load) {
  const Plan& p = load.plan.plan;
  std::string text;
  JsonWriter w(&text);
  w.BeginObject();
  w.Key("model").String(load.checkpoint.path);
  w.Key("format").String(CheckpointFormatName(load.checkpoint.source->format()));
  w.Key("device").String(load.plan.device);
  w.Key("device_choice").String(load.device_choice);
  w.Key("cpu_features").String(kernels::CpuFeaturesToString(load.policy->caps().cpu));
  w.Key("layout_mode").String(load.plan.layout_mode);
  w.Key("workers").Uint(p.workers);
  w.Key("weights_bytes").Uint(p.weight_bytes);
  w.Key("budget_bytes").Uint(p.budget_bytes);
  w.Key("predicted_peak_bytes").Uint(p.predicted_peak_bytes);
  w.Key("timeline_peak_bytes").Uint(p.timeline_peak_bytes);
  w.Key("max_scratch_bytes").Uint(p.max_scratch_bytes);
  w.Key("waves").Uint(p.num_waves);
  if (load.tuning.has_value()) {
    const LayoutTuningReport& r = *load.tuning;
    w.Key("layout_tuning").BeginObject();
    w.Key("device").String(r.device);
    w.Key("threads").Int(r.threads);
    w.Key("max_seconds").Double(r.max_seconds);
    w.Key("total_seconds").Double(r.total_seconds);
    w.Key("decode_tokens").Int(r.decode_tokens);
    w.Key("prefill_tokens").Int(r.prefill_tokens);
    w.Key("mode").String(r.mode);
    w.Key("classes").BeginArray();
    for (const ClassTuning& c : r.classes) {
      w.BeginObject();
      w.Key("class").String(TensorClassName(c.tensor_class));
      w.Key("dtype").String(DTypeName(c.dtype));
      w.Key("tensors").Int(c.tensors);
      w.Key("rows").Int(c.rows);
      w.Key("cols").Int(c.cols);
      w.Key("timed_rows").Int(c.timed_rows);
      w.Key("chosen").String(c.chosen);
      w.Key("measured").Bool(c.measured);
      if (!c.measured) w.Key("note").String(c.note);
      w.Key("candidates").BeginArray();
      for (const CandidateTiming& t : c.candidates) {
        w.BeginObject();
        w.Key("layout").String(t.layout);
        w.Key("decode_seconds").Double(t.decode_seconds);
        w.Key("prefill_seconds").Double(t.prefill_seconds);
        w.Key("score").Double(t.score);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.Key("steps").BeginArray();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PlanStep& s = p.steps[i];
    const TensorConversion& t = load.plan.tensors[static_cast<size_t>(s.tensor_index)];
    w.BeginObject();
    w.Key("order").Uint(i);
    w.Key("wave").Uint(s.wave);
    w.Key("name").String(t.name);
    w.Key("internal_name").String(t.internal_name);
    w.Key("role").String(TensorRoleName(t.ref.role));
    w.Key("dtype").String(DTypeName(t.dtype));
    w.Key("shape");
    WriteShape(w, t.shape);
    w.Key("layout").String(LayoutName(t.to));
    w.Key("strategy").String(StrategyName(s.strategy));
    w.Key("scratch_bytes").Uint(s.scratch_bytes);
    w.Key("bytes").Uint(s.final_bytes);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return text;
}

std::string ReportText(const RelayoutReport& r) {
  std::ostringstream out;
  const auto bytes = [](uint64_t b) { return StrCat(FormatBytes(b), " (", b, " bytes)"); };
  out << "device               " << r.device << ", " << r.workers << " workers\n";
  out << "weights_bytes        " << bytes(r.weights_bytes) << "\n";
  out << "budget_bytes         " << bytes(r.budget_bytes) << "\n";
  out << "predicted_peak_bytes " << bytes(r.predicted_peak_bytes) << "\n";
  out << "measured_peak_bytes  " << bytes(r.measured_peak_bytes) << "  bound weights + budget "
      << (r.bound_held() ? "held" : "BROKEN") << "\n";
  out << "scratch_peak_bytes   " << bytes(r.scratch_peak_bytes) << "\n";
  if (r.device != "cpu") {
    out << "staging_peak_bytes   " << bytes(r.staging_peak_bytes) << "  host, to the device\n";
    out << "host_scratch_peak    " << bytes(r.host_scratch_peak_bytes) << "\n";
  }
  out << "os_peak_rss_bytes    " << bytes(r.os_peak_rss_bytes) << "\n";
  out << "baseline_rss_bytes   " << bytes(r.baseline_rss_bytes) << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "seconds              %.3f\nbytes_per_second     %.3g (%s/s)\n",
                r.seconds, r.bytes_per_second,
                FormatBytes(static_cast<uint64_t>(r.bytes_per_second)).c_str());
  out << line;
  std::snprintf(line, sizeof line, "\n%-28s %-18s %-18s %12s %10s\n", "TENSOR", "LAYOUT",
                "STRATEGY", "SCRATCH", "SECONDS");
  out << line;
  for (const TensorConversionReport& t : r.tensors) {
    std::snprintf(line, sizeof line, "%-28s %-18s %-18s %12llu %10.4f\n", t.internal_name.c_str(),
                  t.layout.c_str(),
                  StrCat(StrategyName(t.strategy), t.on_device ? " (device)" : "").c_str(),
                  static_cast<unsigned long long>(t.scratch_bytes), t.seconds);
    out << line;
  }
  return out.str();
}

std::string ReportJson(const RelayoutReport& r) {
  std::string text;
  JsonWriter w(&text);
  w.BeginObject();
  w.Key("device").String(r.device);
  w.Key("weights_bytes").Uint(r.weights_bytes);
  w.Key("budget_bytes").Uint(r.budget_bytes);
  w.Key("predicted_peak_bytes").Uint(r.predicted_peak_bytes);
  w.Key("measured_peak_bytes").Uint(r.measured_peak_bytes);
  w.Key("scratch_peak_bytes").Uint(r.scratch_peak_bytes);
  w.Key("staging_peak_bytes").Uint(r.staging_peak_bytes);
  w.Key("host_scratch_peak_bytes").Uint(r.host_scratch_peak_bytes);
  w.Key("os_peak_rss_bytes").Uint(r.os_peak_rss_bytes);
  w.Key("baseline_rss_bytes").Uint(r.baseline_rss_bytes);
  w.Key("seconds").Double(r.seconds);
  w.Key("bytes_per_second").Double(r.bytes_per_second);
  w.Key("tensors").BeginArray();
  for (const TensorConversionReport& t : r.tensors) {
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("internal_name").String(t.internal_name);
    w.Key("dtype").String(DTypeName(t.dtype));
    w.Key("shape");
    WriteShape(w, t.shape);
    w.Key("layout").String(t.layout);
    w.Key("strategy").String(StrategyName(t.strategy));
    w.Key("bytes").Uint(t.bytes);
    w.Key("scratch_bytes").Uint(t.scratch_bytes);
    w.Key("on_device").Bool(t.on_device);
    w.Key("seconds").Double(t.seconds);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return text;
}

}  // namespace relayout::cli
