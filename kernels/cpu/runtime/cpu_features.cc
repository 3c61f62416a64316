#include "kernels/cpu/runtime/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RELAYOUT_X86 1
#endif

namespace relayout::kernels {
namespace {

#ifdef RELAYOUT_X86

// xgetbv through inline asm rather than _xgetbv(), which needs -mxsave on the
// whole translation unit; only called after CPUID reports OSXSAVE.
uint64_t ReadXcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool Bit(uint32_t reg, int bit) { return ((reg >> bit) & 1u) != 0; }

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return f;
  const unsigned max_leaf = eax;
  if (max_leaf < 1) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = Bit(ecx, 27);
  const bool avx = Bit(ecx, 28);
  const bool fma = Bit(ecx, 12);
  const bool f16c = Bit(ecx, 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool zmm_saved = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_saved) return f;
  f.fma = fma;
  f.f16c = f16c;
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned max_subleaf7 = eax;
  f.avx2 = Bit(ebx, 5);
  if (zmm_saved) {
    f.avx512f = Bit(ebx, 16);
    f.avx512bw = f.avx512f && Bit(ebx, 30);
    f.avx512vl = f.avx512f && Bit(ebx, 31);
    f.avx512vnni = f.avx512f && Bit(ecx, 11);
  }
  if (max_subleaf7 >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx_vnni = Bit(eax, 4);
    f.avx512bf16 = f.avx512f && Bit(eax, 5);
  }
  return f;
}

#else

CpuFeatures Detect() { return CpuFeatures{}; }

#endif

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string CpuFeaturesToString(const CpuFeatures& f) {
  struct Named {
    bool present;
    const char* name;
  };
  const Named all[] = {
      {f.avx2, "avx2"},
      {f.fma, "fma"},
      {f.f16c, "f16c"},
      {f.avx512f, "avx512f"},
      {f.avx512bw, "avx512bw"},
      {f.avx512vl, "avx512vl"},
      {f.avx512vnni, "avx512vnni"},
      {f.avx512bf16, "avx512bf16"},
      {f.avx_vnni, "avxvnni"},
  };
  std::string out;
  for (const Named& n : all) {
    if (!n.present) continue;
    if (!out.empty()) out += ' ';
    out += n.name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace relayout::kernels
