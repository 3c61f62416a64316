#!/usr/bin/env python3
"""Requantizes a GGUF file into one of llama-quantize's file mixes.

  tools/requantize_gguf.py IN.gguf OUT.gguf --mix Q4_K_M

Every tensor is dequantized (gguf.quants) and quantized again to the type the
mix gives it (tools/gguf_quants.py: llama-quantize's per-tensor rules and its
fallbacks for rows that are not whole super-blocks); a tensor whose type does
not change is copied byte for byte. Every metadata key (architecture,
tokenizer, chat template, ...) is copied unchanged, byte for byte, except
general.file_type, which becomes the mix's llama_ftype. Tensors keep their
order, names and shapes.

For making test and benchmark files from a real checkpoint (say, a Q4_K_M
SmolLM2 from the Q4_1 one): requantizing an already quantized file adds the
new type's error to the old one's, so the result is slightly worse than
llama-quantize's from the original F16 weights.
"""

import argparse
import collections
import os
import struct
import sys
import time

import numpy as np
import gguf
from gguf import GGUFValueType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_quants  # noqa: E402

DEFAULT_ALIGNMENT = 32


def _field_value(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None or not f.data:
        return default
    return f.parts[f.data[0]][0]


def _gguf_str(v):
    b = v.encode()
    return struct.pack("<Q", len(b)) + b


def plan(reader, mix):
    """{tensor name: target type} under the mix's rules."""
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    n_layers = int(_field_value(reader, f"{arch}.block_count", 0))
    heads = int(_field_value(reader, f"{arch}.attention.head_count", 1))
    kv_heads = int(_field_value(reader, f"{arch}.attention.head_count_kv", heads)) or heads
    tensors = [(t.name, [int(d) for d in t.shape]) for t in reader.tensors]
    return gguf_quants.mix_types(mix, tensors, n_layers, heads // kv_heads)


def requantize(src, dst, mix, workers=1):
    """Writes dst: src's metadata and tensors under the mix. Returns
    {type name: number of tensors} of the written file."""
    reader = gguf.GGUFReader(src)
    types = plan(reader, mix)
    align = int(_field_value(reader, "general.alignment", DEFAULT_ALIGNMENT))

    # Metadata: every key-value pair's bytes as they are in src, in src's order,
    # but general.file_type's value (added at the end if src has none).
    file_type = _gguf_str("general.file_type") + struct.pack(
        "<II", GGUFValueType.UINT32, gguf_quants.MIXES[mix][0])
    kvs = []
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):  # the reader's view of the header, not keys
            continue
        kvs.append(file_type if name == "general.file_type" else
                   b"".join(p.tobytes() for p in field.parts))
    if "general.file_type" not in reader.fields:
        kvs.append(file_type)

    infos, sizes, offset = [], [], 0
    for t in reader.tensors:
        ne = [int(d) for d in t.shape]
        elems, nbytes = gguf_quants.block_size(types[t.name])
        size = int(np.prod(ne)) // elems * nbytes
        infos.append(_gguf_str(t.name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne,
                                                     int(types[t.name]), offset))
        sizes.append(size)
        offset += -(-size // align) * align

    head = b"GGUF" + struct.pack("<IQQ", 3, len(reader.tensors), len(kvs))
    head += b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % align)
    counts = collections.Counter()
    with open(dst, "wb") as f:
        f.write(head)
        for t, size in zip(reader.tensors, sizes):
            target = types[t.name]
            counts[target.name] += 1
            if target == t.tensor_type:
                data = np.asarray(t.data)
            else:
                values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
                data = gguf_quants.quantize(values, target, workers)
            raw = memoryview(np.ascontiguousarray(data)).cast("B")
            if len(raw) != size:
                raise RuntimeError(f"requantize_gguf: {t.name}: {len(raw)} bytes, expected {size}")
            f.write(raw)
            f.write(b"\0" * (-size % align))
    return dict(counts)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="input GGUF file (any types the gguf package dequantizes)")
    p.add_argument("dst", help="output GGUF file")
    p.add_argument("--mix", required=True, type=str.upper, choices=sorted(gguf_quants.MIXES),
                   help="llama-quantize's file type, e.g. Q4_K_M")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="threads quantizing each tensor (default: the cores)")
    a = p.parse_args(argv)
    start = time.monotonic()
    counts = requantize(a.src, a.dst, a.mix, max(1, a.workers))
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    print(f"requantize_gguf: wrote {a.dst} ({a.mix}: {summary}) in "
          f"{time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
