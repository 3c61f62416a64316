// Internal seam between the Matmul dispatcher (matmul.cc, built for the
// baseline ISA) and the kernels of each ISA (matmul_scalar.cc,
// matmul_avx2_*.cc, matmul_avx512_*.cc, each built with its own -m flags).
//
// Everything here is plain data and out-of-line functions defined in
// baseline-ISA files. On purpose: an inline function or template defined in a
// header and instantiated in an AVX-512 file is a weak symbol that the linker
// may pick for every caller, so the ISA files include no header that would
// make them emit one (only this one, matmul.h and the intrinsics headers).
//
// The quantized algorithm (the contract every ISA reproduces bit for bit):
//   1. Each token's x is quantized once per call to blocks of 32:
//        amax = max |x_j|; if amax < 2^-100 the block is d = 0, q = 0;
//        else d = amax / 127 (float), id = 1 / d, q_j = nearest-even(x_j * id)
//        as int8 (NaN and out-of-range values give -128 / 127: defined, not
//        meaningful); sum = sum_j q_j (int32); s = d * float(sum).
//   2. For each row n and token t, over blocks b ascending, with the weight
//      block's f16 scale dw (and Q4_1 min mw) converted to float:
//        isum = sum_j w_j * q_j exactly in int32, with w_j = int8 (Q8_0),
//               nib_j - 8 (Q4_0: computed as dot(nib, q) - 8 * sum), nib_j (Q4_1)
//        acc  = fma(float(isum), dw * d, acc)
//        accm = fma(mw, s, accm)                       (Q4_1 only)
//      y = acc (+ accm for Q4_1).
//        Q5_0: w_j = q5_j - 16 (dot(q5, q) - 16 * sum), Q5_1: w_j = q5_j with
//        mw as Q4_1, IQ4_NL: w_j = kIQ4_NLValues[nib_j].
//   |isum| <= 32 * 128 * 127 < 2^24, so float(isum) is exact and the SIMD
//   kernels, which keep one lane per row, give the same bits as the scalar
//   loop, in either layout.
//
// The K-quant algorithm (Q2_K .. Q6_K; super-blocks of 256 in sub-blocks s of
// 16 elements, 32-element sub-blocks counting as two with equal scales):
//   1K. Each token's x is quantized once per call to Q8_K: per super-block
//       amax, d, q_j as in step 1 but over 256 elements, and bsum_s = sum of
//       q over sub-block s (int16).
//   2K. Each weight super-block is unpacked to unsigned u_j (0..63), integer
//       sub-block scales sc_s and "min" terms m_s, and its f16 d, dmin:
//         Q2_K: u = q2, sc = scale nibble, m = min nibble,  x = d sc u - dmin m
//         Q3_K: u = q2 + 4 hbit, sc = scale6 - 32, m = 4 sc, x = d sc (u - 4)
//         Q4_K: u = q4, sc, m = the 6-bit pair,             x = d sc u - dmin m
//         Q5_K: u = q4 + 16 hbit, sc, m as Q4_K
//         Q6_K: u = q6, sc = int8 scale, m = 32 sc,         x = d sc (u - 32)
//       and for each row n, token t, super-block b:
//         isum = sum_s sc_s * sum_{j in s} u_j q_j      (int32, exact)
//         msum = sum_s m_s * bsum_s                      (int32, exact)
//       Types without dmin (Q3_K, Q6_K), where m_s is the offset folded into
//       the scale: acc = fma(float(isum - msum), d_w * d, acc); y = acc.
//       Types with dmin: acc = fma(float(isum), d_w * d, acc),
//       accm = fma(float(msum), dmin_w * d, accm); y = acc - accm.
//   |isum| <= 16 * 16 * 63 * 127 * 128 < 2^31. float(isum) rounds once to
//   nearest, the same on every ISA, so the SIMD kernels again match the
//   scalar loop bit for bit.
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul/matmul.h"

