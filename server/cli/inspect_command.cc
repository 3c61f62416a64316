// relayoutd inspect --model PATH [--device SPEC] [--json]
//
// Prints a checkpoint's format, config and every tensor (name, role, dtype,
// shape, bytes) with totals, and the device the model would run on and why
// (the same choice as plan, generate and serve make). Reads headers only: no
// tensor byte is read.
#include <cstdio>
#include <map>

#include "engine/checkpoint/checkpoint.h"
#include "engine/conversion/budget.h"
#include "engine/device/device_loader.h"
#include "engine/text/json_writer.h"
#include "server/cli/command.h"
#include "server/cli/flags.h"

namespace relayout::cli {
namespace {

struct Totals {
  uint64_t tensors = 0;
  uint64_t bytes = 0;
  uint64_t parameters = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_dtype;  // name -> (tensors, bytes)
};

Totals Sum(const WeightSource& source) {
  Totals t;
  for (const TensorInfo& info : source.tensors()) {
    ++t.tensors;
    t.bytes += info.byte_size;
    t.parameters += ElementCount(info.shape).value_or(0);
    auto& d = t.by_dtype[std::string(DTypeName(info.dtype))];
    ++d.first;
    d.second += info.byte_size;
  }
  return t;
}

// Role name per source tensor index.
std::vector<const BoundTensor*> RolesByIndex(const Checkpoint& c) {
  std::vector<const BoundTensor*> roles(c.source->tensors().size(), nullptr);
  for (const BoundTensor& b : c.model.tensors) roles[b.source_index] = &b;
  return roles;
}

void WriteConfigJson(JsonWriter& w, const ModelConfig& c) {
  w.BeginObject();
  w.Key("architecture").String(c.architecture);
  w.Key("hidden_size").Int(c.hidden_size);
  w.Key("num_layers").Int(c.num_layers);
  w.Key("num_heads").Int(c.num_heads);
  w.Key("num_kv_heads").Int(c.num_kv_heads);
  w.Key("head_dim").Int(c.head_dim);
  w.Key("ffn_size").Int(c.ffn_size);
  w.Key("vocab_size").Int(c.vocab_size);
  w.Key("rms_eps").Double(c.rms_eps);
  w.Key("rope_theta").Double(c.rope_theta);
  w.Key("rope_dim").Int(c.rope_dim);
  w.Key("rope_scaling").BeginObject();
  w.Key("type").String(RopeScalingName(c.rope_scaling.type));
  w.Key("factor").Double(c.rope_scaling.factor);
  if (c.rope_scaling.type == RopeScalingType::kLlama3) {
    w.Key("low_freq_factor").Double(c.rope_scaling.low_freq_factor);
    w.Key("high_freq_factor").Double(c.rope_scaling.high_freq_factor);
    w.Key("original_max_position_embeddings").Int(c.rope_scaling.original_max_position_embeddings);
    w.Key("from_freq_factors_tensor").Bool(c.rope_scaling.from_freq_factors_tensor);
  }
  w.EndObject();
  w.Key("tie_word_embeddings").Bool(c.tie_word_embeddings);
  w.Key("attention_bias").Bool(c.attention_bias);
  w.Key("mlp_bias").Bool(c.mlp_bias);
  w.Key("context_length").Int(c.context_length);
  w.Key("bos_token_id").Int(c.bos_token_id);
  w.Key("eos_token_ids").BeginArray();
  for (int64_t id : c.eos_token_ids) w.Int(id);
  w.EndArray();
  w.EndObject();
}

// The device a --device spec resolves to, and why.
struct DeviceLine {
  std::string spec;
  std::string name;
  std::string why;
  bool forward_pass = false;
};

Result<DeviceLine> ResolveDevice(const std::string& spec) {
  DeviceRequest request;
  request.spec = spec;
  ASSIGN_OR_RETURN(OpenedDevice opened, OpenDevice(request));
  return DeviceLine{opened.device->spec(), opened.device->info().name, opened.why,
                    opened.device->runs_forward_pass()};
}

void PrintJson(const Checkpoint& c, const DeviceLine& device, std::ostream& out) {
  std::string text;
  JsonWriter w(&text);
  const Totals totals = Sum(*c.source);
  const auto roles = RolesByIndex(c);
  w.BeginObject();
  w.Key("device").BeginObject();
  w.Key("spec").String(device.spec);
  w.Key("name").String(device.name);
  w.Key("why").String(device.why);
  w.Key("runs_forward_pass").Bool(device.forward_pass);
  w.EndObject();
  w.Key("format").String(CheckpointFormatName(c.source->format()));
  w.Key("naming").String(NamingSchemeName(c.naming));
  w.Key("paths").BeginArray();
  for (const std::string& p : c.source->paths()) w.String(p);
  w.EndArray();
  w.Key("config_path").String(c.config_path);
  w.Key("config");
  WriteConfigJson(w, c.config);
  w.Key("tensors").BeginArray();
  const auto& tensors = c.source->tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("internal_name").String(roles[i] ? roles[i]->internal_name : t.name);
    w.Key("role").String(TensorRoleName(roles[i] ? roles[i]->ref.role : TensorRole::kOther));
    w.Key("layer").Int(roles[i] ? roles[i]->ref.layer : -1);
    w.Key("dtype").String(DTypeName(t.dtype));
    w.Key("shape").BeginArray();
    for (int64_t d : t.shape) w.Int(d);
    w.EndArray();
    w.Key("bytes").Uint(t.byte_size);
    w.EndObject();
  }
  w.EndArray();
  w.Key("totals").BeginObject();
  w.Key("tensors").Uint(totals.tensors);
  w.Key("bytes").Uint(totals.bytes);
  w.Key("parameters").Uint(totals.parameters);
  w.Key("by_dtype").BeginObject();
  for (const auto& [name, tb] : totals.by_dtype) {
    w.Key(name)
        .BeginObject()
        .Key("tensors")
        .Uint(tb.first)
        .Key("bytes")
        .Uint(tb.second)
        .EndObject();
  }
  w.EndObject();
  w.EndObject();
  w.EndObject();
  out << text << "\n";
}

void PrintText(const Checkpoint& c, const DeviceLine& device, std::ostream& out) {
  const ModelConfig& m = c.config;
  out << "device        " << device.spec << " (" << device.name << ", " << device.why << ")\n";
  out << "format        " << CheckpointFormatName(c.source->format()) << " ("
      << NamingSchemeName(c.naming) << " naming)\n";
  for (const std::string& p : c.source->paths()) out << "file          " << p << "\n";
  out << "config        " << c.config_path << "\n";
  out << "architecture  " << m.architecture << ": hidden " << m.hidden_size << ", layers "
      << m.num_layers << ", heads " << m.num_heads << " (kv " << m.num_kv_heads << ", head_dim "
      << m.head_dim << ")"
      << ", ffn " << m.ffn_size << ", vocab " << m.vocab_size << "\n";
  out << "              rms_eps " << m.rms_eps << ", rope_theta " << m.rope_theta << ", rope_dim "
      << m.rope_dim << ", rope_scaling " << RopeScalingName(m.rope_scaling.type);
  if (m.rope_scaling.type != RopeScalingType::kNone) out << " x" << m.rope_scaling.factor;
  out << "\n              tied_embeddings " << (m.tie_word_embeddings ? "yes" : "no")
      << ", attention_bias " << (m.attention_bias ? "yes" : "no") << ", mlp_bias "
      << (m.mlp_bias ? "yes" : "no") << ", context " << m.context_length << ", bos "
      << m.bos_token_id << ", eos";
  for (int64_t id : m.eos_token_ids) out << " " << id;
  out << "\n\n";

  const auto roles = RolesByIndex(c);
  const auto& tensors = c.source->tensors();
  size_t name_width = 4;
  for (const TensorInfo& t : tensors) name_width = std::max(name_width, t.name.size());
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-16s  %-5s  %-14s  %12s\n", static_cast<int>(name_width),
                "NAME", "ROLE", "DTYPE", "SHAPE", "BYTES");
  out << line;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    const std::string role = roles[i] ? roles[i]->internal_name : "-";
    std::snprintf(line, sizeof line, "%-*s  %-16s  %-5s  %-14s  %12llu\n",
                  static_cast<int>(name_width), t.name.c_str(), role.c_str(),
                  std::string(DTypeName(t.dtype)).c_str(), ShapeToString(t.shape).c_str(),
                  static_cast<unsigned long long>(t.byte_size));
    out << line;
  }
  const Totals totals = Sum(*c.source);
  out << "\ntotal         " << totals.tensors << " tensors, " << totals.bytes << " bytes ("
      << FormatBytes(totals.bytes) << "), " << totals.parameters << " parameters\n";
  for (const auto& [name, tb] : totals.by_dtype) {
    out << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << tb.first
        << " tensors, " << tb.second << " bytes\n";
  }
}

}  // namespace

