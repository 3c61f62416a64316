// The K-quant matmul (step 2K of matmul_internal.h) in 256-bit SIMD, shared
// by the AVX2 and AVX-512 files: each includes it once, inside its own ISA
// flags, and everything here has internal linkage (matmul_internal.h says
// why). Built with AVX-512BW, the dot runs on pairs of chunks in 512-bit
// vectors, from the same unpacked super-block.
//
// A super-block is unpacked to eight 32-byte vectors u (unsigned, 0..63, in
// element order) and two vectors of 16 int16: the sub-block scales sc and the
// min terms m. The dot with one token's Q8_K block is then, per 32-element
// chunk i, maddubs(u_i, q_i) (16 int16 pair sums: lanes 0..7 are sub-block
// 2i, lanes 8..15 sub-block 2i + 1), madd with [sc_2i x 8, sc_2i+1 x 8], and
// an add: isum exactly as the scalar loop, since every partial fits (pair
// sums <= 2 * 63 * 127, times |sc| <= 128). msum is one madd of m with the
// token's 16 bsums. The unpacking is shared by every token of the block.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/quant_format.h"

namespace relayout::kernels::matmul_internal {
namespace {

struct KBlockSimd {
  __m256i u[8];
  __m256i sc;  // 16 x int16
  __m256i m;   // 16 x int16
  float dw;
  float mw;
};

inline float KHalf(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i KLoad(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 8 bytes, each repeated: [b0, b0, b1, b1, ...] widened to 16 int16.
inline __m256i KPairsToI16(uint64_t bytes) {
  const __m128i v = _mm_shuffle_epi8(_mm_cvtsi64_si128(static_cast<int64_t>(bytes)),
                                     _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
  return _mm256_cvtepu8_epi16(v);
}

// Q2_K / Q3_K: four 2-bit planes of qs[32 * half ..] per 128 elements.
inline void KUnpack2BitPlanes(const uint8_t* qs, __m256i* u) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (int half = 0; half < 2; ++half) {
    const __m256i v = KLoad(qs + 32 * half);
    for (int plane = 0; plane < 4; ++plane) {
      u[4 * half + plane] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * plane), m3);
    }
  }
}

// Bit c of every byte of `bits`, shifted to bit `to`, or-ed into u[c].
inline void KOrHighBits(__m256i bits, int to, __m256i* u) {
  const __m256i one = _mm256_set1_epi8(1);
  for (int c = 0; c < 8; ++c) {
    const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(bits, c), one);
    u[c] = _mm256_or_si256(u[c], _mm256_slli_epi16(bit, to));
  }
}

inline void KUnpackQ2(const uint8_t* p, KBlockSimd* k) {
  BlockQ2_K b;
  std::memcpy(&b, p, sizeof b);
  KUnpack2BitPlanes(b.qs, k->u);
  const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m128i m4 = _mm_set1_epi8(0x0f);
  k->sc = _mm256_cvtepu8_epi16(_mm_and_si128(s, m4));
  k->m = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
  k->dw = KHalf(b.d);
  k->mw = KHalf(b.dmin);
}

inline void KUnpackQ3(const uint8_t* p, KBlockSimd* k) {
  BlockQ3_K b;
  std::memcpy(&b, p, sizeof b);
  KUnpack2BitPlanes(b.qs, k->u);
  KOrHighBits(KLoad(b.hmask), 2, k->u);
  // 16 six-bit scales: low nibbles in bytes 0..7 (scale s and s + 8 share a
  // byte), high 2 bits in bytes 8..11 (s, s + 4, s + 8, s + 12 share one).
  uint32_t w[3];
  std::memcpy(w, b.scales, sizeof w);
  const uint32_t lo4 = 0x0f0f0f0f;
  const uint32_t lo2 = 0x03030303;
  const uint32_t s[4] = {(w[0] & lo4) | ((w[2] >> 0) & lo2) << 4,
                         (w[1] & lo4) | ((w[2] >> 2) & lo2) << 4,
                         ((w[0] >> 4) & lo4) | ((w[2] >> 4) & lo2) << 4,
                         ((w[1] >> 4) & lo4) | ((w[2] >> 6) & lo2) << 4};
  const __m128i v =
      _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)), _mm_set1_epi8(32));
  k->sc = _mm256_cvtepi8_epi16(v);
  k->m = _mm256_slli_epi16(k->sc, 2);  // the offset 4, folded into the scale
  k->dw = KHalf(b.d);
  k->mw = 0.0f;
}

