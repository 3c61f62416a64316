// Text and JSON renderings of a conversion plan and a relayout report, as
// `plan` and `convert` print them. The plan's JSON has "layout_tuning"
// (classes, candidates, seconds) with --layout tuned. The report's JSON has exactly the
// top-level keys the server's metrics and GetModelInfo use:
//   weights_bytes, budget_bytes, predicted_peak_bytes, measured_peak_bytes,
//   os_peak_rss_bytes, baseline_rss_bytes, seconds, bytes_per_second, tensors
#pragma once

#include <string>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"

namespace relayout::cli {

// One line per (role, dtype, layout) class: "  attn_q F32 -> rowgroup-g8k8 (5 tensors)".
std::string LayoutSummary(const ConversionPlan& plan);
// --layout tuned's table: per (class, dtype) the representative shape, one
// line per candidate with its decode and prefill microseconds (one matmul
// at 1 and at 64 tokens) and "*" on the chosen one, then the total:
//   "  ffn_down Q4_1 [576, 1536] (30 tensors)\n    * native  12.1 us  140.2 us\n..."
std::string LayoutTuningText(const LayoutTuningReport& report);
std::string PlanJson(const PreparedLoad& load);
std::string ReportText(const RelayoutReport& report);
std::string ReportJson(const RelayoutReport& report);

}  // namespace relayout::cli
