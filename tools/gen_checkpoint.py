#!/usr/bin/env python3
"""Writes a synthetic Llama-shaped checkpoint with random weights.

For tests and benchmarks that need a checkpoint of a given shape, dtype or
size (up to Llama-3-8B's shape) without downloading one. Two containers:

  safetensors  a directory: config.json (LlamaForCausalLM) and model.safetensors,
               or model-0000i-of-0000N.safetensors + model.safetensors.index.json
               with --shards N; Hugging Face tensor names; dtypes F32, F16, BF16.
  gguf         one GGUF v3 file with llama.* metadata and GGUF tensor names;
               2-D weights in F32, F16, Q8_0, Q4_0 or Q4_1 (every one), or in
               one of llama-quantize's file mixes Q4_K_M, Q5_K_M, Q6_K, Q3_K_M,
               Q2_K, Q5_0, Q5_1, IQ4_NL: per tensor the type llama-quantize
               gives it (the output head Q6_K, attn_v and ffn_down of some
               layers with more bits, a 32-element type where a row is not
               whole super-blocks of 256; tools/gguf_quants.py); norms always F32.

The same --seed and shape give the same model in both containers: values are
drawn per tensor (keyed by its Hugging Face name) in Hugging Face order, and
the GGUF writer permutes q/k rows into GGUF's interleaved RoPE order as
llama.cpp's converter does. Weights are uniform with standard deviation 0.02;
norm weights are 1 plus a little noise.

Only one chunk of one tensor is in memory at a time, so the size of the model
does not matter: `--preset 2gib-f16` (2 GiB) takes about 20 s and 150 MB of memory on 2 cores.

`--fill bits` trades those values for speed, for checkpoints that are only
timed (the GPU check's 8B-shaped ones): every 2-D weight is random bits shaped
into valid numbers (floats: random sign and mantissa, magnitudes in
[2^-7, 2^-5), never NaN or infinite; quantized blocks: random payloads under
positive f16 scales of a weight-like size, Q4_1 and Q5_1 minimums negative,
K-quants' sub-block scales random), drawn per
chunk of rows on every core and written with positional writes. Norms keep
their usual values. The two containers then hold different values (the bits
are not permuted for GGUF's RoPE order); a seed still gives the same file.

Examples:
  tools/gen_checkpoint.py --out /tmp/tiny --preset tiny
  tools/gen_checkpoint.py --out /tmp/m.gguf --format gguf --dtype Q4_0 --preset 1gib
  tools/gen_checkpoint.py --out /tmp/8b --preset 8b --shards 4
  tools/gen_checkpoint.py --out /dev/shm/8b --preset 8b --dtype BF16 --fill bits
"""

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as QT

import gguf_quants

CHUNK_ELEMS = 1 << 22  # elements generated at once: bounds memory, not size
QK = 32  # elements per Q8_0 / Q4_0 / Q4_1 block

FLOAT_BYTES = {"F32": 4, "F16": 2, "BF16": 2}
# Block types a tensor can be stored in, and bytes per block.
BLOCK_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
               "Q6_K")
BLOCK_BYTES = {t: GGML_QUANT_SIZES[QT[t]][1] for t in BLOCK_TYPES}
# ggml type ids.
GGML_TYPES = {t: int(QT[t]) for t in (*FLOAT_BYTES, *BLOCK_TYPES)}
# --dtype values that are llama-quantize mixes: each tensor's type is the mix's rule's.
MIX_DTYPES = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q5_0", "Q5_1", "IQ4_NL"]
# general.file_type (llama_ftype) for each dtype.
FILE_TYPES = {d: gguf_quants.MIXES[d][0]
              for d in ["F32", "F16", "Q4_0", "Q4_1", "Q8_0", *MIX_DTYPES]}
