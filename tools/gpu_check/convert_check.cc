// gpu_check_convert: one conversion onto a device, measured as the GPU check
// reports it.
//
//   gpu_check_convert --model PATH --device cuda|hostref [--layout auto|native|NAME]
//                     [--live-to auto|NAME] [--budget 256MiB] [--json FILE] [--no-cpu-compare]
//
// Runs the start-up path of relayoutd (PrepareLoad, ConvertForLoad,
// CreateModel; the plugin is found as relayoutd finds it, e.g. through
// $RELAYOUT_PLUGIN_DIR) and reports, as one JSON line on stdout (and in
// --json):
//   - the device ledger's peak during the conversion against weights +
//     budget (bound_held);
//   - the device's own account of its memory (free_bytes from the driver:
//     cudaMemGetInfo on the CUDA plugin) used since the device was opened,
//     against the ledger's current bytes, after the conversion and again
//     after the model's creation (its workspace and small vectors): within
//     64 MiB (memory_matches);
//   - a 64-bit checksum of every tensor's bytes as the device holds them,
//     downloaded, against the same plan converted on the CPU
//     (ExecuteConversion into host memory): checksums_equal, naming the
//     tensors that differ;
//   - load-to-ready time (open and plan, convert, create the model) against
//     the time to read the checkpoint's files once, sequentially, in 16 MiB
//     reads (done first, so both find the files equally cached).
// With --live-to L, the weights are loaded native (as serving while
// converting loads them) and the model created, then moved into L in place
// by the live relayout (live_relayout.h: each tensor downloaded to host
// staging, converted, uploaded, its matmul rebound), timed; the checksums
// are then the moved bytes' against the CPU's start-up conversion into L,
// and the live plan's scratch must stay within the budget.
// Exit 0 when every check held, 1 when one did not, 2 on an error.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/conversion/live_relayout.h"
#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"
#include "engine/model/model_placement.h"
#include "engine/text/json_writer.h"
#include "kernels/cpu/runtime/thread_pool.h"

namespace relayout {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMemorySlack = int64_t{64} << 20;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// A fast non-cryptographic 64-bit hash of bytes: four independent lanes of
// multiply-rotate over 32-byte stripes, then the tail and the length.
uint64_t Hash(const std::byte* p, uint64_t n) {
  constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t lane[4] = {kP1, kP2, kP1 ^ kP2, ~kP1};
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lane[l] = Rotl(lane[l] ^ (w * kP2), 31) * kP1;
    }
  }
  uint64_t h = n * kP1;
  for (int l = 0; l < 4; ++l) h = Rotl(h ^ (lane[l] * kP2), 27) * kP1 + kP2;
  for (; i < n; ++i) h = Rotl(h ^ (static_cast<uint64_t>(p[i]) * kP1), 11) * kP2;
  return h ^ (h >> 29);
}

uint64_t Combine(uint64_t h, uint64_t v) {
  return Rotl(h ^ (v * 0xC2B2AE3D27D4EB4Full), 27) * 0x9E3779B185EBCA87ull;
}

std::string Hex(uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

struct ReadOnce {
  uint64_t bytes = 0;
  double seconds = 0;
};

// Reads every file once, front to back, in 16 MiB reads.
Result<ReadOnce> ReadFilesOnce(const std::vector<std::string>& paths) {
  ReadOnce r;
  std::vector<char> buf(16 << 20);
  const auto start = Clock::now();
  for (const std::string& path : paths) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return Status::NotFound(path, "cannot open");
    for (;;) {
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        ::close(fd);
        return Status::Unavailable(path, "read failed");
      }
      if (n == 0) break;
      r.bytes += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  r.seconds = Since(start);
  return r;
}

struct Memory {
  int64_t driver_used = 0;  // used since the device was opened, as its driver says
  int64_t ledger = 0;       // the device ledger's current bytes
  int64_t Diff() const { return driver_used - ledger; }
  bool Matches() const { return std::llabs(Diff()) <= kMemorySlack; }
};

Memory MeasureMemory(const Device& device, uint64_t used_at_open) {
  const DeviceInfo now = device.QueryInfo();
  Memory m;
  m.driver_used =
      static_cast<int64_t>(now.total_bytes - now.free_bytes) - static_cast<int64_t>(used_at_open);
  m.ledger = static_cast<int64_t>(device.ledger().total_current());
  return m;
}

int Usage() {
  std::fprintf(stderr,
               "usage: gpu_check_convert --model PATH --device SPEC [--layout L] [--live-to L] "
               "[--budget B] [--json FILE] [--no-cpu-compare]\n");
  return 2;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "gpu_check_convert: %s\n", s.ToString().c_str());
  return 2;
}

