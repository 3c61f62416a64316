#include "engine/device/plugin_device.h"

#include <dlfcn.h>

#include <cstring>
#include <utility>

namespace relayout {
namespace {

using VersionFn = int32_t (*)();
using ScoreFn = int32_t (*)();
using InitFn = const rl_device_api* (*)();

Status Refused(const std::string& path, std::string_view why) {
  return Status::FailedPrecondition(path, why);
}

}  // namespace

Result<std::shared_ptr<const PluginLibrary>> PluginLibrary::Load(const std::string& path) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    return Refused(path, StrCat("cannot load: ", why != nullptr ? why : "dlopen failed"));
  }
  // RTLD_NODELETE keeps the code mapped after dlclose; the handle itself is
  // not needed past the lookups.
  struct Close {
    void* h;
    ~Close() { dlclose(h); }
  } close{handle};
  const auto version = reinterpret_cast<VersionFn>(dlsym(handle, "rl_plugin_api_version"));
  const auto score = reinterpret_cast<ScoreFn>(dlsym(handle, "rl_plugin_score"));
  const auto init = reinterpret_cast<InitFn>(dlsym(handle, "rl_plugin_init"));
  if (version == nullptr || score == nullptr || init == nullptr) {
    return Refused(path,
                   "not a relayoutd device plugin (rl_plugin_api_version, "
                   "rl_plugin_score or rl_plugin_init missing)");
  }
  if (const int32_t v = version(); v != RL_DEVICE_ABI_VERSION) {
    return Refused(
        path, StrCat("device ABI version ", v, ", this relayoutd speaks ", RL_DEVICE_ABI_VERSION));
  }
  const int32_t s = score();
  if (s <= 0) return Refused(path, "cannot run on this machine (score 0: no driver or no device)");
  const rl_device_api* api = init();
  if (api == nullptr || api->api_version != RL_DEVICE_ABI_VERSION || api->name == nullptr ||
      api->last_error == nullptr) {
    return Refused(path, "rl_plugin_init gave no table of this ABI version");
  }
  if ((api->step_begin == nullptr) != (api->step_end == nullptr)) {
    return Refused(path, "step_begin and step_end must come together");
  }
  return std::shared_ptr<const PluginLibrary>(new PluginLibrary(path, api, s));
}

Result<std::unique_ptr<PluginDevice>> PluginDevice::Open(
    std::shared_ptr<const PluginLibrary> library, int32_t index) {
  const rl_device_api& api = library->api();
  const std::string spec = StrCat(api.name, ":", index);
  rl_device* device = nullptr;
  if (const rl_status s = api.open_device(index, &device); s != RL_OK) {
    return Status::FromCode(static_cast<StatusCode>(s), spec, api.last_error());
  }
  rl_device_info raw{};
  if (const rl_status s = api.device_info(device, &raw); s != RL_OK) {
    const Status error = Status::FromCode(static_cast<StatusCode>(s), spec, api.last_error());
    api.close_device(device);
    return error;
  }
  DeviceInfo info{std::string(raw.name, strnlen(raw.name, sizeof raw.name)),
                  raw.total_bytes,
                  raw.free_bytes,
                  raw.alignment,
                  raw.host_addressable != 0,
                  raw.compute_major,
                  raw.compute_minor};
  return std::unique_ptr<PluginDevice>(
      new PluginDevice(std::move(library), device, spec, std::move(info)));
}

PluginDevice::PluginDevice(std::shared_ptr<const PluginLibrary> library, rl_device* device,
                           std::string spec, DeviceInfo info)
    : Device(std::move(spec), std::move(info)),
      library_(std::move(library)),
      api_(library_->api()),
      device_(device) {}

PluginDevice::~PluginDevice() { api_.close_device(device_); }

Status PluginDevice::Check(rl_status code, std::string_view what) const {
  if (code == RL_OK) return Status::OK();
  return Status::FromCode(static_cast<StatusCode>(code), StrCat(spec(), ": ", what),
                          api_.last_error());
}

uint64_t PluginDevice::AllocSize(uint64_t bytes) const { return api_.alloc_size(device_, bytes); }

