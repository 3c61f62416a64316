#include "engine/device/device_loader.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "engine/device/cpu_device.h"
#include "engine/device/plugin_device.h"

namespace relayout {
namespace {

struct ParsedSpec {
  std::string kind;  // auto, cpu, cuda, hostref
  int32_t index = 0;
};

Result<ParsedSpec> ParseSpec(std::string_view spec) {
  const auto bad = [&] {
    return Status::InvalidArgument(
        "--device", StrCat("\"", spec, "\" is not auto, cpu, cuda[:N] or hostref[:N]"));
  };
  ParsedSpec p;
  const size_t colon = spec.find(':');
  p.kind = std::string(spec.substr(0, colon));
  if (p.kind != "auto" && p.kind != "cpu" && p.kind != "cuda" && p.kind != "hostref") return bad();
  if (colon != std::string_view::npos) {
    if (p.kind == "auto" || p.kind == "cpu") return bad();
    const std::string_view digits = spec.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p.index);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        p.index < 0) {
      return bad();
    }
  }
  return p;
}

// The first librelayout_<name>.so in dirs; "" when none exists.
std::string FindPlugin(const std::string& name, const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    const std::string path = StrCat(dir, "/librelayout_", name, ".so");
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
  }
  return "";
}

Result<OpenedDevice> OpenPlugin(const std::string& name, int32_t index,
                                const std::vector<std::string>& dirs) {
  const std::string path = FindPlugin(name, dirs);
  if (path.empty()) {
    std::string where;
    for (const std::string& d : dirs) where += (where.empty() ? "" : ", ") + d;
    return Status::NotFound(StrCat("librelayout_", name, ".so"),
                            StrCat("not found in ", where.empty() ? "(no directory)" : where));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const PluginLibrary> library, PluginLibrary::Load(path));
  ASSIGN_OR_RETURN(std::unique_ptr<PluginDevice> device, PluginDevice::Open(library, index));
  return OpenedDevice{std::move(device), StrCat(path, " scores ", library->score())};
}

}  // namespace

std::vector<std::string> DefaultPluginDirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("RELAYOUT_PLUGIN_DIR"); env != nullptr) {
    std::string_view rest(env);
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((exe.parent_path() / ".." / "lib" / "relayoutd").lexically_normal());
  dirs.emplace_back("/usr/local/lib/relayoutd");
  return dirs;
}

Result<OpenedDevice> OpenDevice(const DeviceRequest& request,
                                const std::function<void(const std::string&)>& log) {
  ASSIGN_OR_RETURN(ParsedSpec spec, ParseSpec(request.spec));
  const std::vector<std::string> dirs =
      request.plugin_dirs.empty() ? DefaultPluginDirs() : request.plugin_dirs;
  if (spec.kind == "cpu") {
    return OpenedDevice{std::make_unique<CpuDevice>(request.cpu_capacity_bytes), "asked for"};
  }
  if (spec.kind == "auto") {
    Result<OpenedDevice> gpu = OpenPlugin("cuda", 0, dirs);
    if (gpu.ok()) return gpu;
    const std::string refusal = gpu.status().message();
    if (log) log(StrCat("device plugin refused: ", refusal, "; using the CPU"));
    return OpenedDevice{std::make_unique<CpuDevice>(request.cpu_capacity_bytes),
                        StrCat("no GPU plugin: ", refusal)};
  }
  return OpenPlugin(spec.kind, spec.index, dirs);
}

}  // namespace relayout
