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
  int8_t* w;  // K values: int8 (Q8_0) or nibble - 8 (Q4_0) or nibble (Q4_1)
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
    const int offset = type == WeightType::kQ4_0 ? 8 : 0;
    for (int j = 0; j < kQBlock / 2; ++j) {
      w[j] = static_cast<int8_t>((payload[j] & 0x0f) - offset);
      w[j + kQBlock / 2] = static_cast<int8_t>((payload[j] >> 4) - offset);
    }
    if (type == WeightType::kQ4_1)
      out.mw[b] = HalfToFloat(LoadU16(tile.min[0] + b * tile.block_stride));
  }
}

void QuantRows(const MatmulArgs& a, int64_t row_begin, int64_t row_end) {
  const MatmulWeight& w = a.w;
  const int64_t k = w.cols;
  const int64_t blocks = k / kQBlock;
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
        if (w.type == WeightType::kQ4_1) accm = std::fma(row.mw[b], s[b], accm);
      }
      a.y[t * w.rows + n] = w.type == WeightType::kQ4_1 ? acc + accm : acc;
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
  static constexpr IsaKernels kTable{Quantize, QuantRows, FloatRows, nullptr, nullptr};
  return kTable;
}

}  // namespace relayout::kernels::matmul_internal