Status PluginDevice::Synchronize() { return Check(api_.synchronize(device_), "synchronize"); }

Result<Device::Allocation> PluginDevice::DoAllocate(uint64_t bytes) {
  rl_buffer* buffer = nullptr;
  RETURN_IF_ERROR(Check(api_.buffer_alloc(device_, bytes, &buffer), "allocate"));
  return Allocation{buffer, static_cast<std::byte*>(api_.buffer_host_ptr(buffer))};
}

Status PluginDevice::DoFree(void* handle) {
  return Check(api_.buffer_free(device_, static_cast<rl_buffer*>(handle)), "free");
}

Status PluginDevice::DoUpload(void* handle, uint64_t offset, const std::byte* src, uint64_t bytes) {
  return Check(api_.upload(device_, static_cast<rl_buffer*>(handle), offset, src, bytes), "upload");
}

Status PluginDevice::DoDownload(void* handle, uint64_t offset, std::byte* dst, uint64_t bytes) {
  return Check(api_.download(device_, static_cast<const rl_buffer*>(handle), offset, dst, bytes),
               "download");
}

Status PluginDevice::DoFill(void* handle, uint64_t offset, uint8_t value, uint64_t bytes) {
  return Check(api_.fill(device_, static_cast<rl_buffer*>(handle), offset, value, bytes), "fill");
}

bool PluginDevice::has_async() const {
  return api_.upload_async != nullptr && api_.event_create != nullptr &&
         api_.event_destroy != nullptr && api_.event_record != nullptr &&
         api_.event_synchronize != nullptr;
}

Status PluginDevice::DoUploadAsync(void* handle, uint64_t offset, const std::byte* src,
                                   uint64_t bytes) {
  if (!has_async()) return DoUpload(handle, offset, src, bytes);
  return Check(api_.upload_async(device_, static_cast<rl_buffer*>(handle), offset, src, bytes),
               "upload");
}

Result<void*> PluginDevice::DoCreateEvent() {
  if (!has_async()) return nullptr;
  rl_event* event = nullptr;
  RETURN_IF_ERROR(Check(api_.event_create(device_, &event), "event"));
  return static_cast<void*>(event);
}

void PluginDevice::DoDestroyEvent(void* event) {
  api_.event_destroy(device_, static_cast<rl_event*>(event));
}

Status PluginDevice::DoRecord(void* event) {
  return Check(api_.event_record(device_, static_cast<rl_event*>(event)), "event record");
}

Status PluginDevice::DoWait(void* event) {
  return Check(api_.event_synchronize(device_, static_cast<rl_event*>(event)), "event wait");
}

Result<std::byte*> PluginDevice::DoHostAlloc(uint64_t bytes) {
  if (api_.host_alloc == nullptr || api_.host_free == nullptr) {
    return Status::Unimplemented(spec(), "no pinned host memory");
  }
  void* p = nullptr;
  RETURN_IF_ERROR(Check(api_.host_alloc(device_, bytes, &p), "pinned host allocation"));
  return static_cast<std::byte*>(p);
}

void PluginDevice::DoHostFree(std::byte* data) { api_.host_free(device_, data); }

Result<rl_ref> PluginDevice::Ref(const DeviceRef& r, std::string_view op) const {
  if (r.device != this || r.handle == nullptr) {
    return Status::InvalidArgument(StrCat(spec(), ": ", op),
                                   "an operand is not in a buffer of this device");
  }
  return rl_ref{static_cast<rl_buffer*>(r.handle), r.offset};
}

std::span<const rl_attention_span> PluginDevice::RawSpans(
    std::span<const kernels::AttentionSpan> spans) {
  spans_.clear();
  for (const kernels::AttentionSpan& s : spans) {
    spans_.push_back({s.first_row, s.rows, s.start_position, s.block_table});
  }
  return spans_;
}

Status PluginDevice::Missing(std::string_view op) const {
  return Status::Unimplemented(spec(), StrCat("the ", api_.name, " plugin has no ", op, " op"));
}

