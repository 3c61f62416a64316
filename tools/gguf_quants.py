#!/usr/bin/env python3
"""Quantizers for GGUF's block types, vectorized over whole tensors.

The gguf package dequantizes every type but quantizes only the 32-element
ones; this module writes the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and
IQ4_NL in GGUF's exact byte layout (kernels/quant_format.h), and wraps the
gguf package for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, whose quantizers follow
ggml's reference ones bit for bit (as llama-quantize uses them without an
importance matrix). It also holds llama-quantize's rules for which type each
tensor of a file mix (Q4_K_M, ...) gets.

Every quantizer works on all blocks of a chunk at once: a loop in Python runs
over the few candidate scales of a search, never over blocks. The searches
are ggml's (make_qkx2_quants, make_qx_quants, quantize_row_iq4_nl_impl):
per sub-block, a small grid of scales around range / levels, each refitted by
weighted least squares, keeping the one of least weighted squared error; then
the sub-block scales (and mins) are themselves quantized to 4 or 6 bits under
their own maximum, and the values are quantized again under the scales the
file will hold. The results are not bit-identical to llama-quantize's: Q2_K
and Q3_K here use squared error and a grid where ggml uses absolute error and
a coordinate descent, Q5_K searches a wider grid and IQ4_NL one more scale.
Their RMSE on normal values is within about 1% of llama-quantize's (lower
for Q2_K and Q5_K), and values that are already of the type come back (nearly)
unchanged; tools/gguf_quants_test.py checks both.

Usage as a module: quantize(values, GGMLQuantizationType.Q4_K) -> bytes as
gguf.quants.quantize returns them; mix_types(...) -> the type of each tensor.
"""

import concurrent.futures
import re

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

QK_K = 256  # elements per K-quant super-block
CHUNK_ELEMS = 1 << 16  # elements quantized at once: the temporaries stay in cache
GROUP_MAX_EPS = 1e-15  # ggml's bound below which a sub-block counts as all zero

# IQ4_NL's 16 levels (ggml's kvalues_iq4nl), non-uniform like a normal's quantiles.
IQ4_NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                         np.float32)


def _rsum(a):
    """Sum of each row of a 2-D float32 array, as float64. A product with a
    vector of ones runs several times faster than a.sum(axis=1) on short rows."""
    return (a @ np.ones(a.shape[1], np.float32)).astype(np.float64)


def _f16(v):
    """v rounded to f16 (the file's scale type) and back to float32."""
    return v.astype(np.float16).astype(np.float32)


def _f16_bytes(v):
    return v.astype("<f2").view(np.uint8).reshape(-1, 2)


def _safe_inverse(v):
    return np.divide(1, v, out=np.zeros_like(v), where=v != 0)


