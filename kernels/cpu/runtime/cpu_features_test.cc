#include "kernels/cpu/runtime/cpu_features.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace relayout::kernels {
namespace {

TEST(CpuFeaturesTest, FormatsPresentFeaturesInFixedOrder) {
  CpuFeatures f;
  EXPECT_EQ(CpuFeaturesToString(f), "none");
  f.avx2 = f.fma = f.avx512bf16 = f.avx_vnni = true;
  EXPECT_EQ(CpuFeaturesToString(f), "avx2 fma avx512bf16 avxvnni");
}

TEST(CpuFeaturesTest, DetectionIsStable) { EXPECT_EQ(&DetectCpuFeatures(), &DetectCpuFeatures()); }

// The kernel's view (/proc/cpuinfo flags, which already account for OS
// support) must agree with ours on Linux x86.
TEST(CpuFeaturesTest, AgreesWithProcCpuinfoFlags) {
#if !(defined(__x86_64__) || defined(__i386__))
  EXPECT_EQ(CpuFeaturesToString(DetectCpuFeatures()), "none");
#else
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo (allowed skip)";
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  if (flags.empty()) GTEST_SKIP() << "no flags line (allowed skip)";
  const CpuFeatures& f = DetectCpuFeatures();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.f16c, flags.count("f16c") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512vnni, flags.count("avx512_vnni") == 1);
  EXPECT_EQ(f.avx512bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.avx_vnni, flags.count("avx_vnni") == 1);
#endif
}

}  // namespace
}  // namespace relayout::kernels
