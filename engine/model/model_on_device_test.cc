// The model through the device seam on the host-reference plugin: device
// out of memory at every allocation of a load and of a request is a clean
// error naming what did not fit, the device ledger and the plugin's own
// accounting end at zero, and no buffer's guard bytes were touched; a
// refused forward leaves the model serving the next request.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "engine/device/device_test_util.h"
#include "engine/model/model_placement.h"
#include "engine/model/model_test_util.h"
#include "engine/model/sampler.h"

namespace relayout {
namespace {

using testing::ModelPath;
using testing::ScopedEnv;

// Loads stories260K onto hostref and runs a prefill and four decode steps.
// Returns the first error, and the greedy tokens on success.
struct RunResult {
  Status status;
  std::vector<int32_t> tokens;
};

RunResult LoadAndGenerate(const std::string& path, uint64_t* leftover, uint64_t* plugin_used,
                          uint64_t* corrupted) {
  LoadOptions options;
  options.model_path = path;
  options.device = "hostref";
  Result<PreparedLoad> load = PrepareLoad(Env::Default(), options);
  if (!load.ok()) return {load.status(), {}};
  Device* device = load->device.get();
  RunResult out;
  out.status = [&]() -> Status {
    MemoryLedger host_ledger;
    kernels::ThreadPool pool(1);
    ASSIGN_OR_RETURN(PlacedWeights weights,
                     ConvertForLoad(*load, &host_ledger, nullptr, nullptr, nullptr));
    ASSIGN_OR_RETURN(std::unique_ptr<LlamaModel> model,
                     CreateModel(*load, std::move(weights), &pool, &host_ledger));
    ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                     KvCache::Create(model->kv_cache_shape(), 1 << 20, model->device()));
    const SequenceId seq = cache->CreateSequence();
    std::vector<int32_t> prompt = {1, 403, 407, 261, 378};  // "Once upon a time"
    BatchEntry entry{seq, prompt, 0, false};
    RETURN_IF_ERROR(model->Forward({&entry, 1}, cache.get()));
    int64_t position = static_cast<int64_t>(prompt.size());
    for (int i = 0; i < 4; ++i) {
      out.tokens.push_back(ArgMax(model->Logits(0)));
      entry = {seq, {&out.tokens.back(), 1}, position++, false};
      RETURN_IF_ERROR(model->Forward({&entry, 1}, cache.get()));
    }
    return Status::OK();
  }();
  *leftover = device->ledger().total_current();
  *plugin_used = device->QueryInfo().total_bytes - device->QueryInfo().free_bytes;
  *corrupted = device->corrupted_frees();
  return out;
}

TEST(ModelOnDeviceTest, AllocationFailureAtEveryStepIsCleanAndLeavesNothing) {
  const std::string path = ModelPath("stories260K", "model.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  uint64_t leftover = 0, plugin_used = 0, corrupted = 0;
  const RunResult clean = LoadAndGenerate(path, &leftover, &plugin_used, &corrupted);
  ASSERT_TRUE(clean.status.ok()) << clean.status;
  ASSERT_EQ(clean.tokens.size(), 4u);
  EXPECT_EQ(leftover, 0u);
  EXPECT_EQ(plugin_used, 0u);
  EXPECT_EQ(corrupted, 0u);

  // The same run with the Nth device allocation failing, for every N until
  // a run no longer reaches N allocations.
  int failures = 0;
  bool saw_kv = false, saw_workspace = false, saw_tensor = false;
  for (int n = 1; n < 1000; ++n) {
    ScopedEnv fail("RELAYOUT_HOSTREF_FAIL_ALLOC_AT", std::to_string(n));
    const RunResult r = LoadAndGenerate(path, &leftover, &plugin_used, &corrupted);
    EXPECT_EQ(leftover, 0u) << "allocation " << n << " failed and left bytes in the ledger";
    EXPECT_EQ(plugin_used, 0u) << "allocation " << n << " failed and left bytes on the device";
    EXPECT_EQ(corrupted, 0u) << n;
    if (r.status.ok()) {
      EXPECT_EQ(r.tokens, clean.tokens);
      break;
    }
    ++failures;
    EXPECT_TRUE(r.status.IsResourceExhausted()) << n << ": " << r.status;
    const std::string& m = r.status.message();
    EXPECT_NE(m.find("fault injection"), std::string::npos) << m;
    saw_kv |= m.find("kv cache") != std::string::npos;
    saw_workspace |= m.find("forward workspace") != std::string::npos;
    saw_tensor |= m.find("blk.") != std::string::npos;
  }
  EXPECT_GT(failures, 10);
  EXPECT_TRUE(saw_kv && saw_workspace && saw_tensor);
}

// A batch whose activations do not fit is refused; the cache is as it was
// and the next, smaller batch runs.
TEST(ModelOnDeviceTest, WorkspaceOutOfMemoryRefusesTheBatchAndTheModelServesTheNext) {
  const std::string path = ModelPath("stories260K", "model.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  // A 128 MiB device, so that filling it is cheap.
  ScopedEnv small_device("RELAYOUT_HOSTREF_MEMORY_BYTES", std::to_string(128 << 20));
  kernels::ThreadPool pool(1);
  Result<testing::LoadedModel> loaded = testing::LoadModel(path, "auto", &pool, "hostref");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaModel& model = *loaded->model;
  Device& device = *model.device();
  auto cache = std::move(*KvCache::Create(model.kv_cache_shape(), 4 << 20, &device));
  const uint64_t used = device.ledger().total_current();
  const SequenceId small = cache->CreateSequence();
  const int32_t token = 1;
  BatchEntry one{small, {&token, 1}, 0, false};
  ASSERT_TRUE(model.Forward({&one, 1}, cache.get()).ok());
  const uint64_t with_workspace = device.ledger().total_current();
  ASSERT_GT(with_workspace, used);
  // Fill the device's ledger so that only the present workspace fits.
  const uint64_t spare = device.ledger().capacity() - with_workspace;
  Result<DeviceBuffer> ballast = device.Allocate(spare - 4096, MemoryCategory::kScratch, "ballast");
  ASSERT_TRUE(ballast.ok()) << ballast.status();
  std::vector<int32_t> many(200, 1);
  const SequenceId big = cache->CreateSequence();
  BatchEntry large{big, many, 0, false};
  const Status s = model.Forward({&large, 1}, cache.get());
  EXPECT_TRUE(s.IsResourceExhausted()) << s;
  EXPECT_NE(s.message().find("forward workspace"), std::string::npos) << s;
  EXPECT_EQ(cache->length(big), 0);
  // Released ballast: the model runs again, from where it was.
  ASSERT_TRUE(ballast->Release().ok());
  BatchEntry next{small, {&token, 1}, 1, false};
  EXPECT_TRUE(model.Forward({&next, 1}, cache.get()).ok());
  EXPECT_EQ(cache->length(small), 2);
}

// The host-reference plugin's step counters (steps, captures, replays).
std::array<uint64_t, 3> StepStats() {
  std::array<uint64_t, 3> out{};
  void* lib = dlopen(RELAYOUT_PLUGIN_BUILD_DIR "/librelayout_hostref.so", RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) return out;
  using Fn = void (*)(uint64_t*);
  if (auto fn = reinterpret_cast<Fn>(dlsym(lib, "rl_hostref_step_stats"))) fn(out.data());
  dlclose(lib);
  return out;
}

// A decode step has one shape for a given batch size: a device capturing it
// as a graph captures once and replays it for every later token; a prefill
// is not a step. Between StepBegin and StepEnd only ops are accepted.
TEST(ModelOnDeviceTest, DecodeStepsReplayOneCapturedShapePerBatchSize) {
  const std::string path = ModelPath("stories260K", "model.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path;
  kernels::ThreadPool pool(1);
  Result<testing::LoadedModel> loaded = testing::LoadModel(path, "auto", &pool, "hostref");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  LlamaModel& model = *loaded->model;
  auto cache = std::move(*KvCache::Create(model.kv_cache_shape(), 4 << 20, model.device()));
  const std::array<uint64_t, 3> before = StepStats();
  std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  const SequenceId a = cache->CreateSequence();
  const SequenceId b = cache->CreateSequence();
  BatchEntry prefill[] = {{a, prompt, 0, false}, {b, prompt, 0, false}};
  ASSERT_TRUE(model.Forward(prefill, cache.get()).ok());
  std::array<uint64_t, 3> after = StepStats();
  EXPECT_EQ(after[0], before[0]) << "a prefill is not a decode step";
  int32_t ta = ArgMax(model.Logits(0));
  int32_t tb = ArgMax(model.Logits(1));
  int64_t position = static_cast<int64_t>(prompt.size());
  for (int i = 0; i < 10; ++i, ++position) {  // both sequences: one shape
    BatchEntry step[] = {{a, {&ta, 1}, position, false}, {b, {&tb, 1}, position, false}};
    ASSERT_TRUE(model.Forward(step, cache.get()).ok());
    ta = ArgMax(model.Logits(0));
    tb = ArgMax(model.Logits(1));
  }
  for (int i = 0; i < 5; ++i, ++position) {  // one sequence: a second shape
    BatchEntry step{a, {&ta, 1}, position, false};
    ASSERT_TRUE(model.Forward({&step, 1}, cache.get()).ok());
    ta = ArgMax(model.Logits(0));
  }
  after = StepStats();
  EXPECT_EQ(after[0] - before[0], 15u);
  EXPECT_EQ(after[1] - before[1], 2u) << "one capture per batch size";
  EXPECT_EQ(after[2] - before[2], 13u);

  Device& device = *model.device();
  ASSERT_TRUE(device.StepBegin().ok());
  std::vector<std::byte> host(16);
  const Status inside = device.Download(cache->keys(0), host);
  EXPECT_EQ(inside.code(), StatusCode::kFailedPrecondition) << inside;
  EXPECT_EQ(device.StepBegin().code(), StatusCode::kFailedPrecondition) << "steps do not nest";
  EXPECT_TRUE(device.StepEnd().ok());
  EXPECT_EQ(device.StepEnd().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace relayout
