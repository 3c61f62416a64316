#!/usr/bin/env python3
"""Copies a GGUF with another GGUF's tokenizer: every tokenizer.* key of the donor.

tools/gen_checkpoint.py writes no tokenizer, and neither relayoutd nor
llama.cpp loads a GGUF without one (`tokenizer.ggml.model` is required), so a
synthetic model cannot be timed on a text prompt as it is. This copies MODEL
to OUT with the donor's tokenizer.* keys added (the model's own tokenizer.*
keys, if any, dropped) and everything else, tensors included, unchanged. The
model's vocabulary must have exactly as many rows as the donor's tokens:
generate it with --vocab set to that count, e.g. 49152 for SmolLM2's
(a multiple of 256, so the embedding and output head stay whole super-blocks
of the K-quants):

  tools/gen_checkpoint.py --format gguf --dtype Q4_K_M --hidden 2048 --ffn 8192 \\
      --layers 16 --heads 32 --kv-heads 8 --vocab 49152 --no-tie --fill bits \\
      --out /tmp/1b_Q4_K_M.notok.gguf
  bench/graft_tokenizer.py /tmp/1b_Q4_K_M.notok.gguf \\
      ~/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/1b_Q4_K_M.gguf

Needs the PyPI `gguf` package (tools/requirements.txt).
"""
import argparse
import sys

import gguf


def vocab_rows(reader):
    for t in reader.tensors:
        if t.name == "token_embd.weight":
            return int(t.shape[1])  # GGUF lists dims innermost first: [hidden, vocab]
    sys.exit("graft_tokenizer: the model has no token_embd.weight")


def copy_fields(reader, writer, keep):
    for field in reader.fields.values():
        # GGUF.* are the header's own fields and general.architecture is
        # written by GGUFWriter's constructor: copying them would duplicate keys.
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        if not keep(field.name):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the GGUF to copy (its tensors and non-tokenizer keys)")
    ap.add_argument("donor", help="a GGUF whose tokenizer.* keys are copied")
    ap.add_argument("out", help="the GGUF to write")
    a = ap.parse_args()

    model = gguf.GGUFReader(a.model)
    donor = gguf.GGUFReader(a.donor)
    tokens = donor.fields.get(gguf.Keys.Tokenizer.LIST)
    if tokens is None:
        sys.exit(f"graft_tokenizer: {a.donor} has no {gguf.Keys.Tokenizer.LIST}")
    n_tokens, n_rows = len(tokens.data), vocab_rows(model)
    if n_tokens != n_rows:
        sys.exit(f"graft_tokenizer: the donor has {n_tokens} tokens but the model's embedding "
                 f"{n_rows} rows; regenerate the model with --vocab {n_tokens}")

    arch = model.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(a.out, arch)
    copy_fields(model, writer, lambda name: not name.startswith("tokenizer."))
    copy_fields(donor, writer, lambda name: name.startswith("tokenizer."))
    for t in model.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in model.tensors:
        writer.write_tensor_data(t.data)
    writer.close()


if __name__ == "__main__":
    main()
