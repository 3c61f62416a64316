// Portable kernels: the fallback on CPUs without AVX2, and for quantized
// weights the executable statement of the algorithm in matmul_internal.h that
// the SIMD kernels must reproduce bit for bit (the tests compare them).
//
// Written for clarity, not speed: std::fma spells out the one rounding per
// step that the SIMD kernels' fused multiply-adds perform, so the compiler
// cannot contract or split differently here.
#include <cmath>
#include <cstring>

#include "kernels/cpu/matmul/matmul_internal.h"
#include "kernels/cpu/reference/dequant.h"
#include "kernels/quant_format.h"

namespace relayout::kernels::matmul_internal {
namespace {

// Blocks whose largest |x| is below this quantize to zero: 1 / (amax / 127)
// would overflow near the bottom of the float range.
constexpr float kTinyBlock = 0x1p-100f;

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float HalfToFloat(uint16_t h) { return reference::F16ToF32(h); }

int8_t RoundToInt8(float v) {
  const float r = std::nearbyint(v);  // the default rounding mode: nearest even
  if (r >= -127.0f && r <= 127.0f) return static_cast<int8_t>(r);
  return r > 0 ? 127 : -128;  // out of range, or NaN (which compares false)
}

void Quantize(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum, float* s) {
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    int32_t total = 0;
    float scale = 0.0f;
    if (amax >= kTinyBlock) {
      scale = amax / 127.0f;
      const float inv = 1.0f / scale;
      for (int j = 0; j < kQBlock; ++j) {
        q[b * kQBlock + j] = RoundToInt8(xb[j] * inv);
        total += q[b * kQBlock + j];
      }
    } else {
      std::memset(q + b * kQBlock, 0, kQBlock);
    }
    d[b] = scale;
    sum[b] = total;
    s[b] = scale * static_cast<float>(total);
  }
}

// One weight row unpacked once and dotted with every token.
struct UnpackedRow {
  int8_t* w;  // K values w_j of step 2 (matmul_internal.h)
  float* dw;  // K / 32 scales
  float* mw;  // K / 32 mins (Q4_1)
};

void UnpackRow(WeightType type, const QuantTile& tile, int64_t blocks, const UnpackedRow& out) {
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* payload = tile.payload[0] + b * tile.block_stride;
    out.dw[b] = HalfToFloat(LoadU16(tile.scale[0] + b * tile.block_stride));
    int8_t* w = out.w + b * kQBlock;
    if (type == WeightType::kQ8_0) {
      std::memcpy(w, payload, kQBlock);
      continue;
    }
    // Q5: bit j of the 32 fifth bits belongs to element j.
    uint32_t qh = 0;
    if (type == WeightType::kQ5_0 || type == WeightType::kQ5_1) {
      const uint8_t* field = tile.qh[0] + b * tile.block_stride;
      qh = LoadU16(field) | static_cast<uint32_t>(LoadU16(field + tile.qh_hi_offset)) << 16;
    }
    const int offset = type == WeightType::kQ4_0 ? 8 : type == WeightType::kQ5_0 ? 16 : 0;
    for (int j = 0; j < kQBlock / 2; ++j) {
      int lo = (payload[j] & 0x0f) | ((qh >> j) & 1) << 4;
      int hi = (payload[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
      if (type == WeightType::kIQ4_NL) {
        lo = kIQ4_NLValues[lo];
        hi = kIQ4_NLValues[hi];
      }
      w[j] = static_cast<int8_t>(lo - offset);
      w[j + kQBlock / 2] = static_cast<int8_t>(hi - offset);
    }
    if (type == WeightType::kQ4_1 || type == WeightType::kQ5_1)
      out.mw[b] = HalfToFloat(LoadU16(tile.min[0] + b * tile.block_stride));
  }
}

void QuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const MatmulWeight& w = a.w;
  const int64_t k = w.cols;
  const int64_t blocks = k / kQBlock;
  const bool has_min = w.type == WeightType::kQ4_1 || w.type == WeightType::kQ5_1;
  // One row's unpacked weights: K int8 then 2 * K / 32 floats.
  float* buffer = ThreadPanel(k / 4 + 1 + 2 * blocks);
  const UnpackedRow row{reinterpret_cast<int8_t*>(buffer), buffer + k / 4 + 1,
                        buffer + k / 4 + 1 + blocks};
  for (int64_t n = row_begin; n < row_end; ++n) {
    QuantTile tile;
    MakeQuantTile(w, n, row_end, 1, &tile);
    UnpackRow(w.type, tile, blocks, row);
    for (int64_t t = 0; t < a.tokens; ++t) {
      const int8_t* q = a.xq.q + t * k;
      const float* d = a.xq.d + t * blocks;
      const float* s = a.xq.s + t * blocks;
      float acc = 0.0f;
      float accm = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t isum = 0;
        for (int j = 0; j < kQBlock; ++j) isum += row.w[b * kQBlock + j] * q[b * kQBlock + j];
        acc = std::fma(static_cast<float>(isum), row.dw[b] * d[b], acc);
        if (has_min) accm = std::fma(row.mw[b], s[b], accm);
      }
      a.y[t * w.rows + n] = has_min ? acc + accm : acc;
    }
  }
}

