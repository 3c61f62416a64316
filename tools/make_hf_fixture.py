#!/usr/bin/env python3
"""Writes SmolLM2-135M-Instruct as a Hugging Face checkpoint folder, from its
Q4_1 GGUF, for the tests that load a folder as published today.

The folder holds what a download from the Hub holds:
  model-00001-of-00002.safetensors, model-00002-of-00002.safetensors
      BF16 tensors in HF naming (model.layers.N.self_attn.q_proj.weight, ...),
      dequantized from the GGUF with gguf.quants; q_proj/k_proj rows are put
      back in HF's order (the GGUF converter interleaves each head's two
      rotary halves; see unpermute below). Norms are F32 in the GGUF and are
      rounded to BF16 like the rest, as HF's own export of this model is.
  model.safetensors.index.json   {"metadata": {"total_size"}, "weight_map"}
  config.json                    LlamaForCausalLM, from the llama.* metadata
  tokenizer.json                 as tools/export_hf_tokenizer_json.py writes it
  tokenizer_config.json          special tokens by text, add_bos_token, and
                                 the GGUF's chat template
  generation_config.json         bos/eos/pad ids

So a folder run and a GGUF run differ only by the BF16 rounding of the
dequantized weights (and the kernels each dtype runs on).

Usage:
  .venv/bin/python tools/make_hf_fixture.py OUT_DIR [MODEL.gguf]
The GGUF defaults to $RELAYOUT_SMOLLM2_GGUF, else
$HOME/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf
(tools/fetch_default_model.sh fetches it).
"""
import json
import os
import struct
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_vectors import build_tokenizer, read_vocab  # noqa: E402

LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def default_gguf():
    env = os.environ.get("RELAYOUT_SMOLLM2_GGUF")
    if env:
        return env
    return os.path.expanduser("~/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def hf_name(name):
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    _, layer, rest = name.split(".", 2)
    return f"model.layers.{layer}.{LAYER_NAMES[rest]}"


def unpermute(w, heads):
    """Inverse of the GGUF converter's permute: it stores each head's rows as
    (pair, half) where HF has (half, pair), so RoPE rotates adjacent rows."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, rounding to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: [(name, uint16 bf16 array)]; returns total data bytes."""
    header, offset = {}, 0
    for name, data in tensors:
        header[name] = {"dtype": "BF16", "shape": list(data.shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, data in tensors:
            f.write(data.astype("<u2").tobytes())
    return offset


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR [MODEL.gguf]")
    out = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) == 3 else default_gguf()
    if not os.path.exists(path):
        sys.exit(f"{path}: no such file (tools/fetch_default_model.sh fetches it)")
    reader = GGUFReader(path)
    assert field(reader, "general.architecture") == "llama"
    heads = field(reader, "llama.attention.head_count")
    kv_heads = field(reader, "llama.attention.head_count_kv", heads)

    tensors = []
    for t in reader.tensors:
        # gguf lists ne0 (the row length) first; numpy wants rows first.
        shape = tuple(int(d) for d in reversed(t.shape))
        w = dequantize(t.data, t.tensor_type).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, heads)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, kv_heads)
        tensors.append((hf_name(t.name), to_bf16_bits(w)))
    names = {name for name, _ in tensors}
    tied = "lm_head.weight" not in names

    os.makedirs(out, exist_ok=True)
    # Two shards of about equal size, as the Hub's sharded uploads are split.
    total = sum(d.nbytes for _, d in tensors)
    shards, acc = [[], []], 0
    for item in tensors:
        shards[0 if acc < total / 2 else 1].append(item)
        acc += item[1].nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        write_safetensors(os.path.join(out, file), shard)
        weight_map.update({name: file for name, _ in shard})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}

    tokens, merges, types = read_vocab(path)
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    unk = field(reader, "tokenizer.ggml.unknown_token_id")
    pad = field(reader, "tokenizer.ggml.padding_token_id", eos)
    hidden = field(reader, "llama.embedding_length")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": field(reader, "llama.feed_forward_length"),
        "num_hidden_layers": field(reader, "llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "max_position_embeddings": field(reader, "llama.context_length"),
        "rms_norm_eps": float(np.float32(field(reader, "llama.attention.layer_norm_rms_epsilon"))),
        "rope_theta": field(reader, "llama.rope.freq_base", 10000.0),
        "rope_scaling": None,
        "vocab_size": len(tokens),
        "tie_word_embeddings": tied,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": "bfloat16",
    }
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "unk_token": tokens[unk],
        "pad_token": tokens[pad],
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": False,
        "chat_template": field(reader, "tokenizer.chat_template"),
        "model_max_length": config["max_position_embeddings"],
    }
    generation_config = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}
    for name, doc in (("model.safetensors.index.json", index), ("config.json", config),
                      ("tokenizer_config.json", tokenizer_config),
                      ("generation_config.json", generation_config)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    build_tokenizer(tokens, merges, types).save(os.path.join(out, "tokenizer.json"), pretty=False)
    print(f"wrote {out} ({len(tensors)} tensors, {total} bytes of BF16 in 2 shards)")


if __name__ == "__main__":
    main()
