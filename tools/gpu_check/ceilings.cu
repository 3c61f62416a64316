// gpu_check_ceilings: the device's two ceilings, measured where the GPU
// check runs, so every other figure of the check is a fraction of a number
// taken on the same card in the same session.
//
//   gpu_check_ceilings [--copy-mib 2048] [--h2d-mib 1024] [--gemm 8192] [--reps 20]
//                      [--json FILE]
//
//   copy   device-to-device cudaMemcpy of --copy-mib MiB; GB/s counts the
//          bytes read plus the bytes written (2x the buffer), the figure a
//          memory-bound kernel is held against;
//   h2d    host-to-device cudaMemcpy from pinned memory (cudaMallocHost) of
//          --h2d-mib MiB, the ceiling of a weight upload; and from pageable
//          memory, for comparison;
//   gemm   cuBLASLt BF16 x BF16 -> BF16 with float accumulation, M = N = K =
//          --gemm, on random data (never zeros: they run faster), TFLOP/s
//          counting 2 M N K.
// Each is timed with events around one operation, after warm-up, the median
// of --reps. One JSON line on stdout (and in --json). Every CUDA call is
// checked; exit 1 with its error otherwise.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define CHECK_CUDA(expr)                                                                   \
  do {                                                                                     \
    const cudaError_t e_ = (expr);                                                         \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "gpu_check_ceilings: %s: %s\n", #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

#define CHECK_BLAS(expr)                                                        \
  do {                                                                          \
    const cublasStatus_t s_ = (expr);                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                          \
      std::fprintf(stderr, "gpu_check_ceilings: %s: cublas status %d\n", #expr, \
                   static_cast<int>(s_));                                       \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)

// Random bf16 in [-1, 1) from a counter hash: no zeros, no NaN.
__global__ void FillRandomBf16(__nv_bfloat16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    p[i] = __float2bfloat16(static_cast<float>(h) * (2.0f / 4294967296.0f) - 1.0f);
  }
}

__global__ void FillBytes(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    p[i] = static_cast<uint32_t>(i) * 2654435761u ^ seed;
  }
}

