// AVX-512 VNNI kernels for quantized weights of 32-element blocks (Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) against
// activations quantized to Q8 (the algorithm of matmul_internal.h, bit for
// bit).
//
// Built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (and the AVX2
// flags); called only after the dispatcher has seen those features. Internal
// linkage throughout (matmul_internal.h says why).
//
// A tile is 8 rows. vpdpbusd multiplies unsigned weights by signed
// activations: Q4 nibbles are unsigned already, Q8_0 weights are biased by
// +128 (xor 0x80) and 128 * sum(q) is subtracted afterwards, Q4_0's -8 the
// same way. One zmm holds 4 rows x 16 bytes (Q4: a row's low or high
// nibbles) or 2 rows x 32 bytes (Q8_0). Per token, the per-row dword partials
// are folded with unpacks into 8 row sums, and two tokens share one zmm, so
// the float step acc = fma(isum, dw * d, acc) covers 8 rows x 2 tokens per
// instruction. In q-rowgroup-g8 a group block is read with one 16-byte scale
// load and two (Q4) or four (Q8_0) 64-byte payload loads; GGUF rows need 8
// scalar scale loads and 8 loads of 16 or 32 bytes. Q5 and IQ4_NL take the
// Q4 path: the fifth bits of 4 rows are one 64-bit mask that adds 16 to the
// selected nibble bytes; IQ4_NL's nibbles index its table (biased by +128 so
// vpdpbusd sees unsigned weights) with one vpshufb, and 128 * sum(q) is
// subtracted afterwards as for Q8_0.
//
// From kQuantGemmMinTokens tokens (prefill) the VNNI GEMM of
// matmul_vnni_gemm.h runs instead (end of file): it unpacks a row panel once
// per call and serves every token from it, 16 rows per vpdpbusd.
#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/matmul/matmul_quant_rows.h"
#include "kernels/quant_format.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul/matmul_vnni_gemm.h"

namespace relayout::kernels::matmul_internal {
namespace {

using Q = QuantKind;

// Tokens per register tile (two per accumulator).
constexpr int kTokenTile = 4;

__m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
__m256i LoadU256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
__m512i LoadU512(const void* p) { return _mm512_loadu_si512(p); }
int16_t LoadI16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct GroupLoader {
  const uint8_t* base;
  int64_t stride;

  void Prefetch(int64_t b) const { PrefetchGroupBlock(base, stride, b); }
  int fields;

  __m512 Scales(int64_t b) const {
    return _mm512_zextps256_ps512(_mm256_cvtph_ps(LoadU128(base + b * stride)));
  }
  __m512 Mins(int64_t b) const {
    return _mm512_zextps256_ps512(_mm256_cvtph_ps(LoadU128(base + b * stride + 16)));
  }
  // Q4: rows 4h .. 4h + 3, one per 128-bit lane.
  __m512i Q4Quad(int64_t b, int h) const {
    return LoadU512(base + b * stride + 16 * fields + 64 * h);
  }
  // Q8_0: rows 2j (low 256 bits) and 2j + 1.
  __m512i Q8Duo(int64_t b, int j) const { return LoadU512(base + b * stride + 16 + 64 * j); }
  // Q5: the fifth bits of rows 4h .. 4h + 3, 16 per row, for the low nibbles
  // (hi = 0: the qh field before last) or the high ones.
  __mmask64 QhQuad(int64_t b, int h, int hi) const {
    uint64_t v;
    std::memcpy(&v, base + b * stride + 16 * (fields - 2 + hi) + 8 * h, sizeof v);
    return v;
  }
};

struct TileLoader {
  const QuantTile* t;

  void Prefetch(int64_t b) const { PrefetchTileBlock(*t, b); }

