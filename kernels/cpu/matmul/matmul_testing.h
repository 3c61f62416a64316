// Test and benchmark hooks of the Matmul dispatcher (matmul.h): force one
// instruction-set path so each can be checked on a machine that has several.
// Not for production code, which gets the best path the CPU supports.
//
// Thread safety: the forced path is a process-wide atomic; set it while no
// Matmul is running.
#pragma once

#include <cstdint>

namespace relayout::kernels {

enum class MatmulIsa : uint8_t {
  kAuto,          // the best the CPU supports (the default)
  kScalar,        // portable C++: the reference of the quantized algorithm
  kAvx2,          // AVX2 + FMA + F16C
  kAvx512,        // AVX-512 F/BW/VL/VNNI, and vdpbf16ps for BF16 K-pair when present
  kAvx512NoBf16,  // kAvx512 with the BF16 K-pair read by shifts, not vdpbf16ps
};

// Whether this CPU can run `isa` (kAuto and kScalar always can).
bool MatmulIsaAvailable(MatmulIsa isa);
// Forces `isa` for later Matmul calls. Returns false, changing nothing, when
// the CPU cannot run it.
bool SetMatmulIsaForTesting(MatmulIsa isa);
// The path Matmul uses now (never kAuto).
MatmulIsa ActiveMatmulIsa();
const char* MatmulIsaName(MatmulIsa isa);

}  // namespace relayout::kernels
