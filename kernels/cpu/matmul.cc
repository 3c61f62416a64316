// Matmul dispatch. For now: the reference GEMV per token, split over tokens
// across the pool. The SIMD kernels replace this.
#include "kernels/cpu/matmul.h"

namespace relayout::kernels {

bool Matmul(const MatmulWeight& w, const float* x, int64_t tokens, float* y, ThreadPool* pool) {
  if (!MatmulSupported(w) || tokens < 1) return false;
  if (pool == nullptr || tokens == 1) return MatmulReference(w, x, tokens, y);
  bool ok = true;
  pool->Run(tokens, [&](int64_t t) {
    if (!MatmulReference(w, x + t * w.cols, 1, y + t * w.rows)) ok = false;
  });
  return ok;
}

}  // namespace relayout::kernels