  static __m512 Gather(const uint8_t* const* p, int64_t off) {
    return _mm512_zextps256_ps512(_mm256_cvtph_ps(_mm_setr_epi16(
        LoadI16(p[0] + off), LoadI16(p[1] + off), LoadI16(p[2] + off), LoadI16(p[3] + off),
        LoadI16(p[4] + off), LoadI16(p[5] + off), LoadI16(p[6] + off), LoadI16(p[7] + off))));
  }
  __m512 Scales(int64_t b) const { return Gather(t->scale, b * t->block_stride); }
  __m512 Mins(int64_t b) const { return Gather(t->min, b * t->block_stride); }
  __m512i Q4Quad(int64_t b, int h) const {
    const int64_t off = b * t->block_stride;
    const uint8_t* const* p = t->payload + 4 * h;
    __m512i v = _mm512_castsi128_si512(LoadU128(p[0] + off));
    v = _mm512_inserti32x4(v, LoadU128(p[1] + off), 1);
    v = _mm512_inserti32x4(v, LoadU128(p[2] + off), 2);
    return _mm512_inserti32x4(v, LoadU128(p[3] + off), 3);
  }
  __m512i Q8Duo(int64_t b, int j) const {
    const int64_t off = b * t->block_stride;
    return _mm512_inserti64x4(_mm512_castsi256_si512(LoadU256(t->payload[2 * j] + off)),
                              LoadU256(t->payload[2 * j + 1] + off), 1);
  }
  __mmask64 QhQuad(int64_t b, int h, int hi) const {
    const int64_t off = b * t->block_stride + hi * t->qh_hi_offset;
    uint64_t v = 0;
    for (int i = 0; i < 4; ++i) {
      v |= static_cast<uint64_t>(static_cast<uint16_t>(LoadI16(t->qh[4 * h + i] + off)))
           << (16 * i);
    }
    return v;
  }
};

// Per-token partial sums of rows 0-3 (a) and 4-7 (b), 4 dwords per row in
// each 128-bit lane -> lane i: [row i, row i+4, row i, row i+4] halves.
__m512i FoldRows(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}

template <Q kQ, int TT, class Loader>
void Micro(const Loader& ld, const MatmulArgs& a, int64_t t0, int64_t row, int rows) {
  constexpr int kPairs = (TT + 1) / 2;
  const int64_t k = a.w.cols;
  const int64_t blocks = k / kQBlock;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  // Lane 4i + j of a token pair's result holds row i + 4 * (j & 1) of token
  // j >> 1 (FoldRows, then the pair combine below).
  const __m512i lane_row = _mm512_setr_epi32(0, 4, 0, 4, 1, 5, 1, 5, 2, 6, 2, 6, 3, 7, 3, 7);
  const __mmask16 second = 0xcccc;
  const int8_t* q[TT];
  const float* d[TT];
  const int32_t* sum[TT];
  const float* s[TT];
  for (int t = 0; t < TT; ++t) {
    q[t] = a.xq.q + (t0 + t) * k;
    d[t] = a.xq.d + (t0 + t) * blocks;
    sum[t] = a.xq.sum + (t0 + t) * blocks;
    s[t] = a.xq.s + (t0 + t) * blocks;
  }
  __m512 acc[kPairs];
  __m512 accm[kPairs];
  for (int p = 0; p < kPairs; ++p) {
    acc[p] = _mm512_setzero_ps();
    accm[p] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    ld.Prefetch(b);
    const __m512 dw = _mm512_permutexvar_ps(lane_row, ld.Scales(b));
    __m512 mw = _mm512_setzero_ps();
    if constexpr (QuantHasMin(kQ)) mw = _mm512_permutexvar_ps(lane_row, ld.Mins(b));
    __m512i folded[TT];
    if constexpr (kQ == Q::k8_0) {
      __m512i w[4];
      for (int j = 0; j < 4; ++j) w[j] = _mm512_xor_si512(ld.Q8Duo(b, j), bias);
      for (int t = 0; t < TT; ++t) {
        const __m512i x = _mm512_broadcast_i64x4(LoadU256(q[t] + b * kQBlock));
        __m512i e[4];
        for (int j = 0; j < 4; ++j) e[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[j], x);
        // Lanes (row 2j: 0, 1; row 2j + 1: 2, 3) -> one lane per row.
        const __m512i lo = _mm512_add_epi32(_mm512_shuffle_i64x2(e[0], e[1], 0x88),
                                            _mm512_shuffle_i64x2(e[0], e[1], 0xdd));
        const __m512i hi = _mm512_add_epi32(_mm512_shuffle_i64x2(e[2], e[3], 0x88),
                                            _mm512_shuffle_i64x2(e[2], e[3], 0xdd));
        folded[t] = FoldRows(lo, hi);
      }
    } else {
      __m512i lo[2], hi[2];
      for (int h = 0; h < 2; ++h) {
        const __m512i v = ld.Q4Quad(b, h);
        lo[h] = _mm512_and_si512(v, m4);
        hi[h] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if constexpr (QuantHasHighBit(kQ)) {
          const __m512i sixteen = _mm512_set1_epi8(0x10);
          lo[h] = _mm512_mask_add_epi8(lo[h], ld.QhQuad(b, h, 0), lo[h], sixteen);
          hi[h] = _mm512_mask_add_epi8(hi[h], ld.QhQuad(b, h, 1), hi[h], sixteen);
        }
        if constexpr (kQ == Q::kIQ4NL) {
          const __m512i table =
              _mm512_xor_si512(_mm512_broadcast_i32x4(LoadU128(kIQ4_NLValues)), bias);
          lo[h] = _mm512_shuffle_epi8(table, lo[h]);
          hi[h] = _mm512_shuffle_epi8(table, hi[h]);
        }
      }
      for (int t = 0; t < TT; ++t) {
        const __m512i xl = _mm512_broadcast_i32x4(LoadU128(q[t] + b * kQBlock));
        const __m512i xh = _mm512_broadcast_i32x4(LoadU128(q[t] + b * kQBlock + 16));
        const __m512i r03 =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], xl), hi[0], xh);
        const __m512i r47 =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[1], xl), hi[1], xh);
        folded[t] = FoldRows(r03, r47);
      }
    }
    for (int p = 0; p < kPairs; ++p) {
      const int t = 2 * p;
      const int u = t + 1 < TT ? t + 1 : t;
      __m512i isum = _mm512_add_epi32(_mm512_unpacklo_epi64(folded[t], folded[u]),
                                      _mm512_unpackhi_epi64(folded[t], folded[u]));
      if constexpr (!QuantHasMin(kQ)) {
        // The weights' bias: 128 (Q8_0, IQ4_NL), 8 (Q4_0), 16 (Q5_0).
        constexpr int kShift = kQ == Q::k8_0 || kQ == Q::kIQ4NL ? 7 : kQ == Q::k4_0 ? 3 : 4;
        const __m512i sums = _mm512_mask_blend_epi32(second, _mm512_set1_epi32(sum[t][b]),
                                                     _mm512_set1_epi32(sum[u][b]));
        isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(sums, kShift));
      }
      const __m512 dx =
          _mm512_mask_blend_ps(second, _mm512_set1_ps(d[t][b]), _mm512_set1_ps(d[u][b]));
      acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, dx), acc[p]);
      if constexpr (QuantHasMin(kQ)) {
        const __m512 sx =
            _mm512_mask_blend_ps(second, _mm512_set1_ps(s[t][b]), _mm512_set1_ps(s[u][b]));
        accm[p] = _mm512_fmadd_ps(mw, sx, accm[p]);
      }
    }
  }
  for (int p = 0; p < kPairs; ++p) {
    __m512 v = acc[p];
    if constexpr (QuantHasMin(kQ)) v = _mm512_add_ps(v, accm[p]);
    alignas(64) float out[16];
    _mm512_store_ps(out, v);
    for (int j = 0; j < 4; ++j) {
      const int t = 2 * p + (j >> 1);
      if (t >= TT) continue;
      float* y = a.y + (t0 + t) * a.w.rows + row;
      const int r0 = 4 * (j & 1);
      for (int i = 0; i < 4; ++i) {
        if (r0 + i < rows) y[r0 + i] = out[4 * i + j];
      }
    }
  }
}