// Q4_K / Q5_K: nibbles of qs[32 * (c / 2) ..], low for even chunks; the
// 12-byte scales hold 8 six-bit scales and 8 six-bit mins.
inline void KUnpackQ4Q5(const uint8_t* scales, const uint8_t* qs, KBlockSimd* k) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = KLoad(qs + 32 * j);
    k->u[2 * j] = _mm256_and_si256(v, m4);
    k->u[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
  uint32_t w[3];
  std::memcpy(w, scales, sizeof w);
  const uint32_t lo6 = 0x3f3f3f3f;
  const uint32_t lo4 = 0x0f0f0f0f;
  const uint32_t lo2 = 0x03030303;
  const uint64_t sc = (w[0] & lo6) | static_cast<uint64_t>((w[2] & lo4) | ((w[0] >> 6) & lo2) << 4)
                                         << 32;
  const uint64_t m =
      (w[1] & lo6) | static_cast<uint64_t>(((w[2] >> 4) & lo4) | ((w[1] >> 6) & lo2) << 4) << 32;
  k->sc = KPairsToI16(sc);
  k->m = KPairsToI16(m);
}

inline void KUnpackQ4(const uint8_t* p, KBlockSimd* k) {
  BlockQ4_K b;
  std::memcpy(&b, p, sizeof b);
  KUnpackQ4Q5(b.scales, b.qs, k);
  k->dw = KHalf(b.d);
  k->mw = KHalf(b.dmin);
}

inline void KUnpackQ5(const uint8_t* p, KBlockSimd* k) {
  BlockQ5_K b;
  std::memcpy(&b, p, sizeof b);
  KUnpackQ4Q5(b.scales, b.qs, k);
  KOrHighBits(KLoad(b.qh), 4, k->u);
  k->dw = KHalf(b.d);
  k->mw = KHalf(b.dmin);
}

inline void KUnpackQ6(const uint8_t* p, KBlockSimd* k) {
  const uint8_t* ql = p + offsetof(BlockQ6_K, ql);
  const uint8_t* qh = p + offsetof(BlockQ6_K, qh);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m3 = _mm256_set1_epi8(3);
  for (int half = 0; half < 2; ++half) {
    const __m256i a = KLoad(ql + 64 * half);
    const __m256i b = KLoad(ql + 64 * half + 32);
    const __m256i h = KLoad(qh + 32 * half);
    const __m256i lo[4] = {_mm256_and_si256(a, m4), _mm256_and_si256(b, m4),
                           _mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(b, 4), m4)};
    for (int i = 0; i < 4; ++i) {
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(h, 2 * i), m3);
      k->u[4 * half + i] = _mm256_or_si256(lo[i], _mm256_slli_epi16(hi, 4));
    }
  }
  k->sc = _mm256_cvtepi8_epi16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + offsetof(BlockQ6_K, scales))));
  k->m = _mm256_slli_epi16(k->sc, 5);  // the offset 32, folded into the scale
  uint16_t d;
  std::memcpy(&d, p + offsetof(BlockQ6_K, d), sizeof d);
  k->dw = KHalf(d);
  k->mw = 0.0f;
}

template <WeightType kT>
inline void KUnpack(const uint8_t* p, KBlockSimd* k) {
  if constexpr (kT == WeightType::kQ2_K) KUnpackQ2(p, k);
  if constexpr (kT == WeightType::kQ3_K) KUnpackQ3(p, k);
  if constexpr (kT == WeightType::kQ4_K) KUnpackQ4(p, k);
  if constexpr (kT == WeightType::kQ5_K) KUnpackQ5(p, k);
  if constexpr (kT == WeightType::kQ6_K) KUnpackQ6(p, k);
}

template <WeightType kT>
constexpr int64_t KBlockBytesOf() {
  return kT == WeightType::kQ2_K   ? sizeof(BlockQ2_K)
         : kT == WeightType::kQ3_K ? sizeof(BlockQ3_K)
         : kT == WeightType::kQ4_K ? sizeof(BlockQ4_K)
         : kT == WeightType::kQ5_K ? sizeof(BlockQ5_K)
                                   : sizeof(BlockQ6_K);
}

template <WeightType kT>
constexpr bool KHasMinOf() {
  return kT == WeightType::kQ2_K || kT == WeightType::kQ4_K || kT == WeightType::kQ5_K;
}

