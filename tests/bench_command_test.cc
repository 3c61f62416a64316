// `relayoutd bench`: every (thread count, layout, test) row with its
// repetitions, mean and standard deviation; decode rows with the weight
// bytes they read and the fraction of the read bandwidth measured in the same
// run; markdown and JSON; a clear error for every bad argument.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "engine/text/json.h"
#include "tests/subprocess.h"

namespace relayout {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

const std::string kModel = std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.gguf";

ProcessResult Bench(std::vector<std::string> extra) {
  std::vector<std::string> argv = {RELAYOUTD_BINARY, "bench", "--model", kModel};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv);
}

TEST(BenchCommandTest, JsonHasEveryRowWithItsSamplesAndTheDecodeRoofline) {
  const ProcessResult r =
      Bench({"--n-prompt", "16", "--n-gen", "8", "--pg", "8,4", "--repetitions", "3", "--threads",
             "1,2", "--layout", "auto,native", "--output", "json", "--read-bandwidth-mib", "16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<JsonValue> json = ParseJson(r.out);
  ASSERT_TRUE(json.ok()) << json.status() << "\n" << r.out;
  EXPECT_EQ(json->Find("model")->as_string(), "model.gguf");
  const double decode_bytes = json->Find("decode_weight_bytes")->as_double();
  EXPECT_GT(decode_bytes, 0);
  EXPECT_LE(decode_bytes, json->Find("model_bytes")->as_double());
  EXPECT_GT(json->Find("params")->as_double(), 200000);  // stories260K

  const std::vector<JsonValue>& bw = json->Find("read_bandwidth")->as_array();
  ASSERT_EQ(bw.size(), 2u);
  EXPECT_EQ(bw[0].Find("threads")->as_int64(), 1);
  EXPECT_EQ(bw[1].Find("threads")->as_int64(), 2);
  for (const JsonValue& b : bw) {
    EXPECT_GT(b.Find("bytes_per_second")->as_double(), 1e8);
    EXPECT_EQ(b.Find("buffer_bytes")->as_int64(), 16 << 20);
  }

  // 2 thread counts x 2 layouts x (pp16, tg8, pp8+tg4), in that order.
  const std::vector<JsonValue>& rows = json->Find("results")->as_array();
  ASSERT_EQ(rows.size(), 12u);
  std::set<std::string> seen;
  for (size_t i = 0; i < rows.size(); ++i) {
    const JsonValue& row = rows[i];
    const std::string test = row.Find("test")->as_string();
    const std::string layout = row.Find("layout")->as_string();
    const int64_t threads = *row.Find("threads")->as_int64();
    SCOPED_TRACE(test + " " + layout + " " + std::to_string(threads));
    EXPECT_EQ(threads, i < 6 ? 1 : 2);
    EXPECT_EQ(layout, i % 6 < 3 ? "auto" : "native");
    EXPECT_EQ(test, std::vector<std::string>({"pp16", "tg8", "pp8+tg4"})[i % 3]);
    seen.insert(test + layout + std::to_string(threads));
    const std::vector<JsonValue>& samples = row.Find("samples_ts")->as_array();
    ASSERT_EQ(samples.size(), 3u);
    double sum = 0;
    for (const JsonValue& s : samples) {
      EXPECT_GT(s.as_double(), 0);
      sum += s.as_double();
    }
    const double mean = row.Find("avg_ts")->as_double();
    EXPECT_NEAR(mean, sum / 3, 1e-6 * mean);
    double sq = 0;
    for (const JsonValue& s : samples) sq += (s.as_double() - mean) * (s.as_double() - mean);
    EXPECT_NEAR(row.Find("stddev_ts")->as_double(), std::sqrt(sq / 2), 1e-6 * mean + 1e-9);
    const JsonValue* wbps = row.Find("weight_bytes_per_second");
    if (test == "tg8") {
      ASSERT_NE(wbps, nullptr);
      EXPECT_NEAR(wbps->as_double(), decode_bytes * mean, 1e-6 * decode_bytes * mean);
      const JsonValue* frac = row.Find("fraction_of_read_bandwidth");
      ASSERT_NE(frac, nullptr);
      EXPECT_NEAR(frac->as_double(),
                  wbps->as_double() / bw[threads - 1].Find("bytes_per_second")->as_double(), 1e-9);
    } else {
      EXPECT_EQ(wbps, nullptr);
    }
  }
  EXPECT_EQ(seen.size(), 12u);
}

TEST(BenchCommandTest, MarkdownTableNamesEveryTestAndTheReadBandwidth) {
  const ProcessResult r = Bench({"--n-prompt", "8", "--n-gen", "4", "--repetitions", "1",
                                 "--threads", "1", "--read-bandwidth-mib", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| model | size | params |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| pp8 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| tg4 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("read bandwidth, 1 thread:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("% of "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ± "), std::string::npos) << r.out;
}

TEST(BenchCommandTest, BadArgumentsAreOneClearErrorLine) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } kCases[] = {
      {{"--repetitions", "0"}, "--repetitions: must be at least 1"},
      {{"--output", "xml"}, "--output: must be md or json"},
      {{"--n-prompt", "0", "--n-gen", "0"}, "no test"},
      {{"--n-prompt", "8,x"}, "--n-prompt: expected a comma list of integers"},
      {{"--threads", "-1"}, "--threads: expected a comma list of integers >= 0"},
      {{"--pg", "5"}, "--pg: expected PP,TG"},
      {{"--layout", "no-such-layout", "--n-prompt", "4", "--n-gen", "0"}, "no-such-layout"},
  };
  for (const auto& c : kCases) {
    const ProcessResult r = Bench(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(testing::CountLines(r.err), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(BenchCommandTest, HelpSaysWhatItMeasures) {
  const ProcessResult r = RunProcess({RELAYOUTD_BINARY, "bench", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("llama-bench"), std::string::npos);
  EXPECT_NE(r.out.find("--n-prompt"), std::string::npos);
  EXPECT_NE(r.out.find("--repetitions"), std::string::npos);
}

}  // namespace
}  // namespace relayout