template <Q kQ, class Loader>
void Tokens(const Loader& ld, const MatmulArgs& a, int64_t t0, int64_t t1, int64_t row, int rows) {
  int64_t t = t0;
  for (; t + kTokenTile <= t1; t += kTokenTile) Micro<kQ, kTokenTile>(ld, a, t, row, rows);
  switch (t1 - t) {
    case 3:
      return Micro<kQ, 3>(ld, a, t, row, rows);
    case 2:
      return Micro<kQ, 2>(ld, a, t, row, rows);
    case 1:
      return Micro<kQ, 1>(ld, a, t, row, rows);
    default:
      return;
  }
}

struct Kernel {
  using GroupLoader = ::relayout::kernels::matmul_internal::GroupLoader;
  using TileLoader = ::relayout::kernels::matmul_internal::TileLoader;
  template <Q kQ, class Loader>
  static void Tokens(const Loader& ld, const MatmulArgs& a, int64_t t0, int64_t t1, int64_t row,
                     int rows) {
    matmul_internal::Tokens<kQ>(ld, a, t0, t1, row, rows);
  }
};

// ---- The GEMM (matmul_vnni_gemm.h), from kQuantGemmMinTokens tokens. Every type is unpacked
// to u = w + 128 (unsigned) with w the signed weight of step 2, so
// isum = dot(u, q) - 128 * sum(q): for Q4_0 that is dot(nib, q) - 8 sum, the
// same integer. Per 16-row tile and block: u[g] (g = 0..7) as in the driver,
// dw and mw (Q4_1, Q5_1) as 16 floats; per token the float steps of step 2.

