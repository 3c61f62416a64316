#!/usr/bin/env python3
"""Writes tests/data/smollm2_llamacpp_reference.json: llama.cpp's perplexity
and greedy continuations on SmolLM2-135M-Instruct Q4_1, the numbers that
relayoutd's forward pass is checked against (perplexity within 1%, the first
32 greedy tokens equal).

llama.cpp comes from the PyPI package llama-cpp-python, which compiles
llama.cpp from source at install time (about 13 minutes on this project's
2-core machines). That is too slow for every CI run, so it is NOT in
tools/requirements.txt: install it into a venv of its own, run this script by
hand when the reference must change, and commit the JSON it writes:

  python3 -m venv /tmp/llamavenv
  CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/llamavenv/bin/pip install llama-cpp-python==0.3.16
  /tmp/llamavenv/bin/python tools/llamacpp_reference.py --model "$(tools/fetch_default_model.sh)"

The default model requantized by our own quantizer (tools/requantize_gguf.py,
as tools/requantize_default_model.sh runs it) has a reference of its own per
mix, tests/data/smollm2_<mix>_llamacpp_reference.json, which records the
file's sha256 and the requantize command (--model-made-by). A native llama.cpp
build (shared libraries) serves as well as the package's own: install the
bindings without building llama.cpp and point them at the build's libllama.so:

  CMAKE_ARGS=-DLLAMA_BUILD=OFF /tmp/llamavenv/bin/pip install llama_cpp_python-0.3.36.tar.gz
  export LLAMA_CPP_LIB_PATH=/path/to/llama.cpp/build/bin
  /tmp/llamavenv/bin/python tools/llamacpp_reference.py \
      --model "$(tools/requantize_default_model.sh Q4_K_M)" \
      --out tests/data/smollm2_q4_k_m_llamacpp_reference.json --model-made-by \
      "python tools/requantize_gguf.py SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_K_M.gguf --mix Q4_K_M"

What is computed (all in one process, n_threads as given, default 2):

Perplexity. tests/data/perplexity_text.txt is tokenized whole with llama.cpp's
tokenizer (no BOS: the GGUF's tokenizer.ggml.add_bos_token is false, so
llama.cpp adds none, and parse_special off). The ids are cut into consecutive,
non-overlapping windows of --ctx (512) tokens; a trailing partial window is
dropped. Each window is evaluated from an empty KV cache with all logits kept
(logits_all); position i's logits score token i+1, so a window contributes
ctx-1 predictions (its first token is context only). Perplexity is
exp(mean negative log-likelihood) over all scored tokens, with the log-softmax
computed in float64 from llama.cpp's float32 logits. (llama.cpp's own
`llama-perplexity` tool scores only the second half of each window, so its
number differs from this one.)

Greedy. Each prompt is tokenized as above (no BOS, specials not parsed unless
the prompt entry says so), evaluated, and the argmax of the last logits is
appended, 48 times or until an end-of-generation token, which is included.
Each step records the gap between the top two logits, so a mismatch on a
near-tie can be told apart from a real bug.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import sys

import numpy as np

# Chosen among candidates so that over the first 32 greedy tokens the top two
# logits never come closer than ~0.08: relayoutd's kernels round differently
# (llama.cpp quantizes activations to 8 bits for Q4_1 dot products), and a
# near-tie could flip on rounding alone.
PROMPTS = [
    {"name": "facts", "text": "The capital of France is"},
    {"name": "science", "text": "Photosynthesis is the process by which plants"},
    {"name": "letter", "text": "Dear Sir or Madam,\n\nI am writing to"},
    {"name": "arithmetic", "text": "Q: What is 12 plus 7?\nA:"},
    {"name": "translate", "text": "Translate to French: Good morning, how are you?\n"},
    {"name": "code", "text": "def add(a, b):\n"},
    {
        "name": "chat_haiku",
        "text": "<|im_start|>user\nWrite a haiku about the ocean.<|im_end|>\n<|im_start|>assistant\n",
        "parse_special": True,
    },
    {
        "name": "chat_capital",
        "text": "<|im_start|>user\nWhat is the capital of Japan?<|im_end|>\n<|im_start|>assistant\n",
        "parse_special": True,
    },
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log_softmax(logits):
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def perplexity(llm, ids, ctx):
    windows = len(ids) // ctx
    if windows == 0:
        sys.exit(f"the text has {len(ids)} tokens, fewer than one window of {ctx}")
    total_nll = 0.0
    scored = 0
    per_window = []
    for w in range(windows):
        chunk = ids[w * ctx:(w + 1) * ctx]
        llm.reset()
        llm.eval(chunk)
        logp = log_softmax(np.asarray(llm.scores[:ctx - 1], dtype=np.float32))
        nll = -logp[np.arange(ctx - 1), np.asarray(chunk[1:])].sum()
        per_window.append(round(math.exp(nll / (ctx - 1)), 6))
        total_nll += nll
        scored += ctx - 1
    return {
        "perplexity": round(math.exp(total_nll / scored), 6),
        "mean_nll": round(total_nll / scored, 8),
        "windows": windows,
        "scored_tokens": scored,
        "text_tokens": len(ids),
        "per_window_perplexity": per_window,
    }


def greedy(llm, ids, n_new, eog):
    llm.reset()
    llm.eval(ids)
    out, gaps = [], []
    for _ in range(n_new):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.argpartition(-logits, 2)[:2]
        top2 = top2[np.argsort(-logits[top2])]
        token = int(top2[0])
        out.append(token)
        gaps.append(round(float(logits[top2[0]] - logits[top2[1]]), 4))
        if token in eog:
            break
        llm.eval([token])
    return out, gaps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--text", default=os.path.join(root, "tests/data/perplexity_text.txt"))
    default_out = os.path.join(root, "tests/data/smollm2_llamacpp_reference.json")
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-made-by", metavar="COMMAND",
                    help="how --model was made (say, the tools/requantize_gguf.py command), "
                         "recorded in the JSON as model_made_by")
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=args.model, n_ctx=args.ctx, n_batch=args.ctx, n_threads=args.threads,
                n_threads_batch=args.threads, logits_all=True, verbose=False, seed=0)
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "").lower() == "true"
    vocab = llm._model.vocab
    eog = {t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    # tokenize(add_bos=True) asks for the model's special tokens, which for
    # this GGUF (add_bos_token false) adds none: check that it agrees.
    probe = "Hello world"
    default_ids = llm.tokenize(probe.encode(), add_bos=True)
    plain_ids = llm.tokenize(probe.encode(), add_bos=False)

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    text_ids = llm.tokenize(text.encode(), add_bos=False, special=False)
    ppl = perplexity(llm, text_ids, args.ctx)
    print(f"perplexity {ppl['perplexity']:.4f} over {ppl['scored_tokens']} tokens "
          f"({ppl['windows']} windows of {args.ctx})", file=sys.stderr)

    continuations = []
    for p in PROMPTS:
        ids = llm.tokenize(p["text"].encode(), add_bos=False, special=p.get("parse_special", False))
        new, gaps = greedy(llm, ids, args.new_tokens, eog)
        text_out = llm.detokenize(new).decode("utf-8", errors="replace")
        print(f"[{p['name']}] {p['text']!r} -> {text_out!r}", file=sys.stderr)
        continuations.append({
            "name": p["name"],
            "prompt": p["text"],
            "parse_special": p.get("parse_special", False),
            "prompt_ids": ids,
            "generated_ids": new,
            "generated_text": text_out,
            "top2_logit_gaps": gaps,
            "min_top2_gap_first_32": min(gaps[:32]) if gaps else None,
            "stopped_at_end_of_generation": bool(new) and new[-1] in eog,
        })

    rel_text = os.path.relpath(args.text, root)
    doc = {
        "model": os.path.basename(args.model),
        "model_sha256": sha256(args.model),
        **({"model_made_by": args.model_made_by} if args.model_made_by else {}),
        "llama_cpp_python_version": llama_cpp.__version__,
        "command": shlex.join(
            ["python", "tools/llamacpp_reference.py", "--model", os.path.basename(args.model)]
            + ([f"--out={os.path.relpath(args.out, root)}"] if args.out != default_out else [])
            + [f"--ctx={args.ctx}", f"--new-tokens={args.new_tokens}", f"--threads={args.threads}"]
            + ([f"--model-made-by={args.model_made_by}"] if args.model_made_by else [])),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "settings": {
            "add_bos_token_metadata": add_bos,
            "bos_added_by_default": default_ids != plain_ids,
            "n_ctx": args.ctx,
            "n_batch": args.ctx,
            "n_threads": args.threads,
            "logits_all": True,
            "kv_cache": "fresh for each window and each prompt",
        },
        "perplexity": {
            "text": rel_text,
            "text_sha256": sha256(args.text),
            "method": f"whole text tokenized without BOS; non-overlapping windows of {args.ctx} "
                      "tokens, trailing partial window dropped; each window from an empty KV "
                      f"cache, logits at positions 0..{args.ctx - 2} score tokens 1..{args.ctx - 1}"
                      "; perplexity = exp(mean NLL over all scored tokens), log-softmax in float64",
            **ppl,
        },
        "greedy": {
            "method": f"argmax of the last logits, {args.new_tokens} new tokens or through the "
                      "first end-of-generation token; prompt without BOS",
            "end_of_generation_ids": sorted(eog),
            "continuations": continuations,
        },
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