int Run(int argc, char** argv) {
  LoadOptions options;
  options.device = "";
  options.budget = "256MiB";
  std::string json_path;
  std::string live_to;
  bool cpu_compare = true;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-cpu-compare") {
      cpu_compare = false;
      continue;
    }
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (flag == "--model") {
      options.model_path = v;
    } else if (flag == "--device") {
      options.device = v;
    } else if (flag == "--layout") {
      options.layout = v;
    } else if (flag == "--budget") {
      options.budget = v;
    } else if (flag == "--json") {
      json_path = v;
    } else if (flag == "--live-to") {
      live_to = v;
    } else {
      return Usage();
    }
  }
  if (options.model_path.empty() || options.device.empty() || options.device == "cpu" ||
      options.device == "auto") {
    return Usage();  // a plugin device, named
  }
  if (!live_to.empty()) {
    // Loaded native, moved into live_to afterwards; target_plan is its plan.
    options.layout = live_to;
    options.native_first = true;
  }

  // The files, read once: the floor for a load.
  Result<Checkpoint> probe = OpenCheckpoint(Env::Default(), options.model_path);
  if (!probe.ok()) return Fail(probe.status());
  Result<ReadOnce> read = ReadFilesOnce(probe->source->paths());
  if (!read.ok()) return Fail(read.status());

  // Load to ready: open the device and plan, convert, create the model.
  const auto t0 = Clock::now();
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  if (!load.ok()) return Fail(load.status());
  if (load->device == nullptr) return Fail(Status::FailedPrecondition("device", "not opened"));
  Device& device = *load->device;
  const double prepare_s = Since(t0);
  const DeviceInfo at_open = device.QueryInfo();
  const uint64_t used_at_open = at_open.total_bytes - at_open.free_bytes;
  const auto t1 = Clock::now();
  MemoryLedger host_ledger;
  RelayoutReport report;
  Result<PlacedWeights> placed = ConvertForLoad(*load, &host_ledger, nullptr, nullptr, &report);
  if (!placed.ok()) return Fail(placed.status());
  const double convert_s = Since(t1);
  const Memory after_convert = MeasureMemory(device, used_at_open);

  const auto t2 = Clock::now();
  kernels::ThreadPool pool(0);
  Result<std::unique_ptr<LlamaModel>> model =
      CreateModel(*load, std::move(*placed), &pool, &host_ledger);
  if (!model.ok()) return Fail(model.status());
  const double create_s = Since(t2);
  const Memory after_create = MeasureMemory(device, used_at_open);
  const double ready_s = prepare_s + convert_s + create_s;

  // The live relayout into live_to, timed, on the model that serves.
  double live_s = 0;
  LiveRelayoutPlan live;
  MemoryLedger live_ledger;  // its host staging and scratch
  if (!live_to.empty()) {
    const std::vector<ResidentTensor> tensors = (*model)->ResidentTensors();
    const LayoutPolicy& policy = *load->policy;
    const auto tl = Clock::now();
    Result<LiveRelayoutPlan> planned = PlanLiveRelayout(
        tensors,
        [&](DType d, TensorRole r, std::span<const int64_t> shape) {
          return policy.Choose(d, r, shape);
        },
        report.budget_bytes);
    if (!planned.ok()) return Fail(planned.status());
    live = std::move(*planned);
    for (const LiveRelayoutStep& step : live.steps) {
      Layout now;
      const Status moved = ConvertResidentTensor(step, tensors[step.tensor].data, &device,
                                                 &live_ledger, &now, nullptr);
      if (Status s = (*model)->SetWeightLayout(step.tensor, now); !s.ok()) return Fail(s);
      if (!moved.ok()) return Fail(moved);
    }
    live_s = Since(tl);
  }

  // The bytes on the device (not timed).
  const auto th = Clock::now();
  std::vector<std::string> names;
  std::vector<uint64_t> device_hashes;
  {
    const std::vector<ResidentTensor> tensors = (*model)->ResidentTensors();
    uint64_t largest = 0;
    for (const ResidentTensor& t : tensors) largest = std::max(largest, t.data.size);
    std::vector<std::byte> host(largest);
    for (const ResidentTensor& t : tensors) {
      std::span<std::byte> dst(host.data(), t.data.size);
      if (Status s = device.Download(t.data, dst); !s.ok()) return Fail(s);
      names.push_back(t.name);
      device_hashes.push_back(Hash(dst.data(), dst.size()));
    }
  }
  const double hash_s = Since(th);
  model->reset();

  // The same plan converted on the CPU.
  std::vector<uint64_t> cpu_hashes;
  double cpu_s = 0;
  if (cpu_compare) {
    const auto t3 = Clock::now();
    MemoryLedger cpu_ledger;
    const ConversionPlan& target = load->target_plan ? *load->target_plan : load->plan;
    Result<LoadedWeights> cpu =
        ExecuteConversion(*load->checkpoint.source, target, &cpu_ledger, nullptr, nullptr, nullptr);
    if (!cpu.ok()) return Fail(cpu.status());
    cpu_hashes.resize(cpu->tensors.size());
    pool.Run(static_cast<int64_t>(cpu->tensors.size()), [&](int64_t i) {
      const HostBuffer& b = cpu->tensors[static_cast<size_t>(i)].buffer;
      cpu_hashes[static_cast<size_t>(i)] = Hash(b.data(), b.size());
    });
    cpu_s = Since(t3);
  }

  uint64_t device_sum = 0, cpu_sum = 0;
  std::vector<std::string> differ;
  for (size_t i = 0; i < device_hashes.size(); ++i) {
    device_sum = Combine(device_sum, device_hashes[i]);
    if (i < cpu_hashes.size()) {
      cpu_sum = Combine(cpu_sum, cpu_hashes[i]);
      if (cpu_hashes[i] != device_hashes[i]) differ.push_back(names[i]);
    }
  }
  const bool checksums_equal =
      cpu_compare && cpu_hashes.size() == device_hashes.size() && differ.empty();
  size_t on_device = 0;
  for (const TensorConversionReport& t : report.tensors) on_device += t.on_device ? 1 : 0;

  std::string json;
  JsonWriter w(&json, /*pretty=*/false);
  w.BeginObject();
  w.Key("model").String(options.model_path);
  w.Key("device").String(device.spec());
  w.Key("device_name").String(at_open.name);
  w.Key("layout").String(options.layout);
  w.Key("tensors").Uint(device_hashes.size());
  w.Key("transformed_on_device").Uint(on_device);
  w.Key("weights_bytes").Uint(report.weights_bytes);
  w.Key("budget_bytes").Uint(report.budget_bytes);
  w.Key("ledger_peak_bytes").Uint(report.measured_peak_bytes);
  w.Key("peak_over_weights_bytes")
      .Int(static_cast<int64_t>(report.measured_peak_bytes) -
           static_cast<int64_t>(report.weights_bytes));
  w.Key("bound_held").Bool(report.bound_held());
  w.Key("staging_peak_bytes").Uint(report.staging_peak_bytes);
  w.Key("host_scratch_peak_bytes").Uint(report.host_scratch_peak_bytes);
  w.Key("driver_used_after_convert_bytes").Int(after_convert.driver_used);
  w.Key("ledger_after_convert_bytes").Int(after_convert.ledger);
  w.Key("driver_minus_ledger_after_convert_bytes").Int(after_convert.Diff());
  w.Key("driver_used_after_create_bytes").Int(after_create.driver_used);
  w.Key("ledger_after_create_bytes").Int(after_create.ledger);
  w.Key("driver_minus_ledger_after_create_bytes").Int(after_create.Diff());
  w.Key("memory_matches").Bool(after_convert.Matches() && after_create.Matches());
  w.Key("checksum_device").String(Hex(device_sum));
  w.Key("checksum_cpu").String(cpu_compare ? Hex(cpu_sum) : "");
  w.Key("checksums_equal").Bool(checksums_equal);
  w.Key("tensors_differing").BeginArray();
  for (size_t i = 0; i < differ.size() && i < 16; ++i) w.String(differ[i]);
  w.EndArray();
  w.Key("file_bytes").Uint(read->bytes);
  w.Key("read_once_seconds").Double(read->seconds);
  w.Key("read_once_gb_per_s").Double(read->seconds > 0 ? read->bytes / read->seconds / 1e9 : 0);
  w.Key("prepare_seconds").Double(prepare_s);
  w.Key("convert_seconds").Double(convert_s);
  w.Key("create_seconds").Double(create_s);
  w.Key("load_to_ready_seconds").Double(ready_s);
  w.Key("ready_over_read_once").Double(read->seconds > 0 ? ready_s / read->seconds : 0);
  w.Key("download_hash_seconds").Double(hash_s);
  w.Key("cpu_convert_hash_seconds").Double(cpu_s);
  const bool live_bound_held = live.max_scratch_bytes <= report.budget_bytes;
  if (!live_to.empty()) {
    w.Key("live_to").String(live_to);
    w.Key("live_tensors").Uint(live.steps.size());
    w.Key("live_bytes").Uint(live.bytes_to_convert);
    w.Key("live_seconds").Double(live_s);
    w.Key("live_gb_per_s").Double(live_s > 0 ? live.bytes_to_convert / live_s / 1e9 : 0);
    w.Key("live_scratch_peak_bytes").Uint(live_ledger.peak(MemoryCategory::kScratch));
    w.Key("live_staging_peak_bytes").Uint(live_ledger.peak(MemoryCategory::kStaging));
    w.Key("live_bound_held").Bool(live_bound_held);
  }
  w.EndObject();
  std::printf("%s\n", json.c_str());
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) return Fail(Status::Unavailable(json_path, "cannot write"));
    std::fprintf(f, "%s\n", json.c_str());
    std::fclose(f);
  }
  const bool ok = report.bound_held() && after_convert.Matches() && after_create.Matches() &&
                  (checksums_equal || !cpu_compare) && live_bound_held;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace relayout

int main(int argc, char** argv) { return relayout::Run(argc, argv); }
