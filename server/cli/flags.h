// FlagSet: the command-line flags of one subcommand.
//
// Accepts "--name value", "--name=value" and, for booleans, "--name" alone or
// "--name=true|false". Every flag may also come from the environment as
// RELAYOUTD_<NAME> (upper case, '-' as '_'); the command line wins. Unknown
// flags, missing values and malformed numbers are InvalidArgument naming the
// flag. Flags only fill option structs; they hold no other state.
//
// Thread safety: not thread-safe; used once at start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace relayout::cli {

class FlagSet {
 public:
  // Looks up an environment variable; returns nullopt when unset.
  using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

  explicit FlagSet(std::string command);

  // Registers a flag; the target keeps its current value as the default and
  // must outlive Parse().
  void AddString(const std::string& name, std::string* target, std::string help);
  void AddBool(const std::string& name, bool* target, std::string help);
  void AddInt(const std::string& name, int64_t* target, std::string help);
  void AddDouble(const std::string& name, double* target, std::string help);

  // Parses args (without the program and command names). Positional
  // arguments are an error. env defaults to the process environment.
  Status Parse(std::span<char* const> args, const EnvLookup& env = {});

  // Whether the flag was given on the command line or in the environment.
  bool WasSet(const std::string& name) const { return set_.count(name) != 0; }

  // Multi-line usage text listing each flag, its default and its variable.
  std::string Usage() const;

  // "RELAYOUTD_BUDGET" for "budget".
  static std::string EnvName(const std::string& flag);

 private:
  enum class Kind { kString, kBool, kInt, kDouble };
  struct Flag {
    Kind kind;
    void* target;
    std::string help;
    std::string default_text;
  };
  Status Assign(const std::string& name, const Flag& flag, const std::string& value,
                std::string_view source);

  std::string command_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_;
  std::set<std::string> set_;
};

}  // namespace relayout::cli