namespace {

int32_t DType(kernels::WeightType t) {
  switch (t) {
    case kernels::WeightType::kF32:
      return RL_DTYPE_F32;
    case kernels::WeightType::kF16:
      return RL_DTYPE_F16;
    case kernels::WeightType::kBF16:
      return RL_DTYPE_BF16;
    case kernels::WeightType::kQ8_0:
      return RL_DTYPE_Q8_0;
    case kernels::WeightType::kQ4_0:
      return RL_DTYPE_Q4_0;
    case kernels::WeightType::kQ4_1:
      return RL_DTYPE_Q4_1;
    case kernels::WeightType::kQ5_0:
      return RL_DTYPE_Q5_0;
    case kernels::WeightType::kQ5_1:
      return RL_DTYPE_Q5_1;
    case kernels::WeightType::kIQ4_NL:
      return RL_DTYPE_IQ4_NL;
    case kernels::WeightType::kQ2_K:
      return RL_DTYPE_Q2_K;
    case kernels::WeightType::kQ3_K:
      return RL_DTYPE_Q3_K;
    case kernels::WeightType::kQ4_K:
      return RL_DTYPE_Q4_K;
    case kernels::WeightType::kQ5_K:
      return RL_DTYPE_Q5_K;
    case kernels::WeightType::kQ6_K:
      return RL_DTYPE_Q6_K;
  }
  return -1;
}

int32_t LayoutCode(kernels::WeightLayout l) {
  switch (l) {
    case kernels::WeightLayout::kRowMajor:
      return RL_LAYOUT_ROW_MAJOR;
    case kernels::WeightLayout::kRowGroup:
      return RL_LAYOUT_ROW_GROUP;
    case kernels::WeightLayout::kQuantRowGroup:
      return RL_LAYOUT_QUANT_ROW_GROUP;
    case kernels::WeightLayout::kBf16KPair:
      return RL_LAYOUT_BF16_KPAIR;
  }
  return -1;
}

rl_matmul_weight RawWeight(const DeviceMatmulWeight& w, rl_ref data) {
  return rl_matmul_weight{data,         DType(w.type), LayoutCode(w.layout), w.rows, w.cols,
                          w.group_rows, w.k_block};
}

rl_attention_params RawParams(const kernels::PagedAttentionParams& p, int64_t pool_blocks) {
  return rl_attention_params{static_cast<int32_t>(p.n_heads),
                             static_cast<int32_t>(p.n_kv_heads),
                             static_cast<int32_t>(p.head_dim),
                             static_cast<int32_t>(p.block_size),
                             p.scale,
                             p.kv_elem == kernels::KvElem::kF16 ? RL_KV_F16 : RL_KV_F32,
                             pool_blocks};
}

}  // namespace

DeviceInfo PluginDevice::QueryInfo() const {
  rl_device_info raw{};
  if (api_.device_info(device_, &raw) != RL_OK) return info();
  DeviceInfo now = info();
  now.total_bytes = raw.total_bytes;
  now.free_bytes = raw.free_bytes;
  return now;
}

bool PluginDevice::runs_forward_pass() const {
  const rl_device_api& a = api_;
  return a.matmul_supported && a.matmul && a.add_row_bias && a.embedding && a.rms_norm && a.rope &&
         a.add && a.silu_gate && a.kv_write && a.attention;
}

// Step graphs are optional, both entries or neither (the loader refuses a
// table with one).
Status PluginDevice::StepBegin() {
  if (api_.step_begin == nullptr) return Status::OK();
  return Check(api_.step_begin(device_), "step_begin");
}

Status PluginDevice::StepEnd() {
  if (api_.step_end == nullptr) return Status::OK();
  return Check(api_.step_end(device_), "step_end");
}

bool PluginDevice::MatmulSupported(const DeviceMatmulWeight& w) const {
  if (api_.matmul_supported == nullptr || api_.matmul == nullptr) return false;
  const rl_matmul_weight raw = RawWeight(w, rl_ref{nullptr, 0});
  return api_.matmul_supported(device_, &raw) != 0;
}

