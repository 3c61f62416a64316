// Linked into every GoogleTest executable: with RELAYOUT_REQUIRE_TEST_DATA=1
// (tools/test.sh sets it under CI), a test that skipped fails the program,
// naming the test and its reason. Tests skip when ../shared data, the venv or
// a tool is missing, which on a developer's machine is a convenience and in
// CI is a broken set-up that would otherwise pass silently. A skip whose
// reason contains "(allowed skip)" is a property of the machine, not of the
// set-up (no /proc/cpuinfo, say), and stays a skip.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

class RequireTestData final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.type() != ::testing::TestPartResult::kSkip) return;
    const char* message = result.message() != nullptr ? result.message() : "";
    if (std::strstr(message, "(allowed skip)") != nullptr) return;
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = test != nullptr ? std::string(test->test_suite_name()) + "." + test->name()
                                       : std::string("(outside a test)");
    skipped_.push_back(name + ": " + message);
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (skipped_.empty()) return;
    for (const std::string& s : skipped_) {
      std::fprintf(stderr, "RELAYOUT_REQUIRE_TEST_DATA: skipped, which is a failure here: %s\n",
                   s.c_str());
    }
    std::fflush(stderr);
    std::_Exit(1);
  }

 private:
  std::vector<std::string> skipped_;
};

const bool kRegistered = [] {
  const char* required = std::getenv("RELAYOUT_REQUIRE_TEST_DATA");
  if (required != nullptr && std::strcmp(required, "1") == 0) {
    ::testing::UnitTest::GetInstance()->listeners().Append(new RequireTestData);
  }
  return true;
}();

}  // namespace