TORCH_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
DTYPES = {"safetensors": ["F32", "F16", "BF16"],
          "gguf": ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", *MIX_DTYPES]}


@dataclasses.dataclass
class Shape:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 192
    vocab: int = 512
    tie: bool = True
    context: int = 2048
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5

    @property
    def head_dim(self):
        return self.hidden // self.heads


# A preset gives a shape, a default dtype and optionally a target size in bytes;
# with a target, the number of layers is chosen to come closest to it for the
# dtype in use. The 1-2 GiB presets have TinyLlama's width with 128-wide heads.
_MID = dict(hidden=2048, heads=16, kv_heads=4, ffn=5632, vocab=32000, tie=False)
PRESETS = {
    "tiny": dict(shape=dict(), dtype="F32"),
    "1gib": dict(shape=_MID, dtype="F16", target_bytes=1 << 30),
    "2gib-f16": dict(shape=_MID, dtype="F16", target_bytes=2 << 30),
    "8b": dict(shape=dict(hidden=4096, layers=32, heads=32, kv_heads=8, ffn=14336, vocab=128256,
                          tie=False, context=8192, rope_theta=500000.0), dtype="F16"),
}


@dataclasses.dataclass
class Tensor:
    hf_name: str
    gguf_name: str
    shape: tuple  # Hugging Face order: (out, in) or (n,)
    rope_heads: int = 0  # q/k: heads whose rows GGUF interleaves; 0 otherwise
    dtype: str = "F32"  # the type it is stored in (plan_tensors' fmt and dtype decide)

    @property
    def is_norm(self):
        return len(self.shape) == 1


def plan_tensors(s, fmt="safetensors", dtype="F32"):
    """The tensors of a Llama model, in Hugging Face order, each with the type
    it is stored in for the container and --dtype."""
    hd = s.head_dim
    t = [Tensor("model.embed_tokens.weight", "token_embd.weight", (s.vocab, s.hidden))]
    for i in range(s.layers):
        hf, gg = f"model.layers.{i}.", f"blk.{i}."
        t += [
            Tensor(hf + "input_layernorm.weight", gg + "attn_norm.weight", (s.hidden,)),
            Tensor(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", (s.heads * hd, s.hidden),
                   rope_heads=s.heads),
            Tensor(hf + "self_attn.k_proj.weight", gg + "attn_k.weight",
                   (s.kv_heads * hd, s.hidden), rope_heads=s.kv_heads),
            Tensor(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", (s.kv_heads * hd, s.hidden)),
            Tensor(hf + "self_attn.o_proj.weight", gg + "attn_output.weight",
                   (s.hidden, s.heads * hd)),
            Tensor(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", (s.hidden,)),
            Tensor(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", (s.ffn, s.hidden)),
            Tensor(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", (s.ffn, s.hidden)),
            Tensor(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", (s.hidden, s.ffn)),
        ]
    t.append(Tensor("model.norm.weight", "output_norm.weight", (s.hidden,)))
    if not s.tie:
        t.append(Tensor("lm_head.weight", "output.weight", (s.vocab, s.hidden)))
    if fmt == "gguf" and dtype in MIX_DTYPES:
        types = gguf_quants.mix_types(dtype, [(x.gguf_name, x.shape[::-1]) for x in t], s.layers,
                                      s.heads // s.kv_heads)
        for x in t:
            x.dtype = types[x.gguf_name].name
    else:
        for x in t:
            # GGUF keeps norms in F32 whatever the weights' type, as llama.cpp does.
            x.dtype = "F32" if fmt == "gguf" and x.is_norm else dtype
    return t


def nbytes(shape, dtype):
    n = int(np.prod(shape))
    if dtype in BLOCK_BYTES:
        return n // GGML_QUANT_SIZES[QT[dtype]][0] * BLOCK_BYTES[dtype]
    return n * FLOAT_BYTES[dtype]


def model_bytes(s, fmt, dtype):
    return sum(nbytes(t.shape, t.dtype) for t in plan_tensors(s, fmt, dtype))


# ---------------------------------------------------------------------------
# Values and encodings

def chunks_of(t, seed):
    """Yields the tensor's float32 values as consecutive row chunks (HF order).

    Uniform values are drawn (several times faster than normal ones) with
    standard deviation 0.02; the stream depends on the seed and the tensor's
    name only, not on the chunk size.
    """
    rng = np.random.default_rng([seed, zlib.crc32(t.hf_name.encode())])
    rows = t.shape[0]
    cols = t.shape[1] if len(t.shape) == 2 else 1
    step = max(1, CHUNK_ELEMS // cols)
    if t.rope_heads:
        per_head = rows // t.rope_heads
        step = max(per_head, step // per_head * per_head)  # whole heads per chunk
    half_width = np.float32(0.02 * 3**0.5)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        x = rng.random((n, cols) if len(t.shape) == 2 else (n,), dtype=np.float32)
        x -= np.float32(0.5)
        x *= np.float32(2) * half_width
        if t.is_norm:
            x += np.float32(1)
        yield x


def rope_to_gguf(x, heads_in_chunk):
    """HF rotate-half row order -> GGUF interleaved-pair order, per head."""
    rows, cols = x.shape
    return x.reshape(heads_in_chunk, 2, rows // heads_in_chunk // 2, cols).swapaxes(1, 2).reshape(
        rows, cols)


def _f16_bytes(v):
    return v.astype("<f2").view(np.uint8).reshape(-1, 2)


def _fold(b, op):
    """op-reduction of each row of 32, by halving: several times faster than
    numpy's reduction along a short axis."""
    while b.shape[1] > 1:
        h = b.shape[1] // 2
        b = op(b[:, :h], b[:, h:])
    return b[:, 0]


def _inverse(d):
    return np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)


def _roundf(v):
    """C's roundf (halves away from zero); np.rint rounds them to even."""
    r = np.rint(v)
    tie = np.abs(v - np.trunc(v)) == np.float32(0.5)
    if tie.any():
        r[tie] = np.trunc(v[tie]) + np.sign(v[tie])
    return r


def _pack_nibbles(q):
    # Byte j holds element j in its low nibble and element j + 16 in its high one.
    return q[:, :QK // 2] | (q[:, QK // 2:] << 4)


# The quantizers follow ggml's reference ones (quantize_row_*_ref) bit for bit,
# in float32: d = amax / 127, q = roundf(x / d).
def quantize_q8_0(x):
    b = x.reshape(-1, QK)
    amax = np.abs(np.maximum(_fold(b, np.maximum), -_fold(b, np.minimum)))  # abs: no -0.0
    d = amax / np.float32(127)
    q = _roundf(b * _inverse(d)[:, None]).astype(np.int8)
    out = np.empty((b.shape[0], BLOCK_BYTES["Q8_0"]), np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = q.view(np.uint8)
    return out


# d = m / -8 where m is the value of largest magnitude (the first one when +a and
# -a tie), q = min(15, (int)(x / d + 8.5)).
def quantize_q4_0(x):
    b = x.reshape(-1, QK)
    hi, lo = _fold(b, np.maximum), _fold(b, np.minimum)
    m = np.where(hi > -lo, hi, lo)
    tie = hi == -lo
    if tie.any():
        bt = b[tie]
        m[tie] = np.take_along_axis(bt, np.abs(bt).argmax(axis=1)[:, None], axis=1)[:, 0]
    d = m / np.float32(-8)
    v = b * _inverse(d)[:, None]
    v += np.float32(8.5)  # >= 0, so the cast truncates as C's (int8_t) does
    q = np.minimum(v, np.float32(15), out=v).astype(np.uint8)
    out = np.empty((b.shape[0], BLOCK_BYTES["Q4_0"]), np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = _pack_nibbles(q)
    return out


# d = (max - min) / 15, m = min, q = min(15, (int)((x - min) / d + 0.5)).
def quantize_q4_1(x):
    b = x.reshape(-1, QK)
    hi, lo = _fold(b, np.maximum), _fold(b, np.minimum)
    d = (hi - lo) / np.float32(15)
    v = b - lo[:, None]
    v *= _inverse(d)[:, None]
    v += np.float32(0.5)
    q = np.minimum(v, np.float32(15), out=v).astype(np.uint8)
    out = np.empty((b.shape[0], BLOCK_BYTES["Q4_1"]), np.uint8)
    out[:, :2] = _f16_bytes(d)
    out[:, 2:4] = _f16_bytes(lo)
    out[:, 4:] = _pack_nibbles(q)
    return out


def to_bf16(x):
    u = x.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def _quantizer(name):
    return lambda x: gguf_quants.quantize(x, QT[name])


ENCODERS = {
    "F32": lambda x: x.astype("<f4", copy=False),
    "F16": lambda x: x.astype("<f2"),
    "BF16": to_bf16,
    "Q8_0": quantize_q8_0,
    "Q4_0": quantize_q4_0,
    "Q4_1": quantize_q4_1,
    **{t: _quantizer(t) for t in BLOCK_TYPES if t not in ("Q8_0", "Q4_0", "Q4_1")},
}


def encoder(t, fmt):
    """The function from a chunk of t's values (HF order) to its stored bytes."""
    enc = ENCODERS[t.dtype]
    if fmt != "gguf" or not t.rope_heads:
        return enc
    rows_per_head = t.shape[0] // t.rope_heads
    return lambda x: enc(rope_to_gguf(x, x.shape[0] // rows_per_head))


def write_tensors(f, tensors, fmt, seed, align=1):
    """Writes the tensors' data in order, each padded to a multiple of align.

    Values are drawn on this thread (a tensor's stream is sequential) and
    encoded on a small pool; numpy and file writes release the GIL, so drawing,
    encoding and writing overlap. At most a few chunks are in flight.
    """
    workers = min(4, os.cpu_count() or 1)
    pending = collections.deque()

    def drain(keep):
        while len(pending) > keep:
            f.write(memoryview(pending.popleft().result()).cast("B"))

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for t in tensors:
            enc = encoder(t, fmt)
            for x in chunks_of(t, seed):
                pending.append(pool.submit(enc, x))
                drain(workers + 1)
            pad = -nbytes(t.shape, t.dtype) % align
            if pad:
                pending.append(pool.submit(np.zeros, pad, np.uint8))
        drain(0)


# ---------------------------------------------------------------------------
# Random bits (--fill bits)

BITS_CHUNK_BYTES = 32 << 20  # bytes of one tensor drawn and written at once

# Floats: (mask, base) on each element's bits: the sign, the lowest exponent
# bit and the mantissa stay random, the other exponent bits are those of
# 2^-7, so |x| is in [2^-7, 2^-5) (about 0.02 on average).
FLOAT_BITS = {
    "F32": (np.uint32, 0x80FFFFFF, 120 << 23),
    "BF16": (np.uint16, 0x80FF, 120 << 7),
    "F16": (np.uint16, 0x87FF, 8 << 10),
}
# Quantized blocks: per 16-bit field of the block that needs shaping, its
# index in the block's 16-bit words and the (mask, base) on its bits; the
# other bits (quants, K-quant sub-block scales) stay random. f16 scales get a
# random mantissa under a fixed exponent: positive and sized so that a
# dequantized value is about 0.02 on average; Q4_1's and Q5_1's m are negative
# minimums of about -0.03 to -0.06, K-quants' dmin are positive (subtracted).
_F16_EXP = lambda e: (0x03FF, (e + 15) << 10)  # noqa: E731  [2^e, 2^(e+1))
BLOCK_FIELD_BITS = {
    "Q8_0": [(0, *_F16_EXP(-12))],
    "Q4_0": [(0, *_F16_EXP(-8))],
    "Q4_1": [(0, *_F16_EXP(-9)), (1, 0x03FF, 0x8000 | 10 << 10)],
    "Q5_0": [(0, *_F16_EXP(-9))],
    "Q5_1": [(0, *_F16_EXP(-10)), (1, 0x03FF, 0x8000 | 10 << 10)],
    "IQ4_NL": [(0, *_F16_EXP(-12))],
    "Q2_K": [(40, *_F16_EXP(-10)), (41, *_F16_EXP(-10))],  # d, dmin after scales and qs
    "Q3_K": [(54, *_F16_EXP(-11))],
    "Q4_K": [(0, *_F16_EXP(-14)), (1, *_F16_EXP(-14))],
    "Q5_K": [(0, *_F16_EXP(-14)), (1, *_F16_EXP(-14))],
    # d, and the int8 sub-block scales (bytes 192..207) kept in 0..31.
    "Q6_K": [(104, *_F16_EXP(-14))] + [(i, 0x1F1F, 0) for i in range(96, 104)],
}


def bits_chunk(rng, dtype, nbytes):
    """nbytes of dtype's encoding drawn as random bits shaped into valid values."""
    raw = rng.bit_generator.random_raw(-(-nbytes // 8)).view(np.uint8)[:nbytes]
    if dtype in FLOAT_BITS:
        kind, mask, base = FLOAT_BITS[dtype]
        v = raw.view(kind)
        v &= kind(mask)
        v |= kind(base)
        return raw
    fields = raw.view(np.uint16).reshape(-1, BLOCK_BYTES[dtype] // 2)
    for i, mask, base in BLOCK_FIELD_BITS[dtype]:
        col = fields[:, i]
        col &= np.uint16(mask)
        col |= np.uint16(base)
    return raw


def write_tensors_bits(path, data_start, tensors, seed, align, workers):
    """Writes the tensors' data at data_start with positional writes from a
    pool: 2-D weights as random bits (one generator per chunk, keyed by the
    seed, the tensor's name and the chunk's index), 1-D tensors with their
    usual values. Padding is left to the file's size (zeros)."""
    jobs, offset = [], data_start
    for t in tensors:
        dt = t.dtype
        size = nbytes(t.shape, dt)
        if t.is_norm:
            jobs.append(("values", t, dt, offset, 0, size))
        else:
            row = size // t.shape[0]
            step = max(1, BITS_CHUNK_BYTES // row) * row
            for i, at in enumerate(range(0, size, step)):
                jobs.append(("bits", t, dt, offset + at, i, min(step, size - at)))
        offset += -(-size // align) * align

    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)

        def run(job):
            kind, t, dt, at, index, size = job
            if kind == "values":
                enc = ENCODERS[dt]
                data = b"".join(memoryview(enc(x)).cast("B") for x in chunks_of(t, seed))
            else:
                rng = np.random.Generator(np.random.PCG64(
                    [seed, zlib.crc32(t.hf_name.encode()), index]))
                data = bits_chunk(rng, dt, size)
            view = memoryview(data).cast("B")
            while view:
                n = os.pwrite(fd, view, at)
                view, at = view[n:], at + n

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            # Bounded in flight: at most 2 * workers chunks in memory.
            pending = collections.deque()
            for job in jobs:
                pending.append(pool.submit(run, job))
                while len(pending) > 2 * workers:
                    pending.popleft().result()
            for f in pending:
                f.result()
    finally:
        os.close(fd)
    return offset - data_start


# ---------------------------------------------------------------------------
# Containers

def write_safetensors_file(path, tensors, dtype, seed, fill="uniform", workers=1):
    header, offset = {}, 0
    for t in tensors:
        n = nbytes(t.shape, dtype)
        header[t.hf_name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        if fill == "uniform":
            write_tensors(f, tensors, "safetensors", seed)
    if fill == "bits":
        write_tensors_bits(path, 8 + len(blob), tensors, seed, 1, workers)
    return offset


def split_shards(tensors, n, dtype):
    """Contiguous groups of about equal bytes, none empty."""
    if n > len(tensors):
        sys.exit(f"gen_checkpoint: --shards {n}: the model has only {len(tensors)} tensors")
    total = sum(nbytes(t.shape, dtype) for t in tensors)
    shards, cum = [[]], 0
    for i, t in enumerate(tensors):
        left_tensors, left_shards = len(tensors) - i, n - len(shards)
        if shards[-1] and left_shards and (cum >= len(shards) * total / n or
                                           left_tensors == left_shards):
            shards.append([])
        shards[-1].append(t)
        cum += nbytes(t.shape, dtype)
    return shards


def write_safetensors(out, s, dtype, shards, seed, fill="uniform", workers=1):
    os.makedirs(out, exist_ok=True)
    tensors = plan_tensors(s, "safetensors", dtype)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": s.hidden,
        "intermediate_size": s.ffn,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": s.head_dim,
        "vocab_size": s.vocab,
        "rms_norm_eps": s.rms_eps,
        "rope_theta": s.rope_theta,
        "max_position_embeddings": s.context,
        "tie_word_embeddings": s.tie,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": TORCH_DTYPES[dtype],
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if shards == 1:
        return write_safetensors_file(os.path.join(out, "model.safetensors"), tensors, dtype, seed,
                                      fill, workers)
    weight_map, total = {}, 0
    for i, group in enumerate(split_shards(tensors, shards, dtype)):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors_file(os.path.join(out, name), group, dtype, seed, fill,
                                        workers)
        weight_map.update({t.hf_name: name for t in group})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
        f.write("\n")
    return total


def _gguf_str(v):
    b = v.encode()
    return struct.pack("<Q", len(b)) + b


def _gguf_kv(key, value):
    # Value types of the GGUF spec: 4 UINT32, 6 FLOAT32, 8 STRING.
    if isinstance(value, str):
        return _gguf_str(key) + struct.pack("<I", 8) + _gguf_str(value)
    if isinstance(value, float):
        return _gguf_str(key) + struct.pack("<If", 6, value)
    return _gguf_str(key) + struct.pack("<II", 4, value)


def write_gguf(out, s, dtype, seed, align=32, fill="uniform", workers=1):
    tensors = plan_tensors(s, "gguf", dtype)
    kv = {
        "general.architecture": "llama",
        "general.name": "synthetic",
        "general.file_type": FILE_TYPES[dtype],
        "general.alignment": align,
        "llama.block_count": s.layers,
        "llama.context_length": s.context,
        "llama.embedding_length": s.hidden,
        "llama.feed_forward_length": s.ffn,
        "llama.attention.head_count": s.heads,
        "llama.attention.head_count_kv": s.kv_heads,
        "llama.rope.freq_base": float(s.rope_theta),
        "llama.attention.layer_norm_rms_epsilon": float(s.rms_eps),
        "llama.rope.dimension_count": s.head_dim,
        "llama.vocab_size": s.vocab,
    }
    head = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    head += [_gguf_kv(k, v) for k, v in kv.items()]
    offset = 0
    for t in tensors:
        dt = t.dtype
        dims = t.shape[::-1]  # GGUF lists dims innermost first: ne[0] = in features
        head.append(_gguf_str(t.gguf_name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims,
                                                         GGML_TYPES[dt], offset))
        offset += -(-nbytes(t.shape, dt) // align) * align
    blob = b"".join(head)
    blob += b"\0" * (-len(blob) % align)
    with open(out, "wb") as f:
        f.write(blob)
        if fill == "uniform":
            write_tensors(f, tensors, "gguf", seed, align)
    if fill == "bits":
        write_tensors_bits(out, len(blob), tensors, seed, align, workers)
    return offset


# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="presets: " + ", ".join(PRESETS))
    p.add_argument("--out", required=True,
                   help="safetensors: a directory; gguf: a file (or a directory for model.gguf)")
    p.add_argument("--format", choices=sorted(DTYPES), default="safetensors")
    p.add_argument("--dtype", help="safetensors: F32 F16 BF16; gguf: F32 F16 Q8_0 Q4_0 Q4_1 "
                   "or a llama-quantize mix: " + " ".join(MIX_DTYPES) + " "
                   "(default: the preset's, else F32)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                   help="a named shape (default tiny); the flags below override it")
    for name in ("hidden", "layers", "heads", "kv-heads", "ffn", "vocab", "context"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--rope-theta", type=float)
    p.add_argument("--tie", action=argparse.BooleanOptionalAction, default=None,
                   help="tie lm_head to the embedding (no lm_head / output tensor)")
    p.add_argument("--shards", type=int, default=1, help="safetensors: number of files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fill", choices=("uniform", "bits"), default="uniform",
                   help="uniform: the values above (default); bits: random bits shaped into "
                   "valid numbers, on every core (fast; for checkpoints that are only timed)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="--fill bits: threads drawing and writing (default: the cores)")
    return p.parse_args(argv)


def resolve(a):
    """The shape and dtype from the preset, the flags and the format's rules."""
    preset = PRESETS[a.preset]
    s = Shape(**preset["shape"])
    dtype = (a.dtype or preset["dtype"]).upper()
    if dtype not in DTYPES[a.format]:
        sys.exit(f"gen_checkpoint: --dtype {dtype}: {a.format} takes {' '.join(DTYPES[a.format])}")
    explicit = {k: getattr(a, k) for k in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab",
                                           "context", "rope_theta", "tie")}
    s = dataclasses.replace(s, **{k: v for k, v in explicit.items() if v is not None})
    if min(s.hidden, s.layers, s.heads, s.kv_heads, s.ffn, s.vocab, s.context) < 1:
        sys.exit("gen_checkpoint: every size must be at least 1")
    if s.hidden % s.heads or s.heads % s.kv_heads or s.head_dim % 2:
        sys.exit(f"gen_checkpoint: hidden {s.hidden}, heads {s.heads}, kv heads {s.kv_heads}: "
                 "need hidden % heads == 0, heads % kv_heads == 0 and an even head dim")
    # (A mix instead falls back to a smaller block, or F16, tensor by tensor.)
    if dtype in BLOCK_BYTES and dtype not in MIX_DTYPES and (s.hidden % QK or s.ffn % QK):
        sys.exit(f"gen_checkpoint: {dtype} needs hidden and ffn divisible by {QK}")
    if "target_bytes" in preset and a.layers is None:
        one = model_bytes(dataclasses.replace(s, layers=1), a.format, dtype)
        two = model_bytes(dataclasses.replace(s, layers=2), a.format, dtype)
        per_layer = two - one
        s.layers = max(1, round((preset["target_bytes"] - (one - per_layer)) / per_layer))
    return s, dtype


def main(argv):
    a = parse_args(argv)
    s, dtype = resolve(a)
    if a.format == "gguf" and a.shards != 1:
        sys.exit("gen_checkpoint: --shards applies to safetensors only")
    out = a.out
    if a.format == "gguf" and os.path.isdir(out):
        out = os.path.join(out, "model.gguf")
    start = time.monotonic()
    workers = max(1, a.workers)
    if a.format == "gguf":
        size = write_gguf(out, s, dtype, a.seed, fill=a.fill, workers=workers)
    else:
        size = write_safetensors(out, s, dtype, a.shards, a.seed, a.fill, workers)
    print(f"gen_checkpoint: wrote {out} ({a.format} {dtype}, hidden {s.hidden}, {s.layers} layers, "
          f"heads {s.heads}/{s.kv_heads}, ffn {s.ffn}, vocab {s.vocab}, tied {s.tie}, "
          f"fill {a.fill}; "
          f"{size / 2**20:.1f} MiB of tensors in {time.monotonic() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
