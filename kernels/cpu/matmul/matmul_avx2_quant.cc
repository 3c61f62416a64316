// AVX2 kernels for quantized weights of 32-element blocks (Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, IQ4_NL) against activations
// quantized to Q8 (the algorithm of matmul_internal.h, bit for bit).
//
// Built with -mavx2 -mfma -mf16c; called only after the dispatcher has seen
// those features. Everything but the table getter has internal linkage, and no
// header with inline functions or templates is included (matmul_internal.h
// explains why).
//
// One lane per row: a tile is 8 rows, and each block's integer dot products
// are reduced to one int32 per row (maddubs, madd, then a tree of hadds) so
// that the per-block float step acc = fma(isum, dw * d, acc) runs on 8 rows at
// once with no per-row horizontal sum. The q-rowgroup-g8 layout hands the
// kernel a group block as: 8 f16 scales (one 16-byte load, one vcvtph2ps),
// for Q4 the 8 rows' nibbles as four 32-byte loads of 2 rows each; GGUF rows
// need 8 scalar scale loads and 8 16-byte loads instead. Q5 and IQ4_NL take
// the Q4 path: Q5's fifth bits are spread from 16-bit masks to bytes and or-ed
// into the nibbles; IQ4_NL's nibbles index its table with one vpshufb, and the
// signed values then multiply through the |w|, sign(x, w) pair as Q8_0 does.
#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/matmul/matmul_quant_rows.h"
#include "kernels/quant_format.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

namespace relayout::kernels::matmul_internal {
namespace {

using Q = QuantKind;

// Tokens per register tile.
constexpr int kTokenTile = 2;

__m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
__m256i LoadU256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
int16_t LoadI16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// A q-rowgroup-g8 group: block b's scales, mins and payloads are contiguous.
struct GroupLoader {
  const uint8_t* base;
  int64_t stride;  // bytes per group block

  void Prefetch(int64_t b) const { PrefetchGroupBlock(base, stride, b); }
  int fields;  // f16 fields per row: 1, or 2 for Q4_1

  __m256 Scales(int64_t b) const { return _mm256_cvtph_ps(LoadU128(base + b * stride)); }
  __m256 Mins(int64_t b) const { return _mm256_cvtph_ps(LoadU128(base + b * stride + 16)); }
  // Q4: rows 2j (low lane) and 2j + 1 (high lane).
  __m256i Q4Pair(int64_t b, int j) const {
    return LoadU256(base + b * stride + 16 * fields + 32 * j);
  }
  __m256i Q8Row(int64_t b, int r) const { return LoadU256(base + b * stride + 16 + 32 * r); }
  // Q5: the 16-bit fifth-bit masks of rows 2j (low half) and 2j + 1, for the
  // low nibbles (hi = 0: the qh field before last) or the high ones.
  uint32_t QhPair(int64_t b, int j, int hi) const {
    uint32_t v;
    std::memcpy(&v, base + b * stride + 16 * (fields - 2 + hi) + 4 * j, sizeof v);
    return v;
  }
};

// Any 8 rows with a common block stride (GGUF rows, other group sizes, tails).
struct TileLoader {
  const QuantTile* t;

  void Prefetch(int64_t b) const { PrefetchTileBlock(*t, b); }

  static __m256 Gather(const uint8_t* const* p, int64_t off) {
    return _mm256_cvtph_ps(_mm_setr_epi16(
        LoadI16(p[0] + off), LoadI16(p[1] + off), LoadI16(p[2] + off), LoadI16(p[3] + off),
        LoadI16(p[4] + off), LoadI16(p[5] + off), LoadI16(p[6] + off), LoadI16(p[7] + off)));
  }
  __m256 Scales(int64_t b) const { return Gather(t->scale, b * t->block_stride); }
  __m256 Mins(int64_t b) const { return Gather(t->min, b * t->block_stride); }
  __m256i Q4Pair(int64_t b, int j) const {
    const int64_t off = b * t->block_stride;
    return _mm256_set_m128i(LoadU128(t->payload[2 * j + 1] + off),
                            LoadU128(t->payload[2 * j] + off));
  }
  __m256i Q8Row(int64_t b, int r) const { return LoadU256(t->payload[r] + b * t->block_stride); }
  uint32_t QhPair(int64_t b, int j, int hi) const {
    const int64_t off = b * t->block_stride + hi * t->qh_hi_offset;
    return static_cast<uint16_t>(LoadI16(t->qh[2 * j] + off)) |
           static_cast<uint32_t>(static_cast<uint16_t>(LoadI16(t->qh[2 * j + 1] + off))) << 16;
  }
};

// Bit i of `bits` -> byte i of the result: 0x10 where set, else 0.
__m256i FifthBits(uint32_t bits) {
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                          _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                             0x0202020202020202, 0x0303030303030303));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select),
                          _mm256_set1_epi8(0x10));
}