def _bits(planes):
    """(n, k, m) fields of 8 / k bits -> (n, m) bytes holding field b at bit b * 8 / k."""
    k = planes.shape[1]
    out = np.zeros((planes.shape[0], planes.shape[2]), np.uint8)
    for b in range(k):
        out |= planes[:, b] << np.uint8(b * (8 // k))
    return out


# ---------------------------------------------------------------------------
# Sub-block fits

def _fit_scale_min(x, w, nmax, rmin, rdelta, nstep):
    """Per row of x: scale s >= 0 and min m >= 0 with x ~ s * l - m, l in 0..nmax.

    ggml's make_qkx2_quants: after the plain range fit (lo = min(x, 0), s =
    (hi - lo) / nmax), candidates l = round((x - offset) * (nmax + rmin +
    rdelta * i) / (hi - lo)) for i in 0..nstep, offset being the best fit's so
    far, each with the (s, m) of least w-weighted squared error for those l
    (m kept >= 0, as the format needs); the best candidate wins. The error of
    a candidate comes from its weighted sums without a second pass over x.
    """
    lo = np.minimum(x.min(axis=1), 0)
    hi = x.max(axis=1)
    span = (hi - lo).astype(np.float64)
    live = span > 0
    inv_span = np.divide(1, span, out=np.zeros_like(span), where=live)
    sw, swx, swxx = _rsum(w), _rsum(w * x), _rsum(w * x * x)

    def fit(iscale, offset):
        level = x - offset.astype(np.float32)[:, None]
        level *= iscale.astype(np.float32)[:, None]
        np.rint(level, out=level)
        np.clip(level, 0, nmax, out=level)
        wl = w * level
        return _rsum(wl), _rsum(wl * level), _rsum(wl * x)

    def error(s, m, sl, sll, sxl):
        # sum w (s l + m - x)^2 expanded into the sums (m here is the offset, <= 0)
        return (s * s * sll + m * m * sw + swxx + 2 * s * m * sl - 2 * s * sxl - 2 * m * swx)

    best_s = span / nmax
    best_m = lo.astype(np.float64)
    best_err = error(best_s, best_m, *fit(nmax * inv_span, best_m))
    for i in range(nstep + 1):
        # As in ggml, the levels are taken from the best offset so far.
        sl, sll, sxl = fit((nmax + rmin + rdelta * i) * inv_span, best_m)
        det = sw * sll - sl * sl
        ok = det > 0
        det = np.where(ok, det, 1)
        s = (sw * sxl - swx * sl) / det
        m = (sll * swx - sl * sxl) / det
        clamp = m > 0  # the format has x = s l - min with min >= 0
        m = np.where(clamp, 0, m)
        s = np.where(clamp, sxl / np.where(sll > 0, sll, 1), s)
        err = error(s, m, sl, sll, sxl)
        better = ok & (err < best_err) & (s >= 0)
        best_s = np.where(better, s, best_s)
        best_m = np.where(better, m, best_m)
        best_err = np.where(better, err, best_err)
    # A constant sub-block (span 0) is all offset: s = 0, min = -lo.
    return np.where(live, best_s, 0), -best_m


def _fit_scale(x, w, nmax, ntry):
    """Per row of x: signed scale s with x ~ s * l, l in -nmax..nmax-1.

    ggml's make_qx_quants: candidates l = round(-x * (nmax + 0.1 i) / max) for
    i in -ntry..ntry, where max is the value of largest magnitude, each with its
    w-weighted least-squares scale; the one of least error (largest
    (sum w x l)^2 / sum w l^2) wins. All-zero rows get s = 0.
    """
    idx = np.abs(x).argmax(axis=1)
    mx = np.take_along_axis(x, idx[:, None], axis=1)[:, 0].astype(np.float64)
    inv = np.divide(1, mx, out=np.zeros_like(mx), where=np.abs(mx) >= GROUP_MAX_EPS)
    best_score = np.zeros_like(mx)
    best_s = np.zeros_like(mx)
    for i in range(-ntry, ntry + 1):
        level = np.rint(x * (-(nmax + 0.1 * i) * inv).astype(np.float32)[:, None])
        np.clip(level, -nmax, nmax - 1, out=level)
        wl = w * level
        sxl, sll = _rsum(wl * x), _rsum(wl * level)
        pos = sll > 0
        sll = np.where(pos, sll, 1)
        score = np.where(pos, sxl * sxl / sll, 0)
        better = score > best_score
        best_s = np.where(better, sxl / sll, best_s)
        best_score = np.where(better, score, best_score)
    return best_s


def _levels(x, d, offset, lo, hi):
    """round((x + offset) / d) clipped to [lo, hi], per row of x with its
    row's d and offset; rows with d == 0 get level max(lo, 0)."""
    inv = _safe_inverse(d.astype(np.float32))
    v = np.rint((x + offset.astype(np.float32)[:, None]) * inv[:, None])
    np.clip(v, lo, hi, out=v)
    v[d == 0] = max(lo, 0)
    return v


# ---------------------------------------------------------------------------
# K-quants: each takes float32 values (a multiple of 256) and returns (n, bytes)

def _scale_min_super(x, sub, nmax, scale_bits, rmin, rdelta, nstep, weights):
    """The shared part of Q2_K, Q4_K and Q5_K: sub-block fits, the scales and
    mins quantized to scale_bits under f16 d and dmin, and the levels under them.
    Returns (levels (n, 256) uint8, ls, lm (n, 256 / sub) uint8, d, dmin)."""
    nb = x.size // QK_K
    xs = x.reshape(-1, sub)
    scales, mins = _fit_scale_min(xs, weights(xs), nmax, rmin, rdelta, nstep)
    scales, mins = scales.reshape(nb, -1), mins.reshape(nb, -1)
    qmax = (1 << scale_bits) - 1
    max_scale, max_min = scales.max(axis=1), mins.max(axis=1)
    ls = np.minimum(np.rint(scales * _safe_inverse(max_scale / qmax)[:, None]), qmax)
    lm = np.minimum(np.rint(mins * _safe_inverse(max_min / qmax)[:, None]), qmax)
    d16, dmin16 = _f16(max_scale / qmax), _f16(max_min / qmax)
    sub_d = (d16[:, None] * ls).reshape(-1)
    sub_m = (dmin16[:, None] * lm).reshape(-1)
    levels = _levels(xs, sub_d, sub_m, 0, nmax).astype(np.uint8).reshape(nb, QK_K)
    return levels, ls.astype(np.uint8), lm.astype(np.uint8), d16, dmin16


def _rms_plus_abs(xs):
    # ggml's weights for Q4_K/Q5_K: the sub-block's RMS plus |x|.
    rms = np.sqrt((xs * xs).mean(axis=1, keepdims=True))
    return rms + np.abs(xs)


def _pack_q4k_scales(ls, lm):
    """Eight 6-bit scales and mins into Q4_K/Q5_K's 12 bytes (get_scale_min_k4)."""
    out = np.empty((ls.shape[0], 12), np.uint8)
    out[:, 0:4] = ls[:, :4] | ((ls[:, 4:] >> 4) << 6)
    out[:, 4:8] = lm[:, :4] | ((lm[:, 4:] >> 4) << 6)
    out[:, 8:12] = (ls[:, 4:] & 15) | ((lm[:, 4:] & 15) << 4)
    return out


def _pack_2bit(levels):
    """(n, 256) levels 0..3 -> (n, 64): byte 32 h + l holds elements 128 h + 32 j + l
    at bits 2 j (Q2_K and Q3_K's qs)."""
    nb = levels.shape[0]
    q = levels.reshape(nb, 2, 4, 32).reshape(nb * 2, 4, 32)
    return _bits(q).reshape(nb, 64)


def quantize_q2_k(x):
    # Sub-blocks of 16 weighted by |x|; 4-bit scales and mins.
    levels, ls, lm, d, dmin = _scale_min_super(x, 16, 3, 4, -0.5, 0.1, 15, np.abs)
    out = np.empty((levels.shape[0], 84), np.uint8)
    out[:, 0:16] = ls | (lm << 4)
    out[:, 16:80] = _pack_2bit(levels)
    out[:, 80:82] = _f16_bytes(d)
    out[:, 82:84] = _f16_bytes(dmin)
    return out


def quantize_q4_k(x):
    levels, ls, lm, d, dmin = _scale_min_super(x, 32, 15, 6, -1.0, 0.1, 20, _rms_plus_abs)
    nb = levels.shape[0]
    q = levels.reshape(nb, 4, 2, 32)  # byte 32 g + l: element 64 g + l low, 64 g + 32 + l high
    out = np.empty((nb, 144), np.uint8)
    out[:, 0:2] = _f16_bytes(d)
    out[:, 2:4] = _f16_bytes(dmin)
    out[:, 4:16] = _pack_q4k_scales(ls, lm)
    out[:, 16:144] = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(nb, 128)
    return out


def quantize_q5_k(x):
    # ggml searches 30.5..32 levels here; Q4_K's wider 14..16 (so 29..31) costs
    # little more, lowers the error a little and finds the grid of values that
    # are already Q5_K (whose range, after the 6-bit scales, is often 30 steps).
    levels, ls, lm, d, dmin = _scale_min_super(x, 32, 31, 6, -1.0, 0.1, 20, _rms_plus_abs)
    nb = levels.shape[0]
    low = (levels & 15).reshape(nb, 4, 2, 32)
    out = np.empty((nb, 176), np.uint8)
    out[:, 0:2] = _f16_bytes(d)
    out[:, 2:4] = _f16_bytes(dmin)
    out[:, 4:16] = _pack_q4k_scales(ls, lm)
    # qh byte l, bit 2 g + h: the fifth bit of element 64 g + 32 h + l.
    out[:, 16:48] = _bits((levels >> 4).reshape(nb, 8, 32))
    out[:, 48:176] = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(nb, 128)
    return out


def _signed_super(x, nmax, ntry, scale_bits):
    """The shared part of Q3_K and Q6_K: symmetric fits of sub-blocks of 16
    weighted by x^2, the sub-block scales quantized to signed scale_bits under
    f16 d = -max / 2^(scale_bits - 1) (max: the scale of largest magnitude, so
    it gets the most negative code), and the levels (0..2 nmax - 1) under them.
    Returns (levels (n, 256) uint8, signed scale codes (n, 16), d)."""
    nb = x.size // QK_K
    xs = x.reshape(-1, 16)
    scales = _fit_scale(xs, xs * xs, nmax, ntry).reshape(nb, 16)
    idx = np.abs(scales).argmax(axis=1)
    max_scale = np.take_along_axis(scales, idx[:, None], axis=1)[:, 0]
    half = 1 << (scale_bits - 1)
    iscale = np.divide(-half, max_scale, out=np.zeros_like(max_scale),
                       where=np.abs(max_scale) >= GROUP_MAX_EPS)
    codes = np.clip(np.rint(iscale[:, None] * scales), -half, half - 1)
    d16 = _f16(_safe_inverse(iscale))
    sub_d = (d16[:, None] * codes).reshape(-1)
    levels = _levels(xs, sub_d, np.zeros_like(sub_d), -nmax, nmax - 1) + nmax
    return levels.astype(np.uint8).reshape(nb, QK_K), codes.astype(np.int8), d16


def quantize_q3_k(x):
    levels, codes, d = _signed_super(x, 4, 9, 6)
    nb = levels.shape[0]
    sc = (codes + 32).astype(np.uint8)  # 6-bit, stored with offset 32
    out = np.empty((nb, 110), np.uint8)
    # hmask byte l, bit b: the third bit of element 32 b + l.
    out[:, 0:32] = _bits((levels >> 2).reshape(nb, 8, 32))
    out[:, 32:96] = _pack_2bit(levels & 3)
    # Low nibbles of scales j and j + 8 share byte j; the high 2 bits of scale j
    # are at bits 2 (j / 4) of byte 8 + j % 4.
    out[:, 96:104] = (sc[:, :8] & 15) | ((sc[:, 8:] & 15) << 4)
    out[:, 104:108] = _bits((sc >> 4).reshape(nb, 4, 4))
    out[:, 108:110] = _f16_bytes(d)
    return out


def quantize_q6_k(x):
    levels, codes, d = _signed_super(x, 32, 9, 8)
    nb = levels.shape[0]
    low = (levels & 15).reshape(nb, 2, 4, 32)
    out = np.empty((nb, 210), np.uint8)
    # Per half h of 128: ql byte 64 h + l holds quarters 0 and 2 of element l,
    # byte 64 h + 32 + l quarters 1 and 3; qh byte 32 h + l the high 2 bits of
    # all four quarters.
    ql = np.empty((nb, 2, 2, 32), np.uint8)
    ql[:, :, 0] = low[:, :, 0] | (low[:, :, 2] << 4)
    ql[:, :, 1] = low[:, :, 1] | (low[:, :, 3] << 4)
    out[:, 0:128] = ql.reshape(nb, 128)
    out[:, 128:192] = _bits((levels >> 4).reshape(nb * 2, 4, 32)).reshape(nb, 64)
    out[:, 192:208] = codes.view(np.uint8)
    out[:, 208:210] = _f16_bytes(d)
    return out


# ---------------------------------------------------------------------------
# IQ4_NL: blocks of 32, one f16 scale, 4-bit indices into IQ4_NL_VALUES

# Nearest level for v in [k / 2, (k + 1) / 2): every midpoint between two
# levels is a multiple of 1/2, so one table lookup finds it.
_IQ4_LUT_HALF = 512
_IQ4_LUT = np.abs(IQ4_NL_VALUES[None, :] -
                  ((np.arange(-_IQ4_LUT_HALF, _IQ4_LUT_HALF) + 0.5) / 2)[:, None]).argmin(axis=1)


def _iq4_index(v):
    k = np.floor(v * 2)
    np.clip(k, -_IQ4_LUT_HALF, _IQ4_LUT_HALF - 1, out=k)
    return _IQ4_LUT[(k + _IQ4_LUT_HALF).astype(np.intp)]


def quantize_iq4_nl(x):
    """ggml's quantize_row_iq4_nl_impl as llama-quantize runs it (no importance
    matrix: weights x^2; the plain scale and 15 around max / 127) and one more
    candidate, each refitted by weighted least squares."""
    xb = x.reshape(-1, 32)
    w = xb * xb
    idx = np.abs(xb).argmax(axis=1)
    mx = np.take_along_axis(xb, idx[:, None], axis=1)[:, 0].astype(np.float64)
    inv = np.divide(1, mx, out=np.zeros_like(mx), where=np.abs(mx) >= GROUP_MAX_EPS)
    best_score = np.zeros_like(mx)
    best_d = np.zeros_like(mx)
    # ggml's candidates: +max onto 127 (clipped to 113), and -max onto -127 + k;
    # then +max onto 113, the grid of values that are already IQ4_NL with a
    # positive max, which ggml's set lacks.
    for factor in ([-IQ4_NL_VALUES[0]] + [k + IQ4_NL_VALUES[0] for k in range(-7, 8)] +
                   [IQ4_NL_VALUES[-1]]):
        iscale = factor * inv
        q = IQ4_NL_VALUES[_iq4_index(xb * iscale.astype(np.float32)[:, None])]
        wq = w * q
        sqx, sqq = _rsum(wq * xb), _rsum(wq * q)
        pos = sqq > 0
        sqq = np.where(pos, sqq, 1)
        score = np.where(pos, sqx * sqx / sqq, 0)
        better = score > best_score
        best_d = np.where(better, sqx / sqq, best_d)
        best_score = np.where(better, score, best_score)
    idx = _iq4_index(xb * _safe_inverse(best_d.astype(np.float32))[:, None]).astype(np.uint8)
    out = np.empty((xb.shape[0], 18), np.uint8)
    out[:, 0:2] = _f16_bytes(best_d)
    out[:, 2:18] = idx[:, :16] | (idx[:, 16:] << 4)
    return out


# ---------------------------------------------------------------------------
# Whole tensors

def _gguf_package(qtype):
    return lambda x: gguf.quants.quantize(x.reshape(-1, gguf.GGML_QUANT_SIZES[qtype][0]), qtype)


QUANTIZERS = {
    QT.Q2_K: quantize_q2_k,
    QT.Q3_K: quantize_q3_k,
    QT.Q4_K: quantize_q4_k,
    QT.Q5_K: quantize_q5_k,
    QT.Q6_K: quantize_q6_k,
    QT.IQ4_NL: quantize_iq4_nl,
    **{t: _gguf_package(t) for t in (QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1)},
}


def block_size(qtype):
    """(elements, bytes) of one block of qtype; floats are blocks of one."""
    return gguf.GGML_QUANT_SIZES[qtype]


def quantize(data, qtype, workers=1):
    """data (float, last dimension a multiple of qtype's block) -> qtype's
    bytes, shaped (..., bytes per row) as gguf.quants.quantize returns them.
    F32, F16 and BF16 are converted. With workers > 1, chunks are quantized on
    that many threads (numpy releases the GIL)."""
    data = np.asarray(data)
    if qtype == QT.F32:
        return data.astype(np.float32)
    if qtype == QT.F16:
        return data.astype(np.float16)
    if qtype == QT.BF16:
        return gguf.quants.quantize(data.astype(np.float32), qtype)
    if qtype not in QUANTIZERS:
        raise NotImplementedError(f"gguf_quants: no quantizer for {qtype.name}")
    elems, nbytes = block_size(qtype)
    if data.shape[-1] % elems:
        raise ValueError(f"gguf_quants: rows of {data.shape[-1]} are not whole {qtype.name} blocks "
                         f"of {elems}")
    x = np.ascontiguousarray(data, np.float32).reshape(-1)
    out = np.empty((x.size // elems, nbytes), np.uint8)
    step = max(elems, CHUNK_ELEMS // elems * elems)

    def run(at):
        out[at // elems:(at + step) // elems] = QUANTIZERS[qtype](x[at:at + step])

    starts = range(0, x.size, step)
    if workers > 1 and len(starts) > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, starts))
    else:
        for at in starts:
            run(at)
    return out.reshape(*data.shape[:-1], data.shape[-1] // elems * nbytes)


# ---------------------------------------------------------------------------
# llama-quantize's file mixes (llama_tensor_get_type in llama.cpp's
# src/llama-quant.cpp), for Llama-architecture tensors without an importance matrix.

# mix -> (general.file_type, the type most tensors get)
MIXES = {
    "F32": (0, QT.F32),
    "F16": (1, QT.F16),
    "Q4_0": (2, QT.Q4_0),
    "Q4_1": (3, QT.Q4_1),
    "Q8_0": (7, QT.Q8_0),
    "Q5_0": (8, QT.Q5_0),
    "Q5_1": (9, QT.Q5_1),
    "Q2_K": (10, QT.Q2_K),
    "Q3_K_M": (12, QT.Q3_K),
    "Q4_K_M": (15, QT.Q4_K),
    "Q5_K_M": (17, QT.Q5_K),
    "Q6_K": (18, QT.Q6_K),
    "IQ4_NL": (25, QT.IQ4_NL),
    "BF16": (32, QT.BF16),
}

# A tensor whose rows are not whole blocks of its type takes the type here
# instead (llama.cpp's tensor_type_fallback; its 2026 source sends Q2_K and
# Q3_K to Q4_0, earlier ones, which made most published files, to IQ4_NL),
# and F16 when even that does not fit.
FALLBACK = {QT.Q2_K: QT.IQ4_NL, QT.Q3_K: QT.IQ4_NL, QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1,
            QT.Q6_K: QT.Q8_0}


def _use_more_bits(i, n):
    # The first and last eighth of the layers and every third one between.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _layer(name):
    m = re.match(r"blk\.(\d+)\.", name)
    return int(m.group(1)) if m else -1


def mix_types(mix, tensors, n_layers, n_gqa):
    """{name: GGMLQuantizationType} for a file mix.

    tensors: (name, ne) pairs, ne in GGUF order (ne[0] is the row length);
    n_layers: block_count; n_gqa: attention heads per KV head. 1-D tensors and
    norms keep F32; the output head (or the token embedding when it is tied to
    it) gets Q6_K in every quantized mix but Q8_0; attn_v and ffn_down get more
    bits in some layers as the mix says.
    """
    ftype_default = MIXES[mix][1]
    quantized = ftype_default not in (QT.F32, QT.F16, QT.BF16)
    names = [n for n, _ in tensors]
    tied = "output.weight" not in names
    # llama.cpp counts attn_v tensors in its loader's order: by layer, then name.
    attn_v = sorted((n for n in names if re.search(r"attn_(v|qkv|kv_b)\.weight", n)),
                    key=lambda n: (_layer(n), n))
    attn_v_index = {n: i for i, n in enumerate(attn_v)}
    out = {}
    for name, ne in tensors:
        if len(ne) < 2 or name.endswith("_norm.weight"):
            out[name] = QT.F32
            continue
        t = ftype_default
        layer = _layer(name)
        if not quantized:
            out[name] = t
            continue
        if name == "output.weight" or (tied and name == "token_embd.weight"):
            if ne[0] % block_size(t)[0]:
                t = QT.Q8_0
            elif t != QT.Q8_0:
                t = QT.Q6_K
        elif name in attn_v_index:
            i, n = attn_v_index[name], len(attn_v)
            if mix == "Q2_K":
                t = QT.Q4_K if n_gqa >= 4 else QT.Q3_K
            elif mix == "Q3_K_M":
                t = QT.Q5_K if i < 2 else QT.Q4_K
            elif mix == "IQ4_NL" and n_gqa >= 4:
                t = QT.Q5_K
            elif mix in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
                t = QT.Q6_K
        elif "ffn_down" in name:
            i, n = layer, n_layers
            if mix == "Q2_K":
                t = QT.Q3_K
            elif mix == "Q3_K_M":
                t = QT.Q5_K if i < n // 16 else QT.Q4_K
            elif mix in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
                t = QT.Q6_K
            elif mix == "IQ4_NL" and i < n // 8:
                t = QT.Q5_K
        elif "attn_output.weight" in name:
            t = {"Q2_K": QT.Q3_K, "Q3_K_M": QT.Q4_K}.get(mix, t)
        if ne[0] % block_size(t)[0]:
            t = FALLBACK.get(t, t)
            if ne[0] % block_size(t)[0]:
                t = QT.F16
        out[name] = t
    return out
