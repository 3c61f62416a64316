#include "server/rpc/model_service.h"

#include <gtest/gtest.h>

namespace relayout::server {
namespace {

TEST(ModelServiceTest, ModelInfoCarriesTheLayoutTuning) {
  ServerState::Snapshot s;
  s.description.emplace();
  s.description->layout_mode = "auto,attn_qkv:Q4_1=native";
  v1::ModelInfo without;
  ToModelInfo(s, false, &without);
  EXPECT_EQ(without.layout_tuning_size(), 0);

  LayoutTuningReport report;
  ClassTuning c;
  c.tensor_class = TensorClass::kAttnQkv;
  c.dtype = DType::kQ4_1;
  c.tensors = 90;
  c.rows = 576;
  c.cols = 576;
  c.timed_rows = 576;
  c.measured = true;
  c.chosen = "native";
  c.candidates = {{"native", 1e-5, 2e-4}, {"q-rowgroup-g8", 2e-5, 3e-4}};
  report.classes.push_back(c);
  s.description->layout_tuning = report;
  v1::ModelInfo info;
  ToModelInfo(s, false, &info);
  EXPECT_EQ(info.layout_mode(), "auto,attn_qkv:Q4_1=native");
  ASSERT_EQ(info.layout_tuning_size(), 1);
  const v1::LayoutTuning& t = info.layout_tuning(0);
  EXPECT_EQ(t.tensor_class(), "attn_qkv");
  EXPECT_EQ(t.dtype(), "Q4_1");
  EXPECT_EQ(t.rows(), 576);
  EXPECT_EQ(t.cols(), 576);
  EXPECT_EQ(t.timed_rows(), 576);
  EXPECT_EQ(t.tensor_count(), 90u);
  EXPECT_EQ(t.chosen_layout(), "native");
  EXPECT_TRUE(t.measured());
  ASSERT_EQ(t.candidates_size(), 2);
  EXPECT_EQ(t.candidates(1).layout(), "q-rowgroup-g8");
  EXPECT_DOUBLE_EQ(t.candidates(1).decode_seconds(), 2e-5);
  EXPECT_DOUBLE_EQ(t.candidates(1).prefill_seconds(), 3e-4);
}

// While converting, the progress is the conversion's, not 1 from the
// last report.
TEST(ModelServiceTest, ModelInfoSaysConvertingWithItsProgress) {
  ServerState::Snapshot s;
  s.state = LifecycleState::kServing;
  s.report = std::make_shared<const RelayoutReport>();
  s.progress = {3, 12, 300, 1200};
  v1::ModelInfo done;
  ToModelInfo(s, false, &done);
  EXPECT_FALSE(done.converting());
  EXPECT_DOUBLE_EQ(done.progress().ratio(), 1.0);
  s.converting = true;
  v1::ModelInfo converting;
  ToModelInfo(s, false, &converting);
  EXPECT_TRUE(converting.converting());
  EXPECT_EQ(converting.state(), v1::LIFECYCLE_STATE_SERVING);
  EXPECT_DOUBLE_EQ(converting.progress().ratio(), 0.25);
}

}  // namespace
}  // namespace relayout::server