// 8 vectors of 8 int32 partial sums, one row each -> one vector of 8 row sums.
__m256i ReduceRows8(const __m256i* v) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                          _mm256_permute2x128_si256(a, b, 0x31));
}

// y[t0 .. t0 + TT) x rows [row, row + rows) of one 8-row tile.
template <Q kQ, int TT, class Loader>
void Micro(const Loader& ld, const MatmulArgs& a, int64_t t0, int64_t row, int rows) {
  const int64_t k = a.w.cols;
  const int64_t blocks = k / kQBlock;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  // The Q4 reduction leaves row perm[i] in lane i; scales follow it.
  const __m256i perm = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const int8_t* q[TT];
  const float* d[TT];
  const int32_t* sum[TT];
  const float* s[TT];
  __m256 acc[TT];
  __m256 accm[TT];
  for (int t = 0; t < TT; ++t) {
    q[t] = a.xq.q + (t0 + t) * k;
    d[t] = a.xq.d + (t0 + t) * blocks;
    sum[t] = a.xq.sum + (t0 + t) * blocks;
    s[t] = a.xq.s + (t0 + t) * blocks;
    acc[t] = _mm256_setzero_ps();
    accm[t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    ld.Prefetch(b);
    __m256 dw = ld.Scales(b);
    __m256 mw = _mm256_setzero_ps();
    if constexpr (kQ != Q::k8_0) dw = _mm256_permutevar8x32_ps(dw, perm);
    if constexpr (QuantHasMin(kQ)) mw = _mm256_permutevar8x32_ps(ld.Mins(b), perm);
    __m256i isum[TT];
    if constexpr (kQ == Q::k8_0) {
      __m256i w[8];
      for (int r = 0; r < 8; ++r) w[r] = ld.Q8Row(b, r);
      for (int t = 0; t < TT; ++t) {
        const __m256i x = LoadU256(q[t] + b * kQBlock);
        __m256i dot[8];
        // maddubs wants one unsigned operand: |w| and x carrying w's sign.
        for (int r = 0; r < 8; ++r) {
          dot[r] = _mm256_madd_epi16(
              _mm256_maddubs_epi16(_mm256_abs_epi8(w[r]), _mm256_sign_epi8(x, w[r])), ones);
        }
        isum[t] = ReduceRows8(dot);
      }
    } else {
      __m256i lo[4], hi[4];
      for (int j = 0; j < 4; ++j) {
        const __m256i v = ld.Q4Pair(b, j);
        lo[j] = _mm256_and_si256(v, m4);
        hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if constexpr (QuantHasHighBit(kQ)) {
          lo[j] = _mm256_or_si256(lo[j], FifthBits(ld.QhPair(b, j, 0)));
          hi[j] = _mm256_or_si256(hi[j], FifthBits(ld.QhPair(b, j, 1)));
        }
        if constexpr (kQ == Q::kIQ4NL) {
          const __m256i table = _mm256_broadcastsi128_si256(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4_NLValues)));
          lo[j] = _mm256_shuffle_epi8(table, lo[j]);
          hi[j] = _mm256_shuffle_epi8(table, hi[j]);
        }
      }
      for (int t = 0; t < TT; ++t) {
        const __m256i xl = _mm256_broadcastsi128_si256(LoadU128(q[t] + b * kQBlock));
        const __m256i xh = _mm256_broadcastsi128_si256(LoadU128(q[t] + b * kQBlock + 16));
        __m256i dot[4];
        for (int j = 0; j < 4; ++j) {
          if constexpr (kQ == Q::kIQ4NL) {
            // Pair sums reach 2 * 127 * 127: widen each half before adding.
            dot[j] = _mm256_add_epi32(
                _mm256_madd_epi16(
                    _mm256_maddubs_epi16(_mm256_abs_epi8(lo[j]), _mm256_sign_epi8(xl, lo[j])),
                    ones),
                _mm256_madd_epi16(
                    _mm256_maddubs_epi16(_mm256_abs_epi8(hi[j]), _mm256_sign_epi8(xh, hi[j])),
                    ones));
          } else {
            dot[j] = _mm256_madd_epi16(
                _mm256_add_epi16(_mm256_maddubs_epi16(lo[j], xl), _mm256_maddubs_epi16(hi[j], xh)),
                ones);
          }
        }
        isum[t] =
            _mm256_hadd_epi32(_mm256_hadd_epi32(dot[0], dot[1]), _mm256_hadd_epi32(dot[2], dot[3]));
        if constexpr (kQ == Q::k4_0 || kQ == Q::k5_0) {
          const int32_t offset = kQ == Q::k4_0 ? 8 : 16;
          isum[t] = _mm256_sub_epi32(isum[t], _mm256_set1_epi32(offset * sum[t][b]));
        }
      }
    }
    for (int t = 0; t < TT; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]),
                               _mm256_mul_ps(dw, _mm256_set1_ps(d[t][b])), acc[t]);
      if constexpr (QuantHasMin(kQ)) {
        accm[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(s[t][b]), accm[t]);
      }
    }
  }
  const __m256i unperm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int t = 0; t < TT; ++t) {
    __m256 v = acc[t];
    if constexpr (QuantHasMin(kQ)) v = _mm256_add_ps(v, accm[t]);
    if constexpr (kQ != Q::k8_0) v = _mm256_permutevar8x32_ps(v, unperm);
    float* y = a.y + (t0 + t) * a.w.rows + row;
    if (rows == 8) {
      _mm256_storeu_ps(y, v);
    } else {
      float out[8];
      _mm256_storeu_ps(out, v);
      for (int r = 0; r < rows; ++r) y[r] = out[r];
    }
  }
}

