// Runtime x86 CPU feature detection (cpuid + xgetbv).
//
// A feature is reported only when the CPU implements it AND the OS saves the
// register state it needs (XCR0: YMM for AVX/AVX2/FMA/F16C/AVX-VNNI, ZMM and
// opmask for AVX-512), because an instruction the OS does not context-switch
// is as unusable as a missing one. On non-x86 builds every field is false.
//
// Thread safety: DetectCpuFeatures() computes once (thread-safe static
// initialisation) and returns a reference to an immutable value.
#pragma once

#include <string>

namespace relayout::kernels {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx_vnni = false;  // the VEX-encoded (256-bit) VNNI of Alder Lake and later

  friend bool operator==(const CpuFeatures&, const CpuFeatures&) = default;
};

// The features of the CPU this process runs on. Never fails: a CPU or OS that
// cannot report a feature reports it absent.
const CpuFeatures& DetectCpuFeatures();

// The present features as lower-case names in a fixed order, separated by one
// space: "avx2 fma f16c avx512f avx512bw avx512vl avx512vnni avx512bf16 avxvnni".
// "none" when no feature is present.
std::string CpuFeaturesToString(const CpuFeatures& features);

}  // namespace relayout::kernels