// The per-row group kernels read these types straight from q-rowgroup-g8 at
// about 200 GFLOP/s a thread; the GEMM's one-time unpacking (4 bytes a
// weight where the file holds 0.56-1.06) needs more tokens to pay: measured
// 0.76x at 16 tokens, 1.0-1.4x at 24-32, 1.25-1.5x from 64 (bench_matmul,
// SmolLM2 and 1B shapes).
constexpr int64_t kQuantGemmMinTokens = 48;

struct QTileBlock {
  alignas(64) uint8_t u[8][64];
  alignas(64) float dw[kGemmRows];
  alignas(64) float mw[kGemmRows];
};

// A row's block b as 32 bytes u = w + 128, in element order.
template <Q kQ>
__m256i QUnpackU(const GemmRows& rows, int r, int64_t b) {
  const uint8_t* p = rows.payload[r] + b * rows.stride[r];
  if constexpr (kQ == Q::k8_0) {
    return _mm256_xor_si256(LoadU256(p), _mm256_set1_epi8(static_cast<char>(0x80)));
  } else {
    const __m128i bytes = LoadU128(p);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256i v =
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), m4), _mm_and_si128(bytes, m4));
    if constexpr (kQ == Q::kIQ4NL) {
      alignas(16) int8_t table[16];
      for (int i = 0; i < 16; ++i) table[i] = static_cast<int8_t>(kIQ4_NLValues[i] ^ 0x80);
      const __m128i t = _mm_load_si128(reinterpret_cast<const __m128i*>(table));
      return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), v);
    }
    if constexpr (kQ == Q::k5_0 || kQ == Q::k5_1) {
      const uint8_t* field = rows.qh[r] + b * rows.stride[r];
      uint16_t lo, hi;
      std::memcpy(&lo, field, 2);
      std::memcpy(&hi, field + rows.qh_hi_offset[r], 2);
      const __mmask32 qh = static_cast<__mmask32>(lo | static_cast<uint32_t>(hi) << 16);
      v = _mm256_mask_add_epi8(v, qh, v, _mm256_set1_epi8(16));
    }
    // w = nib - 8 (Q4_0), q5 - 16 (Q5_0), nib or q5 (Q4_1, Q5_1); u = w + 128.
    constexpr int kBias = kQ == Q::k4_0 ? 120 : kQ == Q::k5_0 ? 112 : 128;
    return _mm256_add_epi8(v, _mm256_set1_epi8(static_cast<char>(kBias)));
  }
}

