// The device's launcher for the ops' host-side templates (the kernels/cuda/
// kernels/*.cuh files take `const Launcher& launch` and call
// launch(grid, block, shared_bytes, kernel, args...)); simt_host.h's
// HostLauncher is the same interface on the CPU, so the code that sizes
// grids, picks kernels and chains launches runs in the tests as written.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace relayout::cuda {

class CudaLauncher {
 public:
  explicit CudaLauncher(cudaStream_t stream) : stream_(stream) {}

  template <class... P, class... A>
  void operator()(dim3 grid, dim3 block, size_t shared_bytes, void (*kernel)(P...),
                  A&&... args) const {
    if (uint64_t{grid.x} * grid.y * grid.z == 0) return;
    kernel<<<grid, block, shared_bytes, stream_>>>(std::forward<A>(args)...);
    Note(cudaGetLastError());
  }

  // Past 48 KiB of dynamic shared memory a kernel needs an opt-in.
  template <class... P>
  void AllowSharedBytes(void (*kernel)(P...), size_t bytes) const {
    if (bytes > 48 * 1024) {
      Note(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(bytes)));
    }
  }

  // The first error of any launch through this launcher.
  cudaError_t error() const { return error_; }
  cudaStream_t stream() const { return stream_; }

 private:
  void Note(cudaError_t e) const {
    if (error_ == cudaSuccess) error_ = e;
  }

  cudaStream_t stream_;
  mutable cudaError_t error_ = cudaSuccess;
};

}  // namespace relayout::cuda