template <Q kQ, class Loader>
void Tokens(const Loader& ld, const MatmulArgs& a, int64_t t0, int64_t t1, int64_t row, int rows) {
  int64_t t = t0;
  for (; t + kTokenTile <= t1; t += kTokenTile) Micro<kQ, kTokenTile>(ld, a, t, row, rows);
  for (; t < t1; ++t) Micro<kQ, 1>(ld, a, t, row, rows);
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

void QuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  WalkQuantRowsByType<Kernel>(a, row_begin, row_end);
}

float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

void Quantize(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum, float* s) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + b * kQBlock + 8 * i);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
    }
    const float m = HorizontalMax(amax);
    __m256i packed = _mm256_setzero_si256();
    float scale = 0.0f;
    if (m >= 0x1p-100f) {
      scale = m / 127.0f;
      const __m256 inv = _mm256_set1_ps(1.0f / scale);
      __m256i r[4];
      for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], inv),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      // The packs interleave 128-bit lanes; `order` restores element order.
      packed = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3])),
          order);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQBlock), packed);
    const __m256i pairs =
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), packed), _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    const int32_t total = _mm_cvtsi128_si32(t);
    d[b] = scale;
    sum[b] = total;
    s[b] = scale * static_cast<float>(total);
  }
}

}  // namespace

const IsaKernels& Avx2Kernels() {
  static constexpr IsaKernels kTable{Quantize,      QuantRows, Avx2QuantizeK, Avx2KQuantRows,
                                     Avx2FloatRows, nullptr,   nullptr};
  return kTable;
}

}  // namespace relayout::kernels::matmul_internal

#else  // not x86-64

namespace relayout::kernels::matmul_internal {
const IsaKernels& Avx2Kernels() {
  static constexpr IsaKernels kNone{};
  return kNone;
}
}  // namespace relayout::kernels::matmul_internal

#endif
