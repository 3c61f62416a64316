// A small cuBLASLt wrapper for the CUDA plugin's large matmuls: one handle
// per device, BF16 x BF16 -> F32 GEMMs with F32 accumulation, in the
// engine's row-major convention
//
//   y[T, N] = alpha * x[T, K] * W[N, K]^T + beta * y     (all row-major)
//
// with the matmul descriptors, matrix layouts and the heuristic's algorithm
// cached per shape (the heuristic query costs tens of microseconds; a decode
// step's graph capture or a prefill repeats the same few shapes).
//
// How row-major maps onto column-major cuBLAS without a transpose copy: a
// row-major R x C matrix with row stride ld is, byte for byte, the
// column-major C x R matrix with leading dimension ld. So
//   W row-major [N, K]  is column-major Wc = W^T, K x N, ld K,
//   x row-major [T, K]  is column-major xc = x^T, K x T, ld K,
//   y row-major [T, N]  is column-major yc = y^T, N x T, ld N,
// and y = x W^T transposes to y^T = W x^T = Wc^T xc: C (N x T) = op(A) B
// with A = Wc, op(A) = A^T (CUBLAS_OP_T), B = xc (CUBLAS_OP_N), m = N,
// n = T, k = K. This is the "TN" GEMM, the form cuBLAS runs fastest for
// K-contiguous operands, and every matrix is read where it lies.
//
// Not thread-safe: a device is used from one thread at a time (the ABI).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <unordered_map>

namespace relayout::cuda {

class BlasLt {
 public:
  // The workspace cuBLASLt may use per call (split-K and stream-K
  // reductions); 32 MiB covers Hopper's largest heuristic picks.
  static constexpr uint64_t kWorkspaceBytes = uint64_t{32} << 20;

  BlasLt() = default;
  ~BlasLt();
  BlasLt(const BlasLt&) = delete;
  BlasLt& operator=(const BlasLt&) = delete;

  // Creates the handle on the current device. `workspace` (device memory of
  // `workspace_bytes`, owned by the caller) outlives this object. "" on
  // success, else the error.
  std::string Init(void* workspace, uint64_t workspace_bytes);

  // y (row-major T x N floats, row stride ldy >= N) = alpha * x W^T + beta * y
  // for W row-major [N, K] BF16 (row stride K) and x row-major [T, K] BF16
  // (row stride K); beta = 0 does not read y. Enqueued on `stream` (graph
  // capture allowed: the descriptors and algorithm are host state, the
  // workspace is the caller's). "" on success, else the error.
  std::string GemmBf16(cudaStream_t stream, const uint16_t* w, int64_t n, int64_t k,
                       const uint16_t* x, int64_t t, float* y, int64_t ldy, float alpha,
                       float beta);

  // Shapes seen (for the debug stats).
  size_t cached_plans() const { return plans_.size(); }

 private:
  struct Key {
    int64_t m, n, k, ldd;
    uint32_t align_a, align_b, align_d;
    bool operator==(const Key& o) const {
      return m == o.m && n == o.n && k == o.k && ldd == o.ldd && align_a == o.align_a &&
             align_b == o.align_b && align_d == o.align_d;
    }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  std::string MakePlan(const Key& key, Plan* out);
  static void Destroy(Plan* p);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  uint64_t workspace_bytes_ = 0;
  std::unordered_map<Key, Plan, KeyHash> plans_;
};

}  // namespace relayout::cuda