template <class F>
double MedianMs(int reps, F&& op) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) op();  // warm-up
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    op();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t copy_mib = 2048, h2d_mib = 1024;
  int gemm = 8192, reps = 20;
  std::string json_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--copy-mib") {
      copy_mib = std::strtoull(v, nullptr, 10);
    } else if (flag == "--h2d-mib") {
      h2d_mib = std::strtoull(v, nullptr, 10);
    } else if (flag == "--gemm") {
      gemm = std::atoi(v);
    } else if (flag == "--reps") {
      reps = std::atoi(v);
    } else if (flag == "--json") {
      json_path = v;
    } else {
      std::fprintf(stderr,
                   "usage: gpu_check_ceilings [--copy-mib N] [--h2d-mib N] [--gemm N] [--reps N] "
                   "[--json FILE]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || copy_mib == 0 || h2d_mib == 0 || gemm < 64 || reps < 1) {
    std::fprintf(stderr, "gpu_check_ceilings: bad arguments\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  CHECK_CUDA(cudaSetDevice(0));

  // Device-to-device copy.
  const size_t copy_bytes = copy_mib << 20;
  void *src = nullptr, *dst = nullptr;
  CHECK_CUDA(cudaMalloc(&src, copy_bytes));
  CHECK_CUDA(cudaMalloc(&dst, copy_bytes));
  FillBytes<<<1024, 256>>>(static_cast<uint32_t*>(src), copy_bytes / 4, 1u);
  CHECK_CUDA(cudaGetLastError());
  const double copy_ms = MedianMs(
      reps, [&] { CHECK_CUDA(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice)); });
  const double copy_gbps = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;
  CHECK_CUDA(cudaFree(src));
  CHECK_CUDA(cudaFree(dst));

  // Host to device, pinned and pageable.
  const size_t h2d_bytes = h2d_mib << 20;
  void *pinned = nullptr, *dev = nullptr;
  CHECK_CUDA(cudaMallocHost(&pinned, h2d_bytes));
  CHECK_CUDA(cudaMalloc(&dev, h2d_bytes));
  std::memset(pinned, 0x5a, h2d_bytes);
  const double h2d_ms = MedianMs(std::max(3, reps / 2), [&] {
    CHECK_CUDA(cudaMemcpyAsync(dev, pinned, h2d_bytes, cudaMemcpyHostToDevice));
  });
  std::vector<char> pageable(h2d_bytes, 0x5a);
  const double h2d_pageable_ms = MedianMs(
      3, [&] { CHECK_CUDA(cudaMemcpy(dev, pageable.data(), h2d_bytes, cudaMemcpyHostToDevice)); });
  CHECK_CUDA(cudaFreeHost(pinned));
  CHECK_CUDA(cudaFree(dev));
  const double h2d_gbps = h2d_bytes / (h2d_ms * 1e-3) / 1e9;
  const double h2d_pageable_gbps = h2d_bytes / (h2d_pageable_ms * 1e-3) / 1e9;

  // cuBLASLt BF16 GEMM, D = A B (column-major M x K times K x N).
  const int64_t m = gemm, n = gemm, k = gemm;
  __nv_bfloat16 *a = nullptr, *b = nullptr, *d = nullptr;
  CHECK_CUDA(cudaMalloc(&a, m * k * sizeof(__nv_bfloat16)));
  CHECK_CUDA(cudaMalloc(&b, k * n * sizeof(__nv_bfloat16)));
  CHECK_CUDA(cudaMalloc(&d, m * n * sizeof(__nv_bfloat16)));
  FillRandomBf16<<<1024, 256>>>(a, m * k, 7u);
  FillRandomBf16<<<1024, 256>>>(b, k * n, 11u);
  CHECK_CUDA(cudaGetLastError());
  cublasLtHandle_t lt;
  CHECK_BLAS(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op;
  CHECK_BLAS(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasLtMatrixLayout_t la, lb, ld;
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, m));
  size_t workspace_bytes = size_t{64} << 20;
  void* workspace = nullptr;
  CHECK_CUDA(cudaMalloc(&workspace, workspace_bytes));
  cublasLtMatmulPreference_t pref;
  CHECK_BLAS(cublasLtMatmulPreferenceCreate(&pref));
  CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &workspace_bytes, sizeof workspace_bytes));
  cublasLtMatmulHeuristicResult_t heuristic;
  int found = 0;
  CHECK_BLAS(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &heuristic, &found));
  if (found == 0) {
    std::fprintf(stderr, "gpu_check_ceilings: cuBLASLt found no BF16 algorithm\n");
    return 1;
  }
  const float alpha = 1.0f, beta = 0.0f;
  const double gemm_ms = MedianMs(reps, [&] {
    CHECK_BLAS(cublasLtMatmul(lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heuristic.algo,
                              workspace, workspace_bytes, 0));
  });
  CHECK_CUDA(cudaGetLastError());
  const double tflops = 2.0 * m * n * k / (gemm_ms * 1e-3) / 1e12;
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  CHECK_CUDA(cudaFree(d));
  CHECK_CUDA(cudaFree(workspace));

  char json[1024];
  std::snprintf(json, sizeof json,
                "{\"device_name\": \"%.200s\", \"sm_count\": %d, \"l2_bytes\": %d, "
                "\"copy_bytes\": %zu, \"copy_ms\": %.4f, \"copy_gb_per_s\": %.1f, "
                "\"h2d_bytes\": %zu, \"h2d_pinned_ms\": %.4f, \"h2d_pinned_gb_per_s\": %.2f, "
                "\"h2d_pageable_gb_per_s\": %.2f, \"gemm_mnk\": %d, \"gemm_ms\": %.4f, "
                "\"gemm_bf16_tflops\": %.1f}",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize, copy_bytes, copy_ms,
                copy_gbps, h2d_bytes, h2d_ms, h2d_gbps, h2d_pageable_gbps, gemm, gemm_ms, tflops);
  std::printf("%s\n", json);
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) return 1;
    std::fprintf(f, "%s\n", json);
    std::fclose(f);
  }
  return 0;
}