// The per-chunk scale vectors [sc_2i x 8, sc_2i+1 x 8] of an unpacked block.
inline void KChunkScales(__m256i sc, __m256i* out) {
  const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                        2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  for (int i = 0; i < 8; ++i) {
    out[i] = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc, _mm256_set1_epi32(i)), pick);
  }
}

// One token's 256 activations q against an unpacked super-block: 8 int32
// lanes whose sum is isum of step 2K.
inline __m256i KDotLanes(const KBlockSimd& k, const __m256i* chunk_scales, const int8_t* q) {
  __m256i acc = _mm256_setzero_si256();
  for (int i = 0; i < 8; ++i) {
    const __m256i p = _mm256_maddubs_epi16(k.u[i], KLoad(q + 32 * i));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, chunk_scales[i]));
  }
  return acc;
}

// The 8 int32 sums of 8 vectors, in order: lane r = the sum of v[r]'s lanes
// (integer adds, so the grouping does not change the result).
inline __m256i KSum8(const __m256i* v) {
  const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]);
  const __m256i h23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]);
  const __m256i h67 = _mm256_hadd_epi32(v[6], v[7]);
  // Rows 0..3's sums of their low 128-bit halves, then of their high halves;
  // the same for rows 4..7.
  const __m256i r0123 = _mm256_hadd_epi32(h01, h23);
  const __m256i r4567 = _mm256_hadd_epi32(h45, h67);
  const __m256i a = _mm256_permute2x128_si256(r0123, r4567, 0x20);
  const __m256i b = _mm256_permute2x128_si256(r0123, r4567, 0x31);
  return _mm256_add_epi32(a, b);
}

// Prefetches what super-block b + ahead of a tile reads: in a row group the
// tile's blocks b are one contiguous run of block_stride bytes; in the file
// layout the next tile's rows, spread over this tile's blocks (QuantTile).
inline void KPrefetchBlock(const QuantTile& tile, int64_t b, int64_t block_bytes) {
  uintptr_t from;
  int64_t bytes;
  if (tile.prefetch_bytes != 0) {
    from = tile.prefetch_from + static_cast<uintptr_t>(b * tile.prefetch_bytes);
    bytes = tile.prefetch_bytes;
  } else {
    const int64_t ahead = (kPrefetchAheadBytes + tile.block_stride - 1) / tile.block_stride;
    from = reinterpret_cast<uintptr_t>(tile.payload[0] + (b + ahead) * tile.block_stride);
    bytes = tile.rows * block_bytes;
  }
  for (int64_t i = 0; i < bytes; i += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(from + static_cast<uintptr_t>(i)), 0, 3);
  }
}

