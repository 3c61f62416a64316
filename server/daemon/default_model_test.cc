#include "server/daemon/default_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace relayout::server {
namespace {

EnvLookup Vars(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(DefaultModelPathTest, CacheDirWinsOverXdgAndHome) {
  EXPECT_EQ(*DefaultModelPath(
                Vars({{"RELAYOUTD_CACHE_DIR", "/c"}, {"XDG_CACHE_HOME", "/x"}, {"HOME", "/h"}})),
            "/c/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ(*DefaultModelPath(Vars({{"XDG_CACHE_HOME", "/x"}, {"HOME", "/h"}})),
            "/x/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ(*DefaultModelPath(Vars({{"HOME", "/h"}})),
            "/h/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf");
}

TEST(DefaultModelPathTest, NoCacheDirectoryIsFailedPrecondition) {
  Result<std::string> path = DefaultModelPath(Vars({}));
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), StatusCode::kFailedPrecondition);
}

TEST(EnsureDefaultModelTest, ACachedModelIsUsedWithoutFetching) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "relayoutd_default_model_test";
  std::filesystem::create_directories(dir / "models");
  std::ofstream(dir / "models" / kDefaultModelFile) << "GGUF";
  int log_lines = 0;
  Result<std::string> path = EnsureDefaultModel([&](const std::string&) { ++log_lines; },
                                                Vars({{"RELAYOUTD_CACHE_DIR", dir.string()}}));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, (dir / "models" / kDefaultModelFile).string());
  EXPECT_EQ(log_lines, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace relayout::server
