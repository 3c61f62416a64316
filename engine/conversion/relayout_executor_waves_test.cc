// The executor's waves run tensors on parallel threads that share the
// ledger, the source and the observer: the converted bytes must not depend
// on how many run at once. Also built under ThreadSanitizer (label tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "engine/conversion/model_loader.h"
#include "engine/conversion/relayout_executor.h"

namespace relayout {
namespace {

const std::string kModel =
    std::string(RELAYOUT_SHARED_DIR) + "/models/stories260K/model.safetensors";

class CountingObserver final : public ConversionObserver {
 public:
  void OnTensorConverted(const TensorConversionReport&, size_t done, size_t total,
                         const MemoryLedgerSnapshot&) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    last_done_ = done;
    total_ = total;
  }
  size_t calls() const { return calls_; }
  size_t last_done() const { return last_done_; }
  size_t total() const { return total_; }

 private:
  std::mutex mu_;
  size_t calls_ = 0;
  size_t last_done_ = 0;
  size_t total_ = 0;
};

Result<LoadedWeights> Convert(int64_t workers, CountingObserver* observer, MemoryLedger* ledger) {
  LoadOptions options;
  options.model_path = kModel;
  options.layout = "rowgroup-g8k8";
  options.budget = "100%";
  options.workers = workers;
  ASSIGN_OR_RETURN(PreparedLoad load, PrepareLoad(Env::Default(), options));
  if (load.plan.plan.workers != static_cast<uint32_t>(workers)) {
    return Status::Internal("test", StrCat("planned ", load.plan.plan.workers, " workers"));
  }
  return ExecuteConversion(*load.checkpoint.source, load.plan, ledger, observer, nullptr, nullptr);
}

TEST(RelayoutExecutorWavesTest, ParallelWavesGiveTheBytesOfOneWorker) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing";
  MemoryLedger serial_ledger;
  CountingObserver serial_observer;
  Result<LoadedWeights> serial = Convert(1, &serial_observer, &serial_ledger);
  ASSERT_TRUE(serial.ok()) << serial.status();
  MemoryLedger parallel_ledger;
  CountingObserver parallel_observer;
  Result<LoadedWeights> parallel = Convert(4, &parallel_observer, &parallel_ledger);
  ASSERT_TRUE(parallel.ok()) << parallel.status();

  ASSERT_EQ(serial->tensors.size(), parallel->tensors.size());
  for (size_t i = 0; i < serial->tensors.size(); ++i) {
    const LoadedTensor& a = serial->tensors[i];
    const LoadedTensor& b = parallel->tensors[i];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.buffer.size(), b.buffer.size()) << a.name;
    EXPECT_EQ(std::memcmp(a.buffer.data(), b.buffer.data(), a.buffer.size()), 0) << a.name;
  }
  EXPECT_EQ(parallel_observer.calls(), parallel->tensors.size());
  EXPECT_EQ(parallel_observer.last_done(), parallel_observer.total());
}

}  // namespace
}  // namespace relayout
