// BF16 K-pair weights with vdpbf16ps (AVX-512 BF16).
//
// Built with the AVX-512 flags plus -mavx512bf16, apart from the other
// AVX-512 kernels so that only this file may contain BF16 instructions; called
// only when the CPU has AVX512_BF16. Internal linkage throughout.
//
// vdpbf16ps multiplies bf16 by bf16, and rounding x to bf16 would cost about
// 3 significant digits. So x is split once per call into two bf16 values,
// x ~= hi + lo with |x - hi - lo| <= 2^-16 |x| (hi = bf16(x), lo =
// bf16(x - hi), both rounded to nearest even), and each K-pair of 16 rows
// takes two vdpbf16ps: one against hi, one against lo. The weight products
// are exact in fp32; only the accumulation rounds (and the instruction flushes
// denormals). One 64-byte load is 16 rows x 2 columns; lanes run along rows,
// so no horizontal sums are needed. An odd K's last column (stored [G][1])
// is converted by a shift and multiplied by the float x exactly as F32.
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

namespace relayout::kernels::matmul_internal {
namespace {

constexpr int kRows = 16;
constexpr int kTokenTile = 4;

uint16_t RoundToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void SplitBf16(const float* x, int64_t k, uint32_t* hi, uint32_t* lo) {
  for (int64_t p = 0; p < (k + 1) / 2; ++p) {
    uint32_t h2 = 0;
    uint32_t l2 = 0;
    for (int64_t j = 0; j < 2 && 2 * p + j < k; ++j) {
      const float v = x[2 * p + j];
      const uint16_t h = RoundToBf16(v);
      const uint16_t l = RoundToBf16(v - Bf16ToFloat(h));
      h2 |= static_cast<uint32_t>(h) << (16 * j);
      l2 |= static_cast<uint32_t>(l) << (16 * j);
    }
    hi[p] = h2;
    lo[p] = l2;
  }
}

template <int TT>
void Micro(const uint8_t* group, int64_t g, int64_t sub, const MatmulArgs& a, int64_t t0,
           int64_t row) {
  const int64_t k = a.w.cols;
  const int64_t pairs = k / 2;
  const int64_t xpairs = (k + 1) / 2;
  const uint32_t* hi[TT];
  const uint32_t* lo[TT];
  __m512 acc_hi[TT], acc_lo[TT];
  for (int t = 0; t < TT; ++t) {
    hi[t] = a.xb.hi + (t0 + t) * xpairs;
    lo[t] = a.xb.lo + (t0 + t) * xpairs;
    acc_hi[t] = _mm512_setzero_ps();
    acc_lo[t] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t* at = group + 2 * (p * 2 * g + sub);
    // One sequential stream per call (one 64-byte line per pair): fetched
    // ahead, so that decode overlaps DRAM with the dot products.
    _mm_prefetch(reinterpret_cast<const char*>(at + kPrefetchAheadBytes), _MM_HINT_T0);
    const __m512bh w = (__m512bh)_mm512_loadu_si512(at);
    for (int t = 0; t < TT; ++t) {
      acc_hi[t] = _mm512_dpbf16_ps(acc_hi[t], w,
                                   (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(hi[t][p])));
      acc_lo[t] = _mm512_dpbf16_ps(acc_lo[t], w,
                                   (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(lo[t][p])));
    }
  }
  if (k % 2 != 0) {
    const __m256i raw =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(group + 2 * (pairs * 2 * g + sub / 2)));
    const __m512 w = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
    for (int t = 0; t < TT; ++t) {
      acc_hi[t] = _mm512_fmadd_ps(w, _mm512_set1_ps(a.x[(t0 + t) * k + k - 1]), acc_hi[t]);
    }
  }
  for (int t = 0; t < TT; ++t) {
    _mm512_storeu_ps(a.y + (t0 + t) * a.w.rows + row, _mm512_add_ps(acc_hi[t], acc_lo[t]));
  }
}

// Full groups with vdpbf16ps; the tail rows (row-major) go to the float kernel.
void KPairRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const MatmulWeight& w = a.w;
  const int64_t g = w.group_rows;
  int64_t row = row_begin;
  for (; row < row_end && InFullGroup(w, row); row += g) {
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + row * w.cols * 2;
    for (int64_t s = 0; s < g; s += kRows) {
      int64_t t = 0;
      for (; t + kTokenTile <= a.tokens; t += kTokenTile) {
        Micro<kTokenTile>(group, g, 2 * s, a, t, row + s);
      }
      for (; t < a.tokens; ++t) Micro<1>(group, g, 2 * s, a, t, row + s);
    }
  }
  if (row < row_end) Avx512FloatRows(a, row, row_end);
}

}  // namespace

const IsaKernels& Avx512Bf16Kernels() {
  static constexpr IsaKernels kTable{nullptr, nullptr,   nullptr,  nullptr,
                                     nullptr, KPairRows, SplitBf16};
  return kTable;
}

}  // namespace relayout::kernels::matmul_internal

#else  // not x86-64

namespace relayout::kernels::matmul_internal {
const IsaKernels& Avx512Bf16Kernels() {
  static constexpr IsaKernels kNone{};
  return kNone;
}
}  // namespace relayout::kernels::matmul_internal

#endif