Status PluginDevice::Matmul(const DeviceMatmulWeight& w, DeviceRef x, int64_t tokens, DeviceRef y) {
  if (api_.matmul == nullptr) return Missing("matmul");
  ASSIGN_OR_RETURN(rl_ref data, Ref(w.data, "matmul"));
  ASSIGN_OR_RETURN(rl_ref rx, Ref(x, "matmul"));
  ASSIGN_OR_RETURN(rl_ref ry, Ref(y, "matmul"));
  const rl_matmul_weight raw = RawWeight(w, data);
  return Check(api_.matmul(device_, &raw, rx, tokens, ry), "matmul");
}

Status PluginDevice::AddRowBias(DeviceRef bias, int64_t rows, int64_t cols, DeviceRef y) {
  if (api_.add_row_bias == nullptr) return Missing("add_row_bias");
  ASSIGN_OR_RETURN(rl_ref rb, Ref(bias, "add_row_bias"));
  ASSIGN_OR_RETURN(rl_ref ry, Ref(y, "add_row_bias"));
  return Check(api_.add_row_bias(device_, rb, rows, cols, ry), "add_row_bias");
}

Status PluginDevice::Embedding(DeviceRef table, kernels::WeightType type, int64_t vocab,
                               int64_t dim, std::span<const int32_t> tokens, DeviceRef out) {
  if (api_.embedding == nullptr) return Missing("embedding");
  ASSIGN_OR_RETURN(rl_ref rt, Ref(table, "embedding"));
  ASSIGN_OR_RETURN(rl_ref ro, Ref(out, "embedding"));
  return Check(api_.embedding(device_, rt, DType(type), vocab, dim, tokens.data(),
                              static_cast<int64_t>(tokens.size()), ro),
               "embedding");
}

Status PluginDevice::RmsNorm(DeviceRef x, DeviceRef weight, int64_t rows, int64_t dim, float eps,
                             DeviceRef out) {
  if (api_.rms_norm == nullptr) return Missing("rms_norm");
  ASSIGN_OR_RETURN(rl_ref rx, Ref(x, "rms_norm"));
  ASSIGN_OR_RETURN(rl_ref rw, Ref(weight, "rms_norm"));
  ASSIGN_OR_RETURN(rl_ref ro, Ref(out, "rms_norm"));
  return Check(api_.rms_norm(device_, rx, rw, rows, dim, eps, ro), "rms_norm");
}

Status PluginDevice::Rope(DeviceRef x, int64_t rows, int64_t heads, int64_t head_dim,
                          int64_t rope_dim, std::span<const int32_t> positions, DeviceRef inv_freq,
                          kernels::RopePairing pairing) {
  if (api_.rope == nullptr) return Missing("rope");
  if (positions.size() < static_cast<size_t>(rows)) {
    return Status::InvalidArgument(StrCat(spec(), ": rope"), "fewer positions than rows");
  }
  ASSIGN_OR_RETURN(rl_ref rx, Ref(x, "rope"));
  ASSIGN_OR_RETURN(rl_ref rf, Ref(inv_freq, "rope"));
  return Check(
      api_.rope(device_, rx, rows, static_cast<int32_t>(heads), static_cast<int32_t>(head_dim),
                static_cast<int32_t>(rope_dim), positions.data(), rf,
                pairing == kernels::RopePairing::kHalves ? RL_ROPE_HALVES : RL_ROPE_INTERLEAVED),
      "rope");
}

Status PluginDevice::Add(DeviceRef src, int64_t n, DeviceRef dst) {
  if (api_.add == nullptr) return Missing("add");
  ASSIGN_OR_RETURN(rl_ref rs, Ref(src, "add"));
  ASSIGN_OR_RETURN(rl_ref rd, Ref(dst, "add"));
  return Check(api_.add(device_, rs, n, rd), "add");
}

Status PluginDevice::SiluGate(DeviceRef gate, DeviceRef up, int64_t n, DeviceRef out) {
  if (api_.silu_gate == nullptr) return Missing("silu_gate");
  ASSIGN_OR_RETURN(rl_ref rg, Ref(gate, "silu_gate"));
  ASSIGN_OR_RETURN(rl_ref ru, Ref(up, "silu_gate"));
  ASSIGN_OR_RETURN(rl_ref ro, Ref(out, "silu_gate"));
  return Check(api_.silu_gate(device_, rg, ru, n, ro), "silu_gate");
}

