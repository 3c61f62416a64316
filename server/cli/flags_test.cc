#include "server/cli/flags.h"

#include <gtest/gtest.h>

#include <map>

namespace relayout::cli {
namespace {

struct Args {
  explicit Args(std::vector<std::string> a) : storage(std::move(a)) {
    for (std::string& s : storage) ptrs.push_back(s.data());
  }
  std::span<char* const> span() const { return ptrs; }
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
};

FlagSet::EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& key) -> std::optional<std::string> {
    auto it = vars.find(key);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(FlagsTest, ParsesAllForms) {
  std::string model;
  bool json = false;
  int64_t threads = 1;
  double temperature = 1.0;
  FlagSet flags("generate");
  flags.AddString("model", &model, "m");
  flags.AddBool("json", &json, "j");
  flags.AddInt("threads", &threads, "t");
  flags.AddDouble("temperature", &temperature, "t");
  Args args({"--model", "a.gguf", "--json", "--threads=4", "--temperature", "0.5"});
  ASSERT_TRUE(flags.Parse(args.span(), FakeEnv({})).ok());
  EXPECT_EQ(model, "a.gguf");
  EXPECT_TRUE(json);
  EXPECT_EQ(threads, 4);
  EXPECT_DOUBLE_EQ(temperature, 0.5);
  EXPECT_TRUE(flags.WasSet("threads"));
}

TEST(FlagsTest, EnvironmentFillsAndCommandLineWins) {
  std::string budget = "64MiB";
  std::string listen = "127.0.0.1:50051";
  FlagSet flags("serve");
  flags.AddString("budget", &budget, "b");
  flags.AddString("metrics-listen", &listen, "l");
  Args args({"--budget", "1GiB"});
  ASSERT_TRUE(flags
                  .Parse(args.span(), FakeEnv({{"RELAYOUTD_BUDGET", "5%"},
                                               {"RELAYOUTD_METRICS_LISTEN", "0.0.0.0:9464"}}))
                  .ok());
  EXPECT_EQ(budget, "1GiB");
  EXPECT_EQ(listen, "0.0.0.0:9464");
  EXPECT_EQ(FlagSet::EnvName("metrics-listen"), "RELAYOUTD_METRICS_LISTEN");
}

TEST(FlagsTest, ErrorsNameTheFlag) {
  int64_t threads = 1;
  std::string model;
  FlagSet flags("generate");
  flags.AddInt("threads", &threads, "t");
  flags.AddString("model", &model, "m");
  Args unknown({"--thread", "4"});
  EXPECT_EQ(flags.Parse(unknown.span(), FakeEnv({})).message(), "generate: unknown flag --thread");
  Args bad_int({"--threads", "four"});
  EXPECT_EQ(flags.Parse(bad_int.span(), FakeEnv({})).message(),
            "generate: flag --threads: expected an integer, got \"four\"");
  Args missing({"--model"});
  EXPECT_EQ(flags.Parse(missing.span(), FakeEnv({})).message(),
            "generate: flag --model needs a value");
  Args positional({"model.gguf"});
  EXPECT_EQ(flags.Parse(positional.span(), FakeEnv({})).message(),
            "generate: unexpected argument \"model.gguf\"");
  Args none({});
  Status env_bad = flags.Parse(none.span(), FakeEnv({{"RELAYOUTD_THREADS", "x"}}));
  EXPECT_EQ(
      env_bad.message(),
      "generate: environment RELAYOUTD_THREADS for --threads: expected an integer, got \"x\"");
}

}  // namespace
}  // namespace relayout::cli