// Rows [row_begin, row_end) for every token, in tiles of 8 rows with one
// float lane per row (QuantTile: any layout), in row panels and token
// blocks: each tile's super-block b is unpacked once per token block and
// dotted with every token of it. A token's isum and msum for the 8 rows come
// out of KSum8 as one vector, so the float steps of 2K run lane per row, in
// the scalar loop's order: bit for bit the same result.
template <WeightType kT>
void KQuantRowsSimd(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  constexpr int kSubs = kKBlock / kKSub;
  constexpr int kRows = 8;
  const int64_t k = a.w.cols;
  const int64_t blocks = k / kKBlock;
  __m256 acc[256];
  __m256 accm[256];
  KBlockSimd kb[kRows];
  __m256i scales[kRows][8];
#if defined(__AVX512BW__)
  // The same vectors in pairs: one 512-bit maddubs/madd covers two chunks.
  __m512i u512[kRows][4];
  __m512i scales512[kRows][4];
#endif
  for (int64_t p0 = row_begin; p0 < row_end; p0 += a.row_panel) {
    const int64_t p1 = p0 + a.row_panel < row_end ? p0 + a.row_panel : row_end;
    for (int64_t t0 = 0; t0 < a.tokens; t0 += a.token_block) {
      const int64_t t1 = t0 + a.token_block < a.tokens ? t0 + a.token_block : a.tokens;
#if defined(__AVX512BW__)
      // Pairing the chunks costs 8 inserts per row and block: worth it when
      // the pairs serve more than one token.
      const bool wide = t1 - t0 > 1;
#endif
      for (int64_t n = p0; n < p1;) {
        QuantTile tile;
        const int rows = MakeQuantTile(a.w, n, p1, kRows, &tile);
        for (int64_t t = t0; t < t1; ++t) acc[t - t0] = accm[t - t0] = _mm256_setzero_ps();
        for (int64_t b = 0; b < blocks; ++b) {
          KPrefetchBlock(tile, b, KBlockBytesOf<kT>());
          alignas(32) float dw[kRows];
          alignas(32) float mw[kRows];
          for (int r = 0; r < kRows; ++r) {
            KUnpack<kT>(tile.payload[r] + b * tile.block_stride, &kb[r]);
            KChunkScales(kb[r].sc, scales[r]);
            dw[r] = kb[r].dw;
            mw[r] = kb[r].mw;
#if defined(__AVX512BW__)
            for (int j = 0; wide && j < 4; ++j) {
              u512[r][j] =
                  _mm512_inserti64x4(_mm512_castsi256_si512(kb[r].u[2 * j]), kb[r].u[2 * j + 1], 1);
              scales512[r][j] = _mm512_inserti64x4(_mm512_castsi256_si512(scales[r][2 * j]),
                                                   scales[r][2 * j + 1], 1);
            }
#endif
          }
          const __m256 dw8 = _mm256_load_ps(dw);
          const __m256 mw8 = _mm256_load_ps(mw);
          for (int64_t t = t0; t < t1; ++t) {
            const int8_t* q = a.xk.q + t * k + b * kKBlock;
            const __m256i bsum = KLoad(a.xk.bsum + (t * blocks + b) * kSubs);
            __m256i isum[kRows];
            __m256i msum[kRows];
#if defined(__AVX512BW__)
            __m512i q512[4];
            for (int j = 0; wide && j < 4; ++j) q512[j] = _mm512_loadu_si512(q + 64 * j);
#endif
            for (int r = 0; r < kRows; ++r) {
#if defined(__AVX512BW__)
              __m256i s;
              if (wide) {
                __m512i sum = _mm512_setzero_si512();
                for (int j = 0; j < 4; ++j) {
                  const __m512i p = _mm512_maddubs_epi16(u512[r][j], q512[j]);
                  sum = _mm512_add_epi32(sum, _mm512_madd_epi16(p, scales512[r][j]));
                }
                s = _mm256_add_epi32(_mm512_castsi512_si256(sum),
                                     _mm512_extracti64x4_epi64(sum, 1));
              } else {
                s = KDotLanes(kb[r], scales[r], q);
              }
#else
              const __m256i s = KDotLanes(kb[r], scales[r], q);
#endif
              const __m256i m = _mm256_madd_epi16(kb[r].m, bsum);
              if constexpr (KHasMinOf<kT>()) {
                isum[r] = s;
                msum[r] = m;
              } else {
                isum[r] = _mm256_sub_epi32(s, m);  // isum - msum, exact
              }
            }
            const __m256 d = _mm256_set1_ps(a.xk.d[t * blocks + b]);
            acc[t - t0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(KSum8(isum)), _mm256_mul_ps(dw8, d),
                                          acc[t - t0]);
            if constexpr (KHasMinOf<kT>()) {
              accm[t - t0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(KSum8(msum)), _mm256_mul_ps(mw8, d),
                                             accm[t - t0]);
            }
          }
        }
        for (int64_t t = t0; t < t1; ++t) {
          alignas(32) float y[kRows];
          _mm256_store_ps(y,
                          KHasMinOf<kT>() ? _mm256_sub_ps(acc[t - t0], accm[t - t0]) : acc[t - t0]);
          for (int r = 0; r < rows; ++r) a.y[t * a.w.rows + n + r] = y[r];
        }
        n += rows;
      }
    }
  }
}

inline void KQuantRowsByType(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.w.type) {
    case WeightType::kQ2_K:
      return KQuantRowsSimd<WeightType::kQ2_K>(a, row_begin, row_end);
    case WeightType::kQ3_K:
      return KQuantRowsSimd<WeightType::kQ3_K>(a, row_begin, row_end);
    case WeightType::kQ4_K:
      return KQuantRowsSimd<WeightType::kQ4_K>(a, row_begin, row_end);
    case WeightType::kQ5_K:
      return KQuantRowsSimd<WeightType::kQ5_K>(a, row_begin, row_end);
    default:
      return KQuantRowsSimd<WeightType::kQ6_K>(a, row_begin, row_end);
  }
}

}  // namespace
}  // namespace relayout::kernels::matmul_internal
