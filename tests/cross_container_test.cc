// The safetensors and GGUF copies of each shared model hold the same model:
// the same config, and the same values in every tensor once GGUF's
// interleaved q/k row order is undone.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/checkpoint/checkpoint.h"
#include "engine/tensor/rope_order.h"
#include "kernels/cpu/reference/dequant.h"

namespace relayout {
namespace {

const std::string kModels = std::string(RELAYOUT_SHARED_DIR) + "/models";

std::vector<float> ReadAsF32(const Checkpoint& c, const BoundTensor& b) {
  const TensorInfo& t = c.source->tensors()[b.source_index];
  std::vector<std::byte> bytes(t.byte_size);
  EXPECT_TRUE(c.source->ReadTensor(b.source_index, bytes).ok());
  const uint64_t n = *ElementCount(t.shape);
  std::vector<float> out(n);
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out.data(), bytes.data(), n * 4);
      break;
    case DType::kF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        out[i] = kernels::reference::F16ToF32(h);
      }
      break;
    default:
      ADD_FAILURE() << "dtype " << DTypeName(t.dtype) << " not expected in the shared models";
  }
  return out;
}

class CrossContainerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CrossContainerTest, SameConfigAndSameValues) {
  const std::string dir = kModels + "/" + GetParam();
  if (!std::filesystem::exists(dir)) GTEST_SKIP();
  Result<Checkpoint> st = OpenCheckpoint(Env::Default(), dir + "/model.safetensors");
  Result<Checkpoint> gg = OpenCheckpoint(Env::Default(), dir + "/model.gguf");
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(gg.ok()) << gg.status();
  const ModelConfig& a = st->config;
  const ModelConfig& b = gg->config;
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.ffn_size, b.ffn_size);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);

  int compared = 0;
  for (const BoundTensor& bt : gg->model.tensors) {
    // GGUF carries the tied head as output.weight; safetensors ties it.
    const TensorRole role =
        bt.ref.role == TensorRole::kOutput ? TensorRole::kTokenEmbd : bt.ref.role;
    const BoundTensor* twin = st->model.Find(role, bt.ref.layer);
    ASSERT_NE(twin, nullptr) << bt.internal_name;
    std::vector<float> g = ReadAsF32(*gg, bt);
    std::vector<float> s = ReadAsF32(*st, *twin);
    ASSERT_EQ(g.size(), s.size()) << bt.internal_name;
    if (role == TensorRole::kAttnQ || role == TensorRole::kAttnK) {
      const int64_t heads = role == TensorRole::kAttnQ ? a.num_heads : a.num_kv_heads;
      const uint64_t row_bytes = static_cast<uint64_t>(a.hidden_size) * 4;
      std::vector<std::byte> scratch(RopeReorderScratchBytes(a.head_dim, row_bytes));
      ASSERT_TRUE(ReorderRopeRows(std::as_writable_bytes(std::span(s)), heads, a.head_dim,
                                  row_bytes, RopeOrder::kRotateHalf, RopeOrder::kInterleaved,
                                  scratch)
                      .ok());
    }
    EXPECT_EQ(g, s) << bt.internal_name;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(gg->model.tensors.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, CrossContainerTest,
                         ::testing::Values("stories260K", "llama2xs260K", "aidreams260K"));

}  // namespace
}  // namespace relayout