template <Q kQ>
void QUnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, QTileBlock* blocks) {
  constexpr bool kHasMin = kQ == Q::k4_1 || kQ == Q::k5_1;
  GemmRows rows;
  GemmRowPointers(w, row, row_end, &rows);
  const int64_t nblocks = w.cols / kQBlock;
  // Two blocks per row make the 16 dwords of one transpose.
  for (int64_t b = 0; b < nblocks; b += 2) {
    const bool pair = b + 1 < nblocks;
    alignas(64) uint8_t u[kGemmRows][64];
    for (int r = 0; r < kGemmRows; ++r) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(u[r]), QUnpackU<kQ>(rows, r, b));
      _mm256_store_si256(reinterpret_cast<__m256i*>(u[r] + 32),
                         pair ? QUnpackU<kQ>(rows, r, b + 1) : _mm256_setzero_si256());
      for (int i = 0; i < (pair ? 2 : 1); ++i) {
        QTileBlock& out = blocks[b + i];
        out.dw[r] =
            _cvtsh_ss(static_cast<uint16_t>(LoadI16(rows.scale[r] + (b + i) * rows.stride[r])));
        out.mw[r] =
            kHasMin
                ? _cvtsh_ss(static_cast<uint16_t>(LoadI16(rows.min[r] + (b + i) * rows.stride[r])))
                : 0.0f;
      }
    }
    alignas(64) uint8_t t[16][64];
    Transpose16x16Dwords(u[0], 64, t[0]);
    std::memcpy(blocks[b].u, t[0], sizeof blocks[b].u);
    if (pair) std::memcpy(blocks[b + 1].u, t[8], sizeof blocks[b + 1].u);
  }
}

template <Q kQ>
void QGemmTile(const MatmulArgs& a, const QTileBlock* blocks, int64_t nblocks, const int64_t* ids,
               __m512* y) {
  constexpr bool kHasMin = kQ == Q::k4_1 || kQ == Q::k5_1;
  constexpr int kT8 = kGemmTokens;
  const int64_t k = a.w.cols;
  const int8_t* q[kT8];
  const float* d[kT8];
  const int32_t* sum[kT8];
  const float* s[kT8];
  for (int t = 0; t < kT8; ++t) {
    q[t] = a.xq.q + ids[t] * k;
    d[t] = a.xq.d + ids[t] * nblocks;
    sum[t] = a.xq.sum + ids[t] * nblocks;
    s[t] = a.xq.s + ids[t] * nblocks;
  }
  __m512 acc[kT8];
  __m512 accm[kT8];
  for (int t = 0; t < kT8; ++t) acc[t] = accm[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nblocks; ++b) {
    const QTileBlock& kb = blocks[b];
    __m512i isum[kT8];
    for (int t = 0; t < kT8; ++t) isum[t] = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {
      const __m512i wv = _mm512_load_si512(kb.u[g]);
      for (int t = 0; t < kT8; ++t) {
        isum[t] = _mm512_dpbusd_epi32(isum[t], wv, Broadcast4(q[t] + b * kQBlock + 4 * g));
      }
    }
    const __m512 dw = _mm512_load_ps(kb.dw);
    for (int t = 0; t < kT8; ++t) {
      const __m512i exact = _mm512_sub_epi32(isum[t], _mm512_set1_epi32(sum[t][b] * 128));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact),
                               _mm512_mul_ps(dw, _mm512_set1_ps(d[t][b])), acc[t]);
    }
    if constexpr (kHasMin) {
      const __m512 mw = _mm512_load_ps(kb.mw);
      for (int t = 0; t < kT8; ++t) accm[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(s[t][b]), accm[t]);
    }
  }
  for (int t = 0; t < kT8; ++t) y[t] = kHasMin ? _mm512_add_ps(acc[t], accm[t]) : acc[t];
}

