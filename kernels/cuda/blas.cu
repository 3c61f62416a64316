#include "kernels/cuda/blas.h"

namespace relayout::cuda {

namespace {

std::string LtError(const char* what, cublasStatus_t s) {
  return std::string("cuBLASLt ") + what + ": " + cublasLtGetStatusString(s);
}

// The largest power of two (up to 256) dividing the address: the alignment
// the heuristic may assume.
uint32_t AlignmentOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

}  // namespace

size_t BlasLt::KeyHash::operator()(const Key& k) const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t v : {static_cast<uint64_t>(k.m), static_cast<uint64_t>(k.n),
                     static_cast<uint64_t>(k.k), static_cast<uint64_t>(k.ldd),
                     (uint64_t{k.align_a} << 32) | k.align_b, uint64_t{k.align_d}}) {
    h = (h ^ v) * 0x100000001b3ull;
    h ^= h >> 31;
  }
  return static_cast<size_t>(h);
}

BlasLt::~BlasLt() {
  for (auto& [key, plan] : plans_) Destroy(&plan);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

void BlasLt::Destroy(Plan* p) {
  if (p->a != nullptr) cublasLtMatrixLayoutDestroy(p->a);
  if (p->b != nullptr) cublasLtMatrixLayoutDestroy(p->b);
  if (p->d != nullptr) cublasLtMatrixLayoutDestroy(p->d);
  if (p->desc != nullptr) cublasLtMatmulDescDestroy(p->desc);
  *p = Plan{};
}

std::string BlasLt::Init(void* workspace, uint64_t workspace_bytes) {
  if (handle_ == nullptr) {
    if (cublasStatus_t s = cublasLtCreate(&handle_); s != CUBLAS_STATUS_SUCCESS) {
      handle_ = nullptr;
      return LtError("create", s);
    }
  }
  workspace_ = workspace;
  workspace_bytes_ = workspace_bytes;
  return "";
}

std::string BlasLt::MakePlan(const Key& key, Plan* out) {
  Plan p;
  auto fail = [&](const char* what, cublasStatus_t s) {
    Destroy(&p);
    return LtError(what, s);
  };
  cublasStatus_t s = cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("matmul descriptor", s);
  const cublasOperation_t trans_a = CUBLAS_OP_T;  // op(A) = Wc^T = W: see blas.h
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  s = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a);
  if (s == CUBLAS_STATUS_SUCCESS) {
    s = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                       sizeof trans_b);
  }
  if (s != CUBLAS_STATUS_SUCCESS) return fail("transposes", s);
  // A: Wc, K x N column-major (ld K). B: xc, K x T (ld K). C = D: yc, N x T (ld ldy).
  s = cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, static_cast<uint64_t>(key.k),
                                 static_cast<uint64_t>(key.m), key.k);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("layout A", s);
  s = cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, static_cast<uint64_t>(key.k),
                                 static_cast<uint64_t>(key.n), key.k);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("layout B", s);
  s = cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, static_cast<uint64_t>(key.m),
                                 static_cast<uint64_t>(key.n), key.ldd);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("layout D", s);

  cublasLtMatmulPreference_t pref = nullptr;
  s = cublasLtMatmulPreferenceCreate(&pref);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("preference", s);
  const uint64_t ws = workspace_bytes_;
  const uint32_t aligns[4] = {key.align_a, key.align_b, key.align_d, key.align_d};
  s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                           sizeof ws);
  const cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; ++i) {
    s = cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &aligns[i], sizeof aligns[i]);
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (s == CUBLAS_STATUS_SUCCESS) {
    s = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result,
                                       &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS) return fail("heuristic", s);
  if (found < 1 || result.state != CUBLAS_STATUS_SUCCESS) {
    Destroy(&p);
    return "cuBLASLt: no algorithm for a BF16 GEMM of m " + std::to_string(key.m) + ", n " +
           std::to_string(key.n) + ", k " + std::to_string(key.k);
  }
  p.algo = result.algo;
  *out = p;
  return "";
}

std::string BlasLt::GemmBf16(cudaStream_t stream, const uint16_t* w, int64_t n, int64_t k,
                             const uint16_t* x, int64_t t, float* y, int64_t ldy, float alpha,
                             float beta) {
  if (handle_ == nullptr) return "cuBLASLt: not initialized";
  if (n <= 0 || k <= 0 || t <= 0) return "";
  const Key key{n, t, k, ldy, AlignmentOf(w), AlignmentOf(x), AlignmentOf(y)};
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    Plan p;
    if (std::string e = MakePlan(key, &p); !e.empty()) return e;
    it = plans_.emplace(key, p).first;
  }
  const Plan& p = it->second;
  // Host pointer mode (the default): alpha and beta are read now, so a
  // captured graph holds their values.
  const cublasStatus_t s = cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, y,
                                          p.d, &p.algo, workspace_, workspace_bytes_, stream);
  return s == CUBLAS_STATUS_SUCCESS ? "" : LtError("matmul", s);
}

}  // namespace relayout::cuda
