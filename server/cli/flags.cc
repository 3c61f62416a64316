#include "server/cli/flags.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace relayout::cli {

FlagSet::FlagSet(std::string command) : command_(std::move(command)) {}

void FlagSet::AddString(const std::string& name, std::string* target, std::string help) {
  flags_[name] = Flag{Kind::kString, target, std::move(help), *target};
  order_.push_back(name);
}

void FlagSet::AddBool(const std::string& name, bool* target, std::string help) {
  flags_[name] = Flag{Kind::kBool, target, std::move(help), *target ? "true" : "false"};
  order_.push_back(name);
}

void FlagSet::AddInt(const std::string& name, int64_t* target, std::string help) {
  flags_[name] = Flag{Kind::kInt, target, std::move(help), std::to_string(*target)};
  order_.push_back(name);
}

void FlagSet::AddDouble(const std::string& name, double* target, std::string help) {
  flags_[name] = Flag{Kind::kDouble, target, std::move(help), StrCat(*target)};
  order_.push_back(name);
}

std::string FlagSet::EnvName(const std::string& flag) {
  std::string env = "RELAYOUTD_";
  for (char c : flag)
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

Status FlagSet::Assign(const std::string& name, const Flag& flag, const std::string& value,
                       std::string_view source) {
  const auto bad = [&](std::string_view what) {
    return Status::InvalidArgument(StrCat(command_, ": ", source, " --", name),
                                   StrCat("expected ", what, ", got \"", value, "\""));
  };
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = value;
      break;
    case Kind::kBool:
      if (value == "true" || value == "1") {
        *static_cast<bool*>(flag.target) = true;
      } else if (value == "false" || value == "0") {
        *static_cast<bool*>(flag.target) = false;
      } else {
        return bad("true or false");
      }
      break;
    case Kind::kInt: {
      int64_t v = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || ptr != value.data() + value.size() || value.empty())
        return bad("an integer");
      *static_cast<int64_t*>(flag.target) = v;
      break;
    }
    case Kind::kDouble: {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (value.empty() || end != value.c_str() + value.size()) return bad("a number");
      *static_cast<double*>(flag.target) = v;
      break;
    }
  }
  set_.insert(name);
  return Status::OK();
}

Status FlagSet::Parse(std::span<char* const> args, const EnvLookup& env) {
  const EnvLookup lookup = env ? env : [](const std::string& key) -> std::optional<std::string> {
    const char* v = std::getenv(key.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  for (const std::string& name : order_) {
    if (std::optional<std::string> v = lookup(EnvName(name))) {
      RETURN_IF_ERROR(Assign(name, flags_.at(name), *v, "environment " + EnvName(name) + " for"));
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      return Status::InvalidArgument(command_, StrCat("unexpected argument \"", arg, "\""));
    }
    arg.erase(0, 2);
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    const auto it = flags_.find(arg);
    if (it == flags_.end()) {
      return Status::InvalidArgument(command_, StrCat("unknown flag --", arg));
    }
    if (!value) {
      if (it->second.kind == Kind::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Status::InvalidArgument(command_, StrCat("flag --", arg, " needs a value"));
      }
    }
    RETURN_IF_ERROR(Assign(arg, it->second, *value, "flag"));
  }
  return Status::OK();
}

std::string FlagSet::Usage() const {
  std::string out = StrCat("usage: relayoutd ", command_, " [flags]\n");
  for (const std::string& name : order_) {
    const Flag& f = flags_.at(name);
    out += StrCat("  --", name, f.kind == Kind::kBool ? "" : " VALUE", "\n      ", f.help);
    if (!f.default_text.empty()) out += StrCat(" (default: ", f.default_text, ")");
    out += StrCat(" [env ", EnvName(name), "]\n");
  }
  return out;
}

}  // namespace relayout::cli