template <Q kQ>
struct QGemmFormat {
  using Block = QTileBlock;
  static constexpr int64_t kElems = kQBlock;
  static int64_t TokenBytes(int64_t k) { return k + k / kQBlock * 12; }
  static void UnpackTile(const MatmulWeight& w, int64_t row, int64_t row_end, Block* blocks) {
    QUnpackTile<kQ>(w, row, row_end, blocks);
  }
  static void Tile(const MatmulArgs& a, const Block* blocks, int64_t nblocks, const int64_t* ids,
                   __m512* y) {
    QGemmTile<kQ>(a, blocks, nblocks, ids, y);
  }
};

void QuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  if (a.tokens >= kQuantGemmMinTokens) {
    switch (a.w.type) {
      case WeightType::kQ8_0:
        return VnniGemm<QGemmFormat<Q::k8_0>>(a, row_begin, row_end);
      case WeightType::kQ4_0:
        return VnniGemm<QGemmFormat<Q::k4_0>>(a, row_begin, row_end);
      case WeightType::kQ4_1:
        return VnniGemm<QGemmFormat<Q::k4_1>>(a, row_begin, row_end);
      case WeightType::kQ5_0:
        return VnniGemm<QGemmFormat<Q::k5_0>>(a, row_begin, row_end);
      case WeightType::kQ5_1:
        return VnniGemm<QGemmFormat<Q::k5_1>>(a, row_begin, row_end);
      case WeightType::kIQ4_NL:
        return VnniGemm<QGemmFormat<Q::kIQ4NL>>(a, row_begin, row_end);
      default:
        break;
    }
  }
  WalkQuantRowsByType<Kernel>(a, row_begin, row_end);
}

void Quantize(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum, float* s) {
  const __m512i lo_limit = _mm512_set1_epi32(-128);
  const __m512i hi_limit = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kQBlock);
    const __m512 v1 = _mm512_loadu_ps(x + b * kQBlock + 16);
    const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float scale = 0.0f;
    int32_t total = 0;
    if (m >= 0x1p-100f) {
      scale = m / 127.0f;
      const __m512 inv = _mm512_set1_ps(1.0f / scale);
      constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      // NaN converts to INT_MIN and clamps to -128, as in the scalar code.
      const __m512i r0 = _mm512_max_epi32(
          _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, inv), kRound)),
                           hi_limit),
          lo_limit);
      const __m512i r1 = _mm512_max_epi32(
          _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, inv), kRound)),
                           hi_limit),
          lo_limit);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock), _mm512_cvtepi32_epi8(r0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock + 16), _mm512_cvtepi32_epi8(r1));
      total = _mm512_reduce_add_epi32(_mm512_add_epi32(r0, r1));
    } else {
      std::memset(q + b * kQBlock, 0, kQBlock);
    }
    d[b] = scale;
    sum[b] = total;
    s[b] = scale * static_cast<float>(total);
  }
}

}  // namespace

const IsaKernels& Avx512Kernels() {
  static constexpr IsaKernels kTable{Quantize,        QuantRows, Avx2QuantizeK, Avx512KQuantRows,
                                     Avx512FloatRows, nullptr,   nullptr,       Avx512PackFloat};
  return kTable;
}

}  // namespace relayout::kernels::matmul_internal

#else  // not x86-64

namespace relayout::kernels::matmul_internal {
const IsaKernels& Avx512Kernels() {
  static constexpr IsaKernels kNone{};
  return kNone;
}
}  // namespace relayout::kernels::matmul_internal

#endif