namespace relayout::kernels::matmul_internal {

inline constexpr int kQBlock = 32;
inline constexpr int kKBlock = 256;  // K-quant super-block
inline constexpr int kKSub = 16;     // K-quant sub-block of the Q8_K sums
// Rows of the fast quantized group-block kernels (q-rowgroup-g8).
inline constexpr int kQuantGroupRows = 8;
// Weight bytes the kernels prefetch ahead of the ones they read in a row
// group (a sequential stream): a decode step reads every weight once from
// DRAM, and without software prefetch the unpacking and the fetch take turns
// instead of overlapping (measured on Q6_K at one thread: 7 GB/s, where the
// read bandwidth alone is 13.5 GB/s and the L3-resident kernel 14.6).
inline constexpr int64_t kPrefetchAheadBytes = 6 << 10;
// Most rows in one tile of any kernel.
inline constexpr int kMaxTileRows = 16;
// The AVX-512 float GEMM (matmul_avx512_float.cc): from this many tokens
// F16 and BF16 weights take it, over x packed in groups of kFloatGemmTokens.
inline constexpr int64_t kFloatGemmMinTokens = 16;
inline constexpr int kFloatGemmTokens = 12;

// Activations quantized once per call, token-major (step 1 above).
struct Q8Activations {
  const int8_t* q = nullptr;     // [tokens][K]
  const float* d = nullptr;      // [tokens][K / 32]
  const int32_t* sum = nullptr;  // [tokens][K / 32]
  const float* s = nullptr;      // [tokens][K / 32]
};

// x rounded to a pair of bf16 (x ~= hi + lo, |x - hi - lo| <= 2^-16 |x|),
// packed as one uint32 per K-pair (element 2p in the low half), for
// vdpbf16ps. [tokens][ceil(K / 2)], the odd K's last pair padded with 0.
// Activations quantized to Q8_K, token-major (step 1K above).
struct Q8KActivations {
  const int8_t* q = nullptr;      // [tokens][K]
  const float* d = nullptr;       // [tokens][K / 256]
  const int16_t* bsum = nullptr;  // [tokens][K / 16]
};

struct Bf16PairActivations {
  const uint32_t* hi = nullptr;
  const uint32_t* lo = nullptr;
};

// x for the float GEMM, packed once per call: token group g (tokens
// kFloatGemmTokens * g onward) is [K][kFloatGemmTokens], element j of its
// token t at x + (g * K + j) * kFloatGemmTokens + t; tokens past the end are
// 0. A register tile then reads its tokens' x[j] from one 48-byte run
// instead of 12 rows K floats apart (which share L1 sets at K = 2048).
struct FloatPackedActivations {
  const float* x = nullptr;
};

struct MatmulArgs {
  MatmulWeight w;
  const float* x = nullptr;
  int64_t tokens = 0;
  float* y = nullptr;
  Q8Activations xq;
  Q8KActivations xk;
  Bf16PairActivations xb;
  FloatPackedActivations xp;
  // Tokens per cache block: the kernels run all row tiles of their range over
  // one block of tokens before the next, so the block's activations stay in
  // L2 while every weight tile is reused for all of them.
  int64_t token_block = 1;
  // Rows per weight panel: the kernels run all token blocks over one panel
  // of rows (sized to stay in L2) before the next, so that with many tokens
  // the weights come from L2, not from L3 or memory, once per token block.
  int64_t row_panel = 1;
};

// Computes y[t][n] for every token and n in [row_begin, row_end). row_begin
// is the first row of a row group (or of the tail rows); row_end is one too,
// or N. Writes exactly those y elements.
using RowsKernel = void (*)(const MatmulArgs& args, int64_t row_begin, int64_t row_end);
// Quantizes one token row of k floats (k % 32 == 0) as in step 1.
using QuantizeFn = void (*)(const float* x, int64_t k, int8_t* q, float* d, int32_t* sum, float* s);
// Quantizes one token row of k floats (k % 256 == 0) as in step 1K.
using QuantizeKFn = void (*)(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsum);
// Fills one token's hi/lo bf16 pairs (Bf16PairActivations).
using SplitBf16Fn = void (*)(const float* x, int64_t k, uint32_t* hi, uint32_t* lo);
// Packs `tokens` (<= kFloatGemmTokens) rows of k floats into one group of
// FloatPackedActivations, zero past `tokens`.
using PackFloatFn = void (*)(const float* x, int64_t k, int tokens, float* out);

// One ISA's kernels. Null entries mean "not available here".
struct IsaKernels {
  QuantizeFn quantize = nullptr;
  RowsKernel quant = nullptr;  // 32-element block types in any supported layout
  QuantizeKFn quantize_k = nullptr;
  RowsKernel kquant = nullptr;  // K-quants in any supported layout
  RowsKernel flt = nullptr;     // F32, F16, BF16 in any supported layout
  // BF16 K-pair with vdpbf16ps; needs args.xb. Null without AVX-512 BF16.
  RowsKernel bf16_kpair = nullptr;
  SplitBf16Fn split_bf16 = nullptr;
  // Packs x for flt's GEMM (args.xp); null where flt has none. flt reads
  // args.xp when it is set and the GEMM takes the weight.
  PackFloatFn pack_float = nullptr;
};

// Each returns the ISA's table; the x86 ones return a table of nulls when not
// built for x86-64. REQUIRES before use: the CPU has the ISA.
const IsaKernels& ScalarKernels();
const IsaKernels& Avx2Kernels();
const IsaKernels& Avx512Kernels();
// Only bf16_kpair and split_bf16 are set.
const IsaKernels& Avx512Bf16Kernels();

// The float kernels of the ISA files, gathered into the tables above by the
// files that define those (only on x86-64).
void Avx2FloatRows(const MatmulArgs& args, int64_t row_begin, int64_t row_end);
void Avx512FloatRows(const MatmulArgs& args, int64_t row_begin, int64_t row_end);
void Avx512PackFloat(const float* x, int64_t k, int tokens, float* out);
// The K-quant kernels and Q8_K quantizer of matmul_avx2_kquant.cc.
void Avx2QuantizeK(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsum);
void Avx2KQuantRows(const MatmulArgs& args, int64_t row_begin, int64_t row_end);
// The same K-quant kernel with 512-bit dots (matmul_avx512_kquant.cc).
void Avx512KQuantRows(const MatmulArgs& args, int64_t row_begin, int64_t row_end);

// ---- Row tiles: where a tile's rows live, computed by baseline code. ----

// Up to kMaxTileRows rows of a quantized weight, all with the same distance
// between consecutive blocks of a row (one group of q-rowgroup-g<G>, or rows
// in GGUF order). Row r's block b has its f16 scale at scale[r] + b * stride,
// the Q4_1 min at min[r] + b * stride, the payload at payload[r] + b * stride.
// Entries past `rows` repeat row 0, so kernels may compute and discard them.
struct QuantTile {
  const uint8_t* scale[kMaxTileRows];
  const uint8_t* min[kMaxTileRows];
  const uint8_t* payload[kMaxTileRows];
  // Q5_0/Q5_1: the low and high 16 bits of a row's fifth bits (qh) are the
  // block's last two 2-byte fields, at qh[r] and qh[r] + qh_hi_offset.
  const uint8_t* qh[kMaxTileRows];
  int64_t qh_hi_offset = 0;
  int64_t block_stride = 0;
  int rows = 0;
  // GGUF rows are short runs (K/32 blocks each) that the hardware prefetcher
  // cannot lock onto, so the kernels prefetch the next tile's bytes while
  // reading this one: `prefetch_bytes` per block from address prefetch_from
  // (0 for interleaved groups, which are one sequential stream already).
  uintptr_t prefetch_from = 0;
  int64_t prefetch_bytes = 0;
};

// The tile of quantized weight rows starting at `row`, at most `max_rows` and
// never crossing a group boundary or row_end. Returns its row count.
int MakeQuantTile(const MatmulWeight& w, int64_t row, int64_t row_end, int max_rows,
                  QuantTile* tile);

// True when rows [row, row + 8) are one full group of q-rowgroup-g8, which
// the group-block kernels read directly from GroupBlockBase.
bool IsQuantGroup8(const MatmulWeight& w, int64_t row);
const uint8_t* QuantGroupBase(const MatmulWeight& w, int64_t row);

// Up to kMaxTileRows rows of a float weight whose elements come in chunks of
// `lanes` contiguous elements: chunk c (c < chunks) of row r at main[r] + c *
// chunk_stride bytes, then the last K % lanes elements contiguous at tail[r].
// True for row-major and for rowgroup-g<G>k<lanes>; other layouts are decoded
// to a float panel first (DecodeFloatRows).
struct FloatTile {
  const uint8_t* main[kMaxTileRows];
  const uint8_t* tail[kMaxTileRows];
  int64_t chunk_stride = 0;
  int64_t chunks = 0;
  int rem = 0;
  int rows = 0;
};

// True when the weight's layout can be read as FloatTiles of `lanes`.
bool FloatTileable(const MatmulWeight& w, int lanes);
// The tile starting at `row` (<= max_rows, within one group and row_end).
int MakeFloatTile(const MatmulWeight& w, int lanes, int64_t row, int64_t row_end, int max_rows,
                  FloatTile* tile);
// Writes rows [row, row + rows) as row-major float32 into panel (rows * K).
void DecodeFloatRows(const MatmulWeight& w, int64_t row, int rows, float* panel);
// A per-thread buffer of at least `floats` floats, reused across calls.
float* ThreadPanel(int64_t floats);

// True when `row` lies in a full row group of an interleaved layout (not in
// the tail rows, and the layout differs from row-major).
bool InFullGroup(const MatmulWeight& w, int64_t row);
// Rows per unit of work split across threads: G for layouts with row groups
// (their ranges then start on group boundaries), kMaxTileRows otherwise.
int64_t SplitUnitRows(const MatmulWeight& w);
// Rows in the group (or tail) that `row` belongs to, from `row` to its end.
int64_t RowsLeftInGroup(const MatmulWeight& w, int64_t row);

}  // namespace relayout::kernels::matmul_internal