void QuantizeK(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsum) {
  for (int64_t b = 0; b < k / kKBlock; ++b) {
    const float* xb = x + b * kKBlock;
    int8_t* qb = q + b * kKBlock;
    float amax = 0.0f;
    for (int j = 0; j < kKBlock; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    float scale = 0.0f;
    if (amax >= kTinyBlock) {
      scale = amax / 127.0f;
      const float inv = 1.0f / scale;
      for (int j = 0; j < kKBlock; ++j) qb[j] = RoundToInt8(xb[j] * inv);
    } else {
      std::memset(qb, 0, kKBlock);
    }
    d[b] = scale;
    for (int s = 0; s < kKBlock / kKSub; ++s) {
      int sum = 0;
      for (int j = 0; j < kKSub; ++j) sum += qb[s * kKSub + j];
      bsum[b * (kKBlock / kKSub) + s] = static_cast<int16_t>(sum);
    }
  }
}

// One K-quant super-block unpacked as in step 2K.
struct KUnpacked {
  uint8_t u[kKBlock];
  int32_t sc[kKBlock / kKSub];
  int32_t m[kKBlock / kKSub];
  float dw;
  float mw;  // dmin; unused by the types without one
};

// The 2-bit field `shift` of qs[32 * half + l] and its high bit from hmask
// (Q3_K) for element 128 * half + 32 * (shift / 2) + l: the order of Q2_K and
// Q3_K, whose 64 qs bytes hold four 2-bit planes per 128 elements.
void UnpackQ2Q3(const uint8_t* qs, const uint8_t* hmask, uint8_t* u) {
  for (int half = 0; half < 2; ++half) {
    for (int plane = 0; plane < 4; ++plane) {
      const int c = 4 * half + plane;  // 32-element chunk
      for (int l = 0; l < 32; ++l) {
        int v = (qs[32 * half + l] >> (2 * plane)) & 3;
        if (hmask != nullptr) v |= ((hmask[l] >> c) & 1) << 2;
        u[32 * c + l] = static_cast<uint8_t>(v);
      }
    }
  }
}

void UnpackK(WeightType type, const uint8_t* p, KUnpacked* k) {
  switch (type) {
    case WeightType::kQ2_K: {
      BlockQ2_K b;
      std::memcpy(&b, p, sizeof b);
      UnpackQ2Q3(b.qs, nullptr, k->u);
      for (int s = 0; s < 16; ++s) {
        k->sc[s] = b.scales[s] & 0xf;
        k->m[s] = b.scales[s] >> 4;
      }
      k->dw = HalfToFloat(b.d);
      k->mw = HalfToFloat(b.dmin);
      return;
    }
    case WeightType::kQ3_K: {
      BlockQ3_K b;
      std::memcpy(&b, p, sizeof b);
      UnpackQ2Q3(b.qs, b.hmask, k->u);
      // 16 six-bit scales: low 4 bits in scales[0..7] (two per byte: s and
      // s + 8), high 2 bits in scales[8..11] (four per byte: s, s + 4, ...).
      for (int s = 0; s < 16; ++s) {
        const int low = (b.scales[s % 8] >> (4 * (s / 8))) & 0xf;
        const int high = (b.scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        k->sc[s] = (low | high << 4) - 32;
        k->m[s] = 4 * k->sc[s];
      }
      k->dw = HalfToFloat(b.d);
      k->mw = 0.0f;
      return;
    }
    case WeightType::kQ4_K:
    case WeightType::kQ5_K: {
      const bool q5 = type == WeightType::kQ5_K;
      BlockQ5_K b5;
      BlockQ4_K b4;
      const uint8_t* scales;
      const uint8_t* qs;
      if (q5) {
        std::memcpy(&b5, p, sizeof b5);
        scales = b5.scales;
        qs = b5.qs;
        k->dw = HalfToFloat(b5.d);
        k->mw = HalfToFloat(b5.dmin);
      } else {
        std::memcpy(&b4, p, sizeof b4);
        scales = b4.scales;
        qs = b4.qs;
        k->dw = HalfToFloat(b4.d);
        k->mw = HalfToFloat(b4.dmin);
      }
      // Chunk c of 32: the low (c even) or high nibbles of qs[32 * (c / 2) ..],
      // the fifth bit c of qh[l].
      for (int c = 0; c < 8; ++c) {
        for (int l = 0; l < 32; ++l) {
          int v = (qs[32 * (c / 2) + l] >> (4 * (c % 2))) & 0xf;
          if (q5) v |= ((b5.qh[l] >> c) & 1) << 4;
          k->u[32 * c + l] = static_cast<uint8_t>(v);
        }
        uint8_t sc, m;
        KQuantScaleMin(c, scales, &sc, &m);
        k->sc[2 * c] = k->sc[2 * c + 1] = sc;
        k->m[2 * c] = k->m[2 * c + 1] = m;
      }
      return;
    }
    case WeightType::kQ6_K: {
      BlockQ6_K b;
      std::memcpy(&b, p, sizeof b);
      // Per half of 128: chunk 4 * half + i takes the low (i < 2) or high
      // nibbles of ql[64 * half + 32 * (i % 2) + l] and bits 2i, 2i + 1 of
      // qh[32 * half + l].
      for (int half = 0; half < 2; ++half) {
        for (int i = 0; i < 4; ++i) {
          for (int l = 0; l < 32; ++l) {
            const int lo = (b.ql[64 * half + 32 * (i % 2) + l] >> (4 * (i / 2))) & 0xf;
            const int hi = (b.qh[32 * half + l] >> (2 * i)) & 3;
            k->u[128 * half + 32 * i + l] = static_cast<uint8_t>(lo | hi << 4);
          }
        }
      }
      for (int s = 0; s < 16; ++s) {
        k->sc[s] = b.scales[s];
        k->m[s] = 32 * b.scales[s];
      }
      k->dw = HalfToFloat(b.d);
      k->mw = 0.0f;
      return;
    }
    default:
      return;
  }
}

bool KHasMin(WeightType type) {
  return type == WeightType::kQ2_K || type == WeightType::kQ4_K || type == WeightType::kQ5_K;
}

void KQuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const MatmulWeight& w = a.w;
  const int64_t k = w.cols;
  const int64_t blocks = k / kKBlock;
  const bool has_min = KHasMin(w.type);
  constexpr int kSubs = kKBlock / kKSub;
  for (int64_t n = row_begin; n < row_end; ++n) {
    QuantTile tile;
    MakeQuantTile(w, n, row_end, 1, &tile);
    for (int64_t t = 0; t < a.tokens; ++t) {
      const int8_t* q = a.xk.q + t * k;
      const float* d = a.xk.d + t * blocks;
      const int16_t* bsum = a.xk.bsum + t * blocks * kSubs;
      float acc = 0.0f;
      float accm = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        KUnpacked kb;
        UnpackK(w.type, tile.payload[0] + b * tile.block_stride, &kb);
        int32_t isum = 0;
        int32_t msum = 0;
        for (int s = 0; s < kSubs; ++s) {
          int32_t dot = 0;
          for (int j = 0; j < kKSub; ++j) {
            dot += kb.u[s * kKSub + j] * q[b * kKBlock + s * kKSub + j];
          }
          isum += kb.sc[s] * dot;
          msum += kb.m[s] * bsum[b * kSubs + s];
        }
        if (has_min) {
          acc = std::fma(static_cast<float>(isum), kb.dw * d[b], acc);
          accm = std::fma(static_cast<float>(msum), kb.mw * d[b], accm);
        } else {
          acc = std::fma(static_cast<float>(isum - msum), kb.dw * d[b], acc);
        }
      }
      a.y[t * w.rows + n] = has_min ? acc - accm : acc;
    }
  }
}

// Float weights: each row decoded to float, then k ascending per token.
void FloatRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const MatmulWeight& w = a.w;
  float* row = ThreadPanel(w.cols);
  for (int64_t n = row_begin; n < row_end; ++n) {
    DecodeFloatRows(w, n, 1, row);
    for (int64_t t = 0; t < a.tokens; ++t) {
      const float* x = a.x + t * w.cols;
      double acc = 0.0;
      for (int64_t j = 0; j < w.cols; ++j) acc += static_cast<double>(row[j]) * x[j];
      a.y[t * w.rows + n] = acc;
    }
  }
}

}  // namespace

const IsaKernels& ScalarKernels() {
  static constexpr IsaKernels kTable{Quantize,  QuantRows, QuantizeK, KQuantRows,
                                     FloatRows, nullptr,   nullptr};
  return kTable;
}

}  // namespace relayout::kernels::matmul_internal
