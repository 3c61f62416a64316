#!/usr/bin/env python3
"""The reference dequantizers against the PyPI gguf package, block for block.

Two checks, each requiring bitwise equality of every float32 that dequant_tool
(kernels/cpu/reference/dequant_tool.cc) writes with gguf.quants.dequantize:

  random  for each quantized type, blocks of random bytes whose f16 scale
          fields are replaced by random finite halves (zero, subnormal and
          normal, |x| < 256, either sign) so no product overflows; for F16 and
          BF16 every one of the 65536 bit patterns, NaNs and infinities
          included; for F32 random bit patterns.
  files   every tensor of every ../shared/models/synthetic-kquant/*.gguf,
          llama.cpp's own quantizations.

Bitwise equality holds for every type: the package's numpy does the float
operations of ggml's dequantize_row_* in the same order (d * sc first, then
times q, then minus dmin * m), each rounded to float32, and the reference
fuses no multiply-add (dequant.cc). The check therefore tolerates 0 ULP.

Prints, per type, the number of blocks checked. Run by CTest (label unit):
exits 77 (skipped) when the gguf package is missing from the venv or the
shared models are, and 1 instead under RELAYOUT_REQUIRE_TEST_DATA=1 (CI), where
missing data is a broken set-up (tests/testing/require_test_data.cc).

Usage: dequant_gguf_check.py --tool PATH --shared-dir DIR
"""

import argparse
import collections
import glob
import os
import subprocess
import sys

import numpy as np

SKIP = 77

# Byte offsets of the f16 scale fields of each quantized type's block.
HALF_FIELDS = {
    "Q8_0": (0,),
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "IQ4_NL": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}
FLOAT_TYPES = ("F32", "F16", "BF16")
RANDOM_BLOCKS = 4096
SEED = 13


def skip(reason):
    """Exit code of a skip: 77, or 1 under RELAYOUT_REQUIRE_TEST_DATA=1 (CI)."""
    if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1":
        print(f"RELAYOUT_REQUIRE_TEST_DATA: skipped, which is a failure here: {reason}",
              file=sys.stderr)
        return 1
    print(f"skipped: {reason}", file=sys.stderr)
    return SKIP


def run_tool(tool, name, raw):
    """The tool's float32s for raw, the bytes of whole blocks of type name."""
    proc = subprocess.run([tool, name], input=raw, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {name}: exit {proc.returncode}: {proc.stderr.decode()}")
    return np.frombuffer(proc.stdout, dtype="<f4")


def compare(name, want, got, block_elems, what):
    """None when want and got are bitwise equal, else a description of the first difference."""
    want = np.ascontiguousarray(want, dtype=np.float32).reshape(-1)
    if got.shape != want.shape:
        return f"{name} {what}: {got.size} floats from the tool, {want.size} from gguf"
    diff = np.nonzero(want.view(np.uint32) != got.view(np.uint32))[0]
    if diff.size == 0:
        return None
    i = diff[0]
    return (f"{name} {what}: {diff.size} of {want.size} floats differ; first at element {i} "
            f"(block {i // block_elems}): gguf {float(want[i])!r} ({want.view(np.uint32)[i]:#010x}), "
            f"tool {float(got[i])!r} ({got.view(np.uint32)[i]:#010x})")


def random_blocks(gguf, rng, name):
    """Raw bytes of random blocks of type name, with finite f16 scales."""
    qtype = gguf.GGMLQuantizationType[name]
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if name in ("F16", "BF16"):
        return np.arange(1 << 16, dtype="<u2").view(np.uint8)
    if name == "F32":
        return rng.integers(0, 1 << 32, RANDOM_BLOCKS, dtype="<u4").view(np.uint8)
    blocks = rng.integers(0, 256, (RANDOM_BLOCKS, type_size), dtype=np.uint8)
    for offset in HALF_FIELDS[name]:
        # Magnitudes below 0x5c00 (2^8): exponent field at most 22.
        bits = rng.integers(0, 0x5c00, RANDOM_BLOCKS, dtype="<u2")
        bits |= rng.integers(0, 2, RANDOM_BLOCKS, dtype="<u2") << 15
        blocks[:, offset:offset + 2] = bits.view(np.uint8).reshape(RANDOM_BLOCKS, 2)
    return blocks.reshape(-1)


def check_random(gguf, tool, counts, failures):
    rng = np.random.default_rng(SEED)
    for name in FLOAT_TYPES + tuple(HALF_FIELDS):
        qtype = gguf.GGMLQuantizationType[name]
        block_elems, type_size = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_blocks(gguf, rng, name)
        want = gguf.quants.dequantize(raw, qtype)
        error = compare(name, want, run_tool(tool, name, raw.tobytes()), block_elems, "random")
        if error:
            failures.append(error)
        counts[name]["random"] += raw.size // type_size


def check_files(gguf, tool, paths, counts, failures):
    # All tensors of one type go through the tool in one run.
    raws = collections.defaultdict(list)
    wants = collections.defaultdict(list)
    for path in paths:
        for tensor in gguf.GGUFReader(path).tensors:
            name = tensor.tensor_type.name
            raw = np.ascontiguousarray(tensor.data).view(np.uint8).reshape(-1)
            raws[name].append(raw)
            wants[name].append(gguf.quants.dequantize(raw, tensor.tensor_type).reshape(-1))
    for name in sorted(raws):
        qtype = gguf.GGMLQuantizationType[name]
        block_elems, type_size = gguf.GGML_QUANT_SIZES[qtype]
        raw = np.concatenate(raws[name])
        got = run_tool(tool, name, raw.tobytes())
        error = compare(name, np.concatenate(wants[name]), got, block_elems, "files")
        if error:
            failures.append(error)
        counts[name]["files"] += raw.size // type_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True, help="the dequant_tool executable")
    parser.add_argument("--shared-dir", required=True, help="the shared test data (../shared)")
    args = parser.parse_args()

    try:
        import gguf  # noqa: PLC0415 (a missing package is a skip, not an ImportError)
        import gguf.quants  # noqa: PLC0415
    except ImportError as e:
        return skip(f"the gguf package is not installed ({e})")

    counts = collections.defaultdict(collections.Counter)
    failures = []
    check_random(gguf, args.tool, counts, failures)
    paths = sorted(glob.glob(os.path.join(args.shared_dir, "models", "synthetic-kquant", "*.gguf")))
    if paths:
        check_files(gguf, args.tool, paths, counts, failures)

    for name in sorted(counts):
        print(f"{name:7s} {counts[name]['random']:6d} random blocks, "
              f"{counts[name]['files']:6d} blocks from files")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if failures:
        return 1
    if not paths:
        return skip(f"no {args.shared_dir}/models/synthetic-kquant/*.gguf")
    print(f"all bitwise equal: {len(paths)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
