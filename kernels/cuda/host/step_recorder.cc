#include "kernels/cuda/host/step_recorder.h"

#include <cstring>
#include <string_view>

namespace relayout::cuda {

void StepSignature::AddFloat(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  Add(bits);
}

uint64_t MetadataArena::Reserve(uint64_t bytes, uint64_t align) {
  const uint64_t offset = (bytes_.size() + align - 1) / align * align;
  bytes_.resize(offset + bytes, 0);
  return offset;
}

uint64_t MetadataArena::Append(const void* data, uint64_t bytes, uint64_t align) {
  const uint64_t offset = Reserve(bytes, align);
  if (bytes > 0) std::memcpy(bytes_.data() + offset, data, bytes);
  return offset;
}

uint64_t MetadataArena::AppendShared(uint32_t tag, const void* data, uint64_t bytes,
                                     uint64_t align) {
  for (const Shared& s : shared_) {
    if (s.tag == tag && s.bytes == bytes && s.offset % align == 0 &&
        (bytes == 0 || std::memcmp(bytes_.data() + s.offset, data, bytes) == 0)) {
      return s.offset;
    }
  }
  const uint64_t offset = Append(data, bytes, align);
  shared_.push_back({tag, offset, bytes});
  return offset;
}

void MergeNeeds(const WorkspaceNeeds& need, WorkspaceNeeds* into) {
  for (int i = 0; i < kWorkspaceCount; ++i) {
    if (need[i] > (*into)[i]) (*into)[i] = need[i];
  }
}

bool StepRecorder::Begin() {
  if (active_) return false;
  active_ = true;
  step_ = RecordedStep{};
  metadata_.Clear();
  return true;
}

void StepRecorder::Record(uint32_t kind, const StepSignature& shape, const WorkspaceNeeds& needs,
                          IssueFn issue) {
  step_.signature.Add(0x9e3779b900000000ull | kind);  // an op boundary and its kind
  step_.signature.Add(shape.words().size());
  for (uint64_t w : shape.words()) step_.signature.Add(w);
  MergeNeeds(needs, &step_.needs);
  step_.ops.push_back(std::move(issue));
}

bool StepRecorder::End(RecordedStep* out) {
  if (!active_) return false;
  active_ = false;
  step_.signature.Add(metadata_.size());
  *out = std::move(step_);
  step_ = RecordedStep{};
  return true;
}

void StepRecorder::Abandon() {
  active_ = false;
  step_ = RecordedStep{};
  metadata_.Clear();
}

int64_t ContextBucket(int64_t longest_context) {
  int64_t bucket = 256;
  while (bucket < longest_context) bucket *= 2;
  return bucket;
}

bool GraphsEnabledByEnv(const char* value) {
  if (value == nullptr) return true;
  const std::string_view v(value);
  return !(v == "0" || v == "off" || v == "OFF" || v == "false" || v == "FALSE");
}

}  // namespace relayout::cuda
