// AVX-512 K-quant kernels: for a few tokens, matmul_kquant_simd.h built with
// AVX-512BW (512-bit dots over pairs of chunks); for prefill, a VNNI GEMM over
// row panels unpacked once per call. Activations are quantized to Q8_K by the
// AVX2 quantizer (the same bits on every ISA).
//
// The GEMM (matmul_vnni_gemm.h: the driver and the interleaved form). Here
// per 16-row tile and super-block b:
//
//   u[g] (g = 0..63):    lane r = elements 4g..4g+3 of row r (unsigned, 0..63)
//   sc[s]:               16 int32, lane r = row r's scale of sub-block s
//                        (32 elements for Q4_K/Q5_K, 16 for the others)
//   m[p] (p = 0..7):     16 int32, lane r = row r's min terms m_2p, m_2p+1
//                        as two int16 (per 16 elements, as in step 2K)
//   dw, mw:              16 floats, the rows' d and dmin
//
// For a register tile of 8 tokens, per sub-block: the dots of the
// sub-block's groups into one int32 vector per token, then isum += sub * sc
// (vpmulld); msum is 8 vpdpwssd of the m pairs with the token's bsum pairs.
// Integer all the way to isum and msum, then the float steps of 2K.
#include "kernels/cpu/matmul/matmul_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/matmul/matmul_kquant_simd.h"
#include "kernels/cpu/matmul/matmul_vnni_gemm.h"

namespace relayout::kernels::matmul_internal {
namespace {

template <WeightType kT>
constexpr int KSubElemsOf() {
  return kT == WeightType::kQ4_K || kT == WeightType::kQ5_K ? 32 : 16;
}

// Bytes of one 16-row tile's unpacked super-block.
template <WeightType kT>
constexpr int64_t KTileBlockBytes() {
  return 64 * 64 + (kKBlock / KSubElemsOf<kT>()) * 64 + 8 * 64 + 2 * 64;
}

template <WeightType kT>
struct KTileBlock {
  static constexpr int kSubs = kKBlock / KSubElemsOf<kT>();
  alignas(64) uint8_t u[64][64];
  alignas(64) int32_t sc[kSubs][kGemmRows];
  alignas(64) int32_t m[8][kGemmRows];
  alignas(64) float dw[kGemmRows];
  alignas(64) float mw[kGemmRows];
};
static_assert(sizeof(KTileBlock<WeightType::kQ6_K>) == KTileBlockBytes<WeightType::kQ6_K>());
static_assert(sizeof(KTileBlock<WeightType::kQ4_K>) == KTileBlockBytes<WeightType::kQ4_K>());

// Unpacks rows [row, row + 16) into blocks[0 .. K / 256) (F::UnpackTile).
template <WeightType kT>
void KUnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, KTileBlock<kT>* blocks) {
  GemmRows rows;
  GemmRowPointers(w, row, row_end, &rows);
  const int64_t nblocks = w.cols / kKBlock;
  constexpr int kSubs = KTileBlock<kT>::kSubs;
  constexpr int kPer = KSubElemsOf<kT>() / 16;  // 16-element scales per sub-block
  for (int64_t b = 0; b < nblocks; ++b) {
    KTileBlock<kT>& out = blocks[b];
    alignas(64) uint8_t u[kGemmRows][kKBlock];
    for (int r = 0; r < kGemmRows; ++r) {
      KBlockSimd kb;
      KUnpack<kT>(rows.payload[r] + b * rows.stride[r], &kb);
      for (int c = 0; c < 8; ++c) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(u[r] + 32 * c), kb.u[c]);
      }
      alignas(32) int16_t sc[16];
      alignas(32) int32_t m[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sc), kb.sc);
      _mm256_store_si256(reinterpret_cast<__m256i*>(m), kb.m);
      for (int s = 0; s < kSubs; ++s) out.sc[s][r] = sc[s * kPer];
      for (int p = 0; p < 8; ++p) out.m[p][r] = m[p];
      out.dw[r] = kb.dw;
      out.mw[r] = kb.mw;
    }
    // 16 x 64 dwords to 64 x 16: four 16 x 16 transposes.
    for (int q = 0; q < 4; ++q) Transpose16x16Dwords(u[0] + 64 * q, kKBlock, out.u[16 * q]);
  }
}

