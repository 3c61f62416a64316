// The Ops of paged_attention_tile.h written once over a vector-traits type,
// for the AVX2 and AVX-512 files that include it with their -m flags
// (paged_attention_avx2.cc, paged_attention_avx512.cc). A traits type V
// gives the register type and the handful of intrinsics the ops use:
//
//   V::kLanes                 floats per register (8, 16)
//   V::Reg                    the register type
//   Zero(), Set1(x), Load(p), Store(p, r), Add, Mul, Max, Fmadd(a, b, c),
//   Fnmadd(a, b, c)           c - a * b
//   Round(x)                  to nearest integer, as a float
//   Times2Pow(p, k)           p * 2^k for integral k in [-126, 127]
//   LoadF16(p)                kLanes halves widened to floats
//
// Register blocking follows the width: a score step covers 16 positions
// (16 / kLanes registers) for 4 / (16 / kLanes) heads, so both ISAs keep
// four accumulators live, as their hand-written versions did. Scores and
// AccumulatePv multiply then add (no FMA): the same rounding as the portable
// loops, so every ISA gives the same attention output for the same cache
// (greedy text then does not depend on the CPU it runs on).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cpu/attention/paged_attention_tile.h"

namespace relayout::kernels::attention_internal {
namespace {

template <typename V>
struct SimdOps {
  using Reg = typename V::Reg;
  static constexpr int kLanes = V::kLanes;
  static constexpr int kRegsPerStep = 16 / kLanes;        // registers per 16 positions
  static constexpr int kHeadsPerStep = 4 / kRegsPerStep;  // heads sharing a row of kt

  static void Scores(const float* q, int64_t stride, int64_t count, const float* kt, int64_t hd,
                     int64_t width, float* s) {
    for (int64_t j = 0; j < width; j += 16) {
      int64_t c = 0;
      for (; c + kHeadsPerStep <= count; c += kHeadsPerStep) {
        Reg acc[kHeadsPerStep][kRegsPerStep];
        for (auto& head : acc) {
          for (Reg& r : head) r = V::Zero();
        }
        const float* q0 = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          Reg k[kRegsPerStep];
          for (int i = 0; i < kRegsPerStep; ++i) k[i] = V::Load(kt + d * width + j + i * kLanes);
          for (int h = 0; h < kHeadsPerStep; ++h) {
            const Reg x = V::Set1(q0[h * stride + d]);
            for (int i = 0; i < kRegsPerStep; ++i) acc[h][i] = V::Add(V::Mul(x, k[i]), acc[h][i]);
          }
        }
        for (int h = 0; h < kHeadsPerStep; ++h) {
          for (int i = 0; i < kRegsPerStep; ++i) {
            V::Store(s + (c + h) * width + j + i * kLanes, acc[h][i]);
          }
        }
      }
      for (; c < count; ++c) {
        Reg acc[kRegsPerStep];
        for (Reg& r : acc) r = V::Zero();
        const float* qc = q + c * stride;
        for (int64_t d = 0; d < hd; ++d) {
          const Reg x = V::Set1(qc[d]);
          for (int i = 0; i < kRegsPerStep; ++i) {
            acc[i] = V::Add(V::Mul(x, V::Load(kt + d * width + j + i * kLanes)), acc[i]);
          }
        }
        for (int i = 0; i < kRegsPerStep; ++i) V::Store(s + c * width + j + i * kLanes, acc[i]);
      }
    }
  }

  // The accumulator stays in registers across the block's positions.
  static void AccumulatePv(const float* p, int64_t n, const float* v, int64_t hd, float* a) {
    int64_t d = 0;
    for (; d + 4 * kLanes <= hd; d += 4 * kLanes) {
      Reg acc[4];
      for (int i = 0; i < 4; ++i) acc[i] = V::Load(a + d + i * kLanes);
      for (int64_t j = 0; j < n; ++j) {
        const Reg w = V::Set1(p[j]);
        const float* vj = v + j * hd + d;
        for (int i = 0; i < 4; ++i) acc[i] = V::Add(V::Mul(w, V::Load(vj + i * kLanes)), acc[i]);
      }
      for (int i = 0; i < 4; ++i) V::Store(a + d + i * kLanes, acc[i]);
    }
    for (; d + kLanes <= hd; d += kLanes) {
      Reg acc = V::Load(a + d);
      for (int64_t j = 0; j < n; ++j) {
        acc = V::Add(V::Mul(V::Set1(p[j]), V::Load(v + j * hd + d)), acc);
      }
      V::Store(a + d, acc);
    }
    for (; d < hd; ++d) {
      for (int64_t j = 0; j < n; ++j) a[d] += p[j] * v[j * hd + d];
    }
  }

  static void Scale(float c, float* y, int64_t n) {
    const Reg cv = V::Set1(c);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) V::Store(y + i, V::Mul(cv, V::Load(y + i)));
    for (; i < n; ++i) y[i] *= c;
  }

  // exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 in
  // [-ln2/2, ln2/2], exp(r) by its Taylor polynomial to degree 6 (relative
  // error ~1e-7); inputs below -87 give 0, like expf's underflow.
  static Reg ExpReg(Reg x) {
    x = V::Max(x, V::Set1(-87.0f));
    const Reg k = V::Round(V::Mul(x, V::Set1(1.44269504f)));
    Reg r = V::Fnmadd(k, V::Set1(0.693145752f), x);
    r = V::Fnmadd(k, V::Set1(1.42860677e-6f), r);
    Reg p = V::Set1(1.0f / 720);
    p = V::Fmadd(p, r, V::Set1(1.0f / 120));
    p = V::Fmadd(p, r, V::Set1(1.0f / 24));
    p = V::Fmadd(p, r, V::Set1(1.0f / 6));
    p = V::Fmadd(p, r, V::Set1(0.5f));
    p = V::Fmadd(p, r, V::Set1(1.0f));
    p = V::Fmadd(p, r, V::Set1(1.0f));
    return V::Times2Pow(p, k);
  }

  static void Exp(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) V::Store(x + i, ExpReg(V::Load(x + i)));
    if (i < n) {
      alignas(64) float buf[kLanes] = {};
      std::memcpy(buf, x + i, sizeof(float) * static_cast<size_t>(n - i));
      V::Store(buf, ExpReg(V::Load(buf)));
      std::memcpy(x + i, buf, sizeof(float) * static_cast<size_t>(n - i));
    }
  }

  static void WidenF16(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) V::Store(dst + i, V::LoadF16(src + i));
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
  }
};

}  // namespace
}  // namespace relayout::kernels::attention_internal
