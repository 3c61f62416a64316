// relayoutd plan    --model PATH [--device cpu|auto] [--budget SIZE] [--json]
//                   [--layout auto|native|tuned|NAME[,CLASS[:DTYPE]=LAYOUT]...]
// relayoutd convert --model PATH [same flags] [--report-json FILE]
//
// `plan` prints the decisions of start-up without touching a weight byte;
// `convert` carries them out (load and convert in memory; the checkpoint is
// never written) and prints the relayout report.
#include <csignal>
#include <cstdio>
#include <fstream>

#include "engine/conversion/budget.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/model/model_placement.h"
#include "engine/text/json_writer.h"
#include "kernels/cpu/runtime/cpu_features.h"
#include "server/cli/command.h"
#include "server/cli/load_flags.h"
#include "server/cli/relayout_report_format.h"

namespace relayout::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

void PrintPlanText(const PreparedLoad& load, std::ostream& out) {
  const Plan& p = load.plan.plan;
  out << "model         " << load.checkpoint.path << " ("
      << CheckpointFormatName(load.checkpoint.source->format()) << ")\n";
  out << "device        " << load.plan.device << " ("
      << kernels::CpuFeaturesToString(load.policy->caps().cpu) << "), layout "
      << load.plan.layout_mode << ", workers " << p.workers << "\n";
  out << "device choice " << load.device_choice << "\n";
  out << "weights       " << FormatBytes(p.weight_bytes) << " (" << p.weight_bytes << " bytes)\n";
  out << "budget        " << FormatBytes(p.budget_bytes) << " (" << p.budget_bytes << " bytes)\n";
  out << "predicted     peak " << FormatBytes(p.predicted_peak_bytes) << " ("
      << p.predicted_peak_bytes << " bytes): weights + " << FormatBytes(p.max_scratch_bytes)
      << " scratch at most, " << p.num_waves << " waves\n";
  if (load.tuning.has_value()) {
    out << "layout tuning (best of one matmul: decode 1 token, prefill 64; * chosen)\n"
        << LayoutTuningText(*load.tuning);
  }
  out << "layouts\n" << LayoutSummary(load.plan);
  char line[512];
  std::snprintf(line, sizeof line, "\n%5s %5s  %-28s %-18s %-18s %12s %14s\n", "ORDER", "WAVE",
                "TENSOR", "LAYOUT", "STRATEGY", "SCRATCH", "BYTES");
  out << line;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PlanStep& s = p.steps[i];
    const TensorConversion& t = load.plan.tensors[static_cast<size_t>(s.tensor_index)];
    const std::string layout = t.to.IsCommon() ? "native" : t.to.Name();
    std::snprintf(line, sizeof line, "%5zu %5u  %-28s %-18s %-18s %12llu %14llu\n", i, s.wave,
                  t.internal_name.c_str(), layout.c_str(),
                  std::string(StrategyName(s.strategy)).c_str(),
                  static_cast<unsigned long long>(s.scratch_bytes),
                  static_cast<unsigned long long>(s.final_bytes));
    out << line;
  }
}

class ProgressPrinter final : public ConversionObserver {
 public:
  explicit ProgressPrinter(std::ostream& err) : err_(err) {}
  void OnTensorConverted(const TensorConversionReport&, size_t done, size_t total,
                         const MemoryLedgerSnapshot& ledger) override {
    const size_t decile = done * 10 / total;
    if (decile == last_decile_) return;
    last_decile_ = decile;
    err_ << "convert: " << done * 100 / total << "% (" << done << "/" << total
         << " tensors), ledger " << FormatBytes(ledger.total_current_bytes) << " (peak "
         << FormatBytes(ledger.total_peak_bytes) << ")\n";
  }

 private:
  std::ostream& err_;
  size_t last_decile_ = 0;
};

}  // namespace

int RunPlan(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  LoadFlags load_flags;
  bool json = false;
  bool help = false;
  FlagSet flags("plan");
  load_flags.Register(&flags);
  flags.AddBool("json", &json, "print one JSON document instead of text");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << flags.Usage();
    return 0;
  }
  if (Status s = load_flags.Finish(); !s.ok()) return ReportError(err, s.WithPrefix("plan"));
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), load_flags.options);
  if (!load.ok()) return ReportError(err, load.status());
  if (json) {
    out << PlanJson(*load) << "\n";
  } else {
    PrintPlanText(*load, out);
  }
  return 0;
}

int RunConvert(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  LoadFlags load_flags;
  std::string report_json;
  bool quiet = false;
  bool help = false;
  FlagSet flags("convert");
  load_flags.Register(&flags);
  flags.AddString("report-json", &report_json, "also write the report as JSON to this file");
  flags.AddBool("quiet", &quiet, "no progress lines on stderr");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << flags.Usage();
    return 0;
  }
  if (Status s = load_flags.Finish(); !s.ok()) return ReportError(err, s.WithPrefix("convert"));
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), load_flags.options);
  if (!load.ok()) return ReportError(err, load.status());

  g_interrupted.store(false);
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  struct sigaction previous {};
  sigaction(SIGINT, &action, &previous);
  ProgressPrinter progress(err);
  RelayoutReport report;
  // Onto the plugin device (staged through host memory), or into host memory.
  MemoryLedger ledger(load->device != nullptr ? MemoryLedger::kUnlimited
                                              : load->plan.device_capacity);
  const Status converted =
      ConvertForLoad(*load, &ledger, quiet ? nullptr : &progress, &g_interrupted, &report).status();
  sigaction(SIGINT, &previous, nullptr);
  if (!converted.ok()) return ReportError(err, converted);
  out << ReportText(report);
  if (!report_json.empty()) {
    std::ofstream file(report_json, std::ios::trunc);
    file << ReportJson(report) << "\n";
    if (!file.good()) {
      return ReportError(err, Status::Unavailable(report_json, "cannot write the report"));
    }
  }
  return 0;
}

}  // namespace relayout::cli
