// Helpers the kernels' SIMT tests share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/simt/cuda_compat.h"

namespace relayout::simt {

// Bytes placed at a 64-byte aligned address plus `offset`, with guard bytes
// on both sides that must survive every launch.
class GuardedBytes {
 public:
  static constexpr size_t kGuard = 64;
  static constexpr unsigned char kGuardByte = 0xa5;

  GuardedBytes(size_t bytes, size_t offset) : bytes_(bytes) {
    storage_.assign(bytes + offset + 2 * kGuard + 64, kGuardByte);
    const uintptr_t base = reinterpret_cast<uintptr_t>(storage_.data());
    start_ = (64 - base % 64) % 64 + kGuard + offset;
  }
  unsigned char* data() { return storage_.data() + start_; }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(data());
  }
  void Fill(unsigned char byte) { std::memset(data(), byte, bytes_); }
  void CopyFrom(const void* src) { std::memcpy(data(), src, bytes_); }
  bool GuardsIntact() const {
    for (size_t i = 0; i < storage_.size(); ++i) {
      if ((i < start_ || i >= start_ + bytes_) && storage_[i] != kGuardByte) return false;
    }
    return true;
  }

 private:
  size_t bytes_;
  size_t start_ = 0;
  std::vector<unsigned char> storage_;
};

// A launcher that records which kernels an op's host entry launches and
// runs none: the harness cannot tell an unaligned float4 access from an
// aligned one, so the choice of vector kernels is checked this way.
struct RecordingLauncher {
  std::vector<void (*)()>* kernels;
  template <class... P, class... A>
  void operator()(dim3, dim3, size_t, void (*kernel)(P...), A&&...) const {
    kernels->push_back(reinterpret_cast<void (*)()>(kernel));
  }
  template <class... P>
  void AllowSharedBytes(void (*)(P...), size_t) const {}
};

template <class... P>
void (*Erased(void (*kernel)(P...)))() {
  return reinterpret_cast<void (*)()>(kernel);
}

}  // namespace relayout::simt