Status PluginDevice::KvWrite(const kernels::PagedAttentionParams& p, int64_t pool_blocks,
                             DeviceRef k, DeviceRef v,
                             std::span<const kernels::AttentionSpan> spans, DeviceRef k_pool,
                             DeviceRef v_pool) {
  if (api_.kv_write == nullptr) return Missing("kv_write");
  ASSIGN_OR_RETURN(rl_ref rk, Ref(k, "kv_write"));
  ASSIGN_OR_RETURN(rl_ref rv, Ref(v, "kv_write"));
  ASSIGN_OR_RETURN(rl_ref rkp, Ref(k_pool, "kv_write"));
  ASSIGN_OR_RETURN(rl_ref rvp, Ref(v_pool, "kv_write"));
  const rl_attention_params raw = RawParams(p, pool_blocks);
  const std::span<const rl_attention_span> raw_spans = RawSpans(spans);
  return Check(api_.kv_write(device_, &raw, rk, rv, raw_spans.data(),
                             static_cast<int64_t>(raw_spans.size()), rkp, rvp),
               "kv_write");
}

Status PluginDevice::Attention(const kernels::PagedAttentionParams& p, int64_t pool_blocks,
                               DeviceRef q, std::span<const kernels::AttentionSpan> spans,
                               DeviceRef k_pool, DeviceRef v_pool, DeviceRef out) {
  if (api_.attention == nullptr) return Missing("attention");
  ASSIGN_OR_RETURN(rl_ref rq, Ref(q, "attention"));
  ASSIGN_OR_RETURN(rl_ref rkp, Ref(k_pool, "attention"));
  ASSIGN_OR_RETURN(rl_ref rvp, Ref(v_pool, "attention"));
  ASSIGN_OR_RETURN(rl_ref ro, Ref(out, "attention"));
  const rl_attention_params raw = RawParams(p, pool_blocks);
  const std::span<const rl_attention_span> raw_spans = RawSpans(spans);
  return Check(api_.attention(device_, &raw, rq, raw_spans.data(),
                              static_cast<int64_t>(raw_spans.size()), rkp, rvp, ro),
               "attention");
}

Status PluginDevice::Argmax(DeviceRef x, int64_t rows, int64_t cols, std::span<int32_t> out) {
  if (api_.argmax == nullptr) return Missing("argmax");
  if (out.size() < static_cast<size_t>(rows)) {
    return Status::InvalidArgument(StrCat(spec(), ": argmax"), "output shorter than rows");
  }
  ASSIGN_OR_RETURN(rl_ref rx, Ref(x, "argmax"));
  return Check(api_.argmax(device_, rx, rows, cols, out.data()), "argmax");
}

std::optional<uint64_t> PluginDevice::TransformScratchBytes(const DeviceMatmulWeight& w) const {
  if (api_.transform_scratch_bytes == nullptr || api_.transform_in_place == nullptr) {
    return std::nullopt;
  }
  const rl_matmul_weight raw = RawWeight(w, rl_ref{nullptr, 0});
  const uint64_t bytes = api_.transform_scratch_bytes(device_, &raw);
  if (bytes == UINT64_MAX) return std::nullopt;
  return bytes;
}

Status PluginDevice::TransformInPlace(const DeviceMatmulWeight& w, DeviceRef scratch) {
  if (api_.transform_in_place == nullptr) return Missing("transform_in_place");
  ASSIGN_OR_RETURN(rl_ref data, Ref(w.data, "transform_in_place"));
  rl_ref rs{nullptr, 0};
  if (scratch.device != nullptr || scratch.handle != nullptr) {
    ASSIGN_OR_RETURN(rs, Ref(scratch, "transform_in_place"));
  }
  const rl_matmul_weight raw = RawWeight(w, data);
  return Check(api_.transform_in_place(device_, &raw, rs), "transform_in_place");
}

}  // namespace relayout