int RunInspect(std::span<char* const> args, std::ostream& out, std::ostream& err) {
  std::string model;
  std::string device = "auto";
  bool json = false;
  bool help = false;
  FlagSet flags("inspect");
  flags.AddString("model", &model,
                  "checkpoint: a safetensors file, a checkpoint directory or a GGUF file");
  flags.AddString("device", &device, "auto, cpu, cuda[:N] or hostref[:N]: which would run it");
  flags.AddBool("json", &json, "print one JSON document instead of text");
  flags.AddBool("help", &help, "print this help");
  if (Status s = flags.Parse(args); !s.ok()) return ReportError(err, s);
  if (help) {
    out << flags.Usage();
    return 0;
  }
  if (model.empty())
    return ReportError(err, Status::InvalidArgument("inspect", "--model is required"));
  Result<Checkpoint> checkpoint = OpenCheckpoint(Env::Default(), model);
  if (!checkpoint.ok()) return ReportError(err, checkpoint.status());
  Result<DeviceLine> line = ResolveDevice(device);
  if (!line.ok()) return ReportError(err, line.status());
  if (json) {
    PrintJson(*checkpoint, *line, out);
  } else {
    PrintText(*checkpoint, *line, out);
  }
  return 0;
}

}  // namespace relayout::cli