// y for 8 tokens and the 16 rows of one unpacked tile (F::Tile).
template <WeightType kT>
void KGemmTile(const MatmulArgs& a, const KTileBlock<kT>* blocks, int64_t nblocks,
               const int64_t* ids, __m512* y) {
  constexpr int kT8 = kGemmTokens;
  const int64_t k = a.w.cols;
  const int8_t* q[kT8];
  const float* d[kT8];
  const int16_t* bsum[kT8];
  for (int t = 0; t < kT8; ++t) {
    q[t] = a.xk.q + ids[t] * k;
    d[t] = a.xk.d + ids[t] * nblocks;
    bsum[t] = a.xk.bsum + ids[t] * (k / kKSub);
  }
  constexpr int kSubs = KTileBlock<kT>::kSubs;
  constexpr int kGroups = KSubElemsOf<kT>() / 4;
  __m512 acc[kT8];
  __m512 accm[kT8];
  for (int t = 0; t < kT8; ++t) acc[t] = accm[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nblocks; ++b) {
    const KTileBlock<kT>& kb = blocks[b];
    __m512i isum[kT8];
    for (int t = 0; t < kT8; ++t) isum[t] = _mm512_setzero_si512();
    for (int s = 0; s < kSubs; ++s) {
      __m512i sub[kT8];
      for (int t = 0; t < kT8; ++t) sub[t] = _mm512_setzero_si512();
      for (int g = s * kGroups; g < (s + 1) * kGroups; ++g) {
        const __m512i wv = _mm512_load_si512(kb.u[g]);
        for (int t = 0; t < kT8; ++t) {
          sub[t] = _mm512_dpbusd_epi32(sub[t], wv, Broadcast4(q[t] + b * kKBlock + 4 * g));
        }
      }
      const __m512i scv = _mm512_load_si512(kb.sc[s]);
      for (int t = 0; t < kT8; ++t)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sub[t], scv));
    }
    __m512i msum[kT8];
    for (int t = 0; t < kT8; ++t) msum[t] = _mm512_setzero_si512();
    for (int p = 0; p < 8; ++p) {
      const __m512i mv = _mm512_load_si512(kb.m[p]);
      for (int t = 0; t < kT8; ++t) {
        msum[t] = _mm512_dpwssd_epi32(msum[t], mv, Broadcast4(bsum[t] + b * 16 + 2 * p));
      }
    }
    const __m512 dw = _mm512_load_ps(kb.dw);
    for (int t = 0; t < kT8; ++t) {
      const __m512 dt = _mm512_set1_ps(d[t][b]);
      if constexpr (KHasMinOf<kT>()) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, dt), acc[t]);
        accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[t]),
                                  _mm512_mul_ps(_mm512_load_ps(kb.mw), dt), accm[t]);
      } else {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], msum[t])),
                                 _mm512_mul_ps(dw, dt), acc[t]);
      }
    }
  }
  for (int t = 0; t < kT8; ++t) y[t] = KHasMinOf<kT>() ? _mm512_sub_ps(acc[t], accm[t]) : acc[t];
}

template <WeightType kT>
struct KGemmFormat {
  using Block = KTileBlock<kT>;
  static constexpr int64_t kElems = kKBlock;
  static int64_t TokenBytes(int64_t k) { return k + k / kKBlock * 4 + (k / kKSub) * 2; }
  static void UnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, Block* blocks) {
    KUnpackTile<kT>(w, row, row_end, blocks);
  }
  static void Tile(const MatmulArgs& a, const Block* blocks, int64_t nblocks, const int64_t* ids,
                   __m512* y) {
    KGemmTile<kT>(a, blocks, nblocks, ids, y);
  }
};

template <WeightType kT>
void KQuantGemm(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  VnniGemm<KGemmFormat<kT>>(a, row_begin, row_end);
}

void KQuantGemmByType(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.w.type) {
    case WeightType::kQ2_K:
      return KQuantGemm<WeightType::kQ2_K>(a, row_begin, row_end);
    case WeightType::kQ3_K:
      return KQuantGemm<WeightType::kQ3_K>(a, row_begin, row_end);
    case WeightType::kQ4_K:
      return KQuantGemm<WeightType::kQ4_K>(a, row_begin, row_end);
    case WeightType::kQ5_K:
      return KQuantGemm<WeightType::kQ5_K>(a, row_begin, row_end);
    default:
      return KQuantGemm<WeightType::kQ6_K>(a, row_begin, row_end);
  }
}

}  // namespace

void Avx512KQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  if (a.tokens >= kGemmMinTokens) return KQuantGemmByType(a, row_begin, row_end);
  KQuantRowsByType(a, row_begin, row_end);
}

}  // namespace relayout::kernels::matmul_internal

#endif
