// The SwiGLU gate of a Llama MLP:
//   out[i] = silu(g[i]) * u[i],  silu(v) = v / (1 + exp(-v)),  i in [0, n)
// g, u and out hold n floats; out may alias g or u (rows of [T, ffn] laid
// end to end are one call with n = T * ffn).
//
// Thread safety: a pure function of its inputs.
#pragma once

#include <cstdint>

namespace relayout::kernels {

// REQUIRES: n >= 0.
void SiluGate(const float* g, const float* u, int64_t n, float* out);

}  // namespace relayout::kernels
