#!/usr/bin/env python3
"""Writes a Hugging Face tokenizer.json for SmolLM2 from the vocabulary and
merges in its GGUF, with the `tokenizers` package (tools/requirements.txt).

The tokenizer is the one tools/gen_tokenizer_vectors.py builds (BPE over the
GGUF's tokens and merges, pre-tokenizer Sequence[Digits(individual_digits),
ByteLevel], the control tokens as special added tokens), saved with
Tokenizer.save(), so the file is spelled exactly as the package writes
tokenizer.json files. The engine's HF tokenizer.json loader is tested on it
(tests/hf_tokenizer_json_test.cc generates it into the build directory: the
file is ~2 MB and not committed).

Usage:
  .venv/bin/python tools/export_hf_tokenizer_json.py MODEL.gguf OUT.json
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_vectors import build_tokenizer, read_vocab  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} MODEL.gguf OUT.json")
    path, out = sys.argv[1:]
    tokens, merges, types = read_vocab(path)
    tok = build_tokenizer(tokens, merges, types)
    # Written beside the destination, then renamed, so that a reader never
    # sees a half-written file.
    tmp = f"{out}.tmp{os.getpid()}"
    tok.save(tmp, pretty=False)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(tokens)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    main()
