#!/usr/bin/env python3
"""Prefill and decode speed of relayoutd against llama.cpp on one GGUF.

One run measures, at 1 thread and at all cores (--threads to change):
  - relayoutd `generate --layout native` (the checkpoint's own layout),
  - relayoutd `generate --layout auto`   (the preferred layout),
  - llama.cpp through llama-cpp-python    (same GGUF, same threads, n_batch 512,
                                           its CPU repack on and flash attention
                                           on, as llama.cpp does by default on
                                           the CPU),
each on a 512-token prompt (prefill tokens/s) followed by 128 new tokens (decode
tokens/s), and prints a table with the ratios preferred/native prefill and
relayoutd/llama.cpp prefill and decode, and peak RSS at ready of both.
The model defaults to SmolLM2-135M-Instruct Q4_1 (tools/fetch_default_model.sh);
any GGUF with a tokenizer works (bench/graft_tokenizer.py gives a synthetic
model from tools/gen_checkpoint.py one).

relayoutd is run as a subprocess (build/server/relayoutd by default):
  relayoutd generate --model M --device cpu --prompt TEXT --max-tokens 128 --temperature 0
            --seed 0 --layout native|auto --threads T --timings-json FILE
(--device cpu: the CPU is what is compared, and probing for a GPU plugin would
map the CUDA runtime's libraries, about 150 MiB of RSS on a machine that has
them but no GPU) and its numbers are read from FILE (prompt_tokens, generated_tokens,
prefill_tokens_per_second, decode_tokens_per_second, load_seconds,
peak_rss_bytes, ready_peak_rss_bytes). Greedy decoding may stop at an end-of-generation token before
128 tokens: llama.cpp then decodes exactly as many tokens as relayoutd did, so
both rates cover the same work.

llama.cpp runs in a fresh child process per thread count, so its peak RSS
(VmHWM from /proc/self/status, read once the model is loaded and one warm-up
token evaluated: "at ready") is its own. relayoutd's RSS at ready is its
ready_peak_rss_bytes (VmHWM once the weights are converted and the KV cache
made, before the prompt); both engines' VmHWM at the end, prefill workspace
included, are printed beside it (relayoutd's peak_rss_bytes, llama.cpp's
(peak_rss_bytes_at_end). llama.cpp's prefill is one llama_decode of the
512 prompt tokens (n_batch 512), its decode one llama_decode per token with
the argmax of the last logits fed back; both are timed by llama.cpp's own
counters (llama_perf_context: t_p_eval_ms, t_eval_ms), which leave out the
Python binding's overhead. llama.cpp's own tools (llama-cli, llama-server,
llama-bench) default to flash attention "auto", which turns it on for the CPU;
the binding defaults to off, so it is set on explicitly
(--llamacpp-flash-attn off to compare without).

The prompt is the first 512 tokens (by llama.cpp's tokenizer, which equals
relayoutd's on SmolLM2: tests/data/smollm2_tokenizer_vectors.json) of
tests/data/perplexity_text.txt, detokenized.

The llama.cpp to hold against is a native build (GGML_NATIVE=ON, shared
libraries, Release) of the llama.cpp vendored in llama-cpp-python's sdist,
whose ctypes declarations match it; the bindings are then installed without
compiling anything and pointed at that build's libllama.so:
  cmake -S llama_cpp_python-0.3.36/vendor/llama.cpp -B build -DGGML_NATIVE=ON \
      -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release && cmake --build build -j
  python3 -m venv /tmp/llamavenv36
  CMAKE_ARGS=-DLLAMA_BUILD=OFF /tmp/llamavenv36/bin/pip install llama_cpp_python-0.3.36.tar.gz
  LLAMA_CPP_LIB_PATH=$PWD/build/bin \
      /tmp/llamavenv36/bin/python bench/decode.py [--model M] [--json-out results.json]
Or let pip compile its llama.cpp at install time (about 13 minutes on 2 cores):
  python3 -m venv /tmp/llamavenv
  CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/llamavenv/bin/pip install llama-cpp-python==0.3.16
  /tmp/llamavenv/bin/python bench/decode.py [--model M] [--json-out results.json]
Neither is in tools/requirements.txt. Run it on an idle machine: the numbers
are as good as the machine is quiet.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def vm_hwm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


# --- llama.cpp, in a child process ------------------------------------------------------------


def llamacpp_child(model, threads, prompt_ids, decode_tokens, flash_attn):
    import llama_cpp
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads,
                n_threads_batch=threads, logits_all=False, flash_attn=flash_attn, verbose=False,
                seed=0)
    load_seconds = time.perf_counter() - start
    ctx = llm._ctx.ctx
    # One token through the graph allocates the compute buffers: "ready".
    # Synchronized, or llama.cpp would count it in the timed run's counters.
    llm.eval(prompt_ids[:1])
    llama_cpp.llama_synchronize(ctx)
    rss_ready = vm_hwm_bytes()
    llm.reset()  # the next eval drops the KV cache from position 0

    import numpy as np

    def last_argmax():
        # Without logits_all the binding keeps no scores: read llama.cpp's.
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))))

    llama_cpp.llama_perf_context_reset(ctx)
    llm.eval(prompt_ids)
    token = last_argmax()
    for _ in range(decode_tokens):
        llm.eval([token])
        token = last_argmax()
    perf = llama_cpp.llama_perf_context(ctx)
    return {
        "prompt_tokens": perf.n_p_eval,
        "generated_tokens": perf.n_eval,
        "prefill_seconds": perf.t_p_eval_ms / 1e3,
        "decode_seconds": perf.t_eval_ms / 1e3,
        "prefill_tokens_per_second": perf.n_p_eval / (perf.t_p_eval_ms / 1e3),
        "decode_tokens_per_second": perf.n_eval / (perf.t_eval_ms / 1e3),
        "load_seconds": load_seconds,
        "peak_rss_bytes": rss_ready,
        "peak_rss_bytes_at_end": vm_hwm_bytes(),
        "flash_attn": flash_attn,
        "llama_cpp_python_version": llama_cpp.__version__,
    }


def run_llamacpp(args, threads, prompt_ids, decode_tokens):
    cmd = [sys.executable, os.path.abspath(__file__), "--child-llamacpp", json.dumps({
        "model": args.model, "threads": threads, "prompt_ids": prompt_ids,
        "decode_tokens": decode_tokens, "flash_attn": args.llamacpp_flash_attn == "on"})]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"decode.py: llama.cpp child failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- relayoutd, as a subprocess ---------------------------------------------------------------


def check_relayoutd(binary):
    if not os.access(binary, os.X_OK):
        sys.exit(f"decode.py: {binary} is not an executable; build it (ninja -C build relayoutd) "
                 "or pass --relayoutd")
    r = subprocess.run([binary, "help"], capture_output=True, text=True)
    commands = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
    if "generate" not in commands:
        sys.exit(f"decode.py: {binary} has no `generate` command (its commands: "
                 f"{', '.join(commands) or 'none listed'}); build a relayoutd that has it")


def run_relayoutd(args, layout, threads, prompt):
    with tempfile.TemporaryDirectory() as tmp:
        timings = os.path.join(tmp, "timings.json")
        cmd = [args.relayoutd, "generate", "--model", args.model, "--device", "cpu",
               "--prompt", prompt, "--max-tokens", str(args.decode_tokens), "--temperature", "0",
               "--seed", "0", "--layout", layout, "--threads", str(threads),
               "--timings-json", timings]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"decode.py: relayoutd generate --layout {layout} --threads {threads} "
                     f"failed ({r.returncode}):\n{r.stderr[-4000:]}")
        try:
            with open(timings) as f:
                t = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"decode.py: relayoutd wrote no readable --timings-json ({e})")
    missing = [k for k in ("prompt_tokens", "generated_tokens", "prefill_tokens_per_second",
                           "decode_tokens_per_second", "peak_rss_bytes",
                           "ready_peak_rss_bytes") if k not in t]
    if missing:
        sys.exit(f"decode.py: relayoutd's timings JSON lacks {', '.join(missing)}")
    return t


def rss_at_ready(m):
    """VmHWM at ready: relayoutd's ready_peak_rss_bytes, llama.cpp's peak_rss_bytes."""
    return m.get("ready_peak_rss_bytes", m.get("peak_rss_bytes"))


def rss_at_end(m):
    """VmHWM once the run is done: relayoutd's peak_rss_bytes, llama.cpp's _at_end."""
    return m.get("peak_rss_bytes_at_end", m.get("peak_rss_bytes"))


# --- driver -----------------------------------------------------------------------------------


def make_prompt(model, n):
    from llama_cpp import Llama

    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    with open(os.path.join(ROOT, "tests/data/perplexity_text.txt"), encoding="utf-8") as f:
        ids = llm.tokenize(f.read().encode(), add_bos=False)[:n]
    prompt = llm.detokenize(ids).decode("utf-8")
    # Detokenizing and tokenizing again can merge across the cut; trim until
    # the text is exactly n tokens.
    ids = llm.tokenize(prompt.encode(), add_bos=False)
    while len(ids) > n:
        ids = ids[:-1]
        prompt = llm.detokenize(ids).decode("utf-8", errors="ignore")
        ids = llm.tokenize(prompt.encode(), add_bos=False)
    return prompt, ids


def fmt_rate(x):
    return f"{x:9.1f}" if x is not None else "        -"


def ratio(a, b):
    return f"{a / b:6.2f}x" if a and b else "     -"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child-llamacpp", help=argparse.SUPPRESS)
    ap.add_argument("--model", help="the GGUF (default: tools/fetch_default_model.sh)")
    ap.add_argument("--relayoutd", default=os.path.join(ROOT, "build/server/relayoutd"))
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}",
                    help="comma-separated thread counts (default: 1 and all cores)")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--llamacpp-flash-attn", choices=["on", "off"], default="on",
                    help="llama.cpp's flash attention (default on, as its 'auto' on the CPU)")
    ap.add_argument("--skip-relayoutd", action="store_true", help="llama.cpp only")
    ap.add_argument("--json-out", help="also write every measurement here")
    args = ap.parse_args()

    if args.child_llamacpp:
        c = json.loads(args.child_llamacpp)
        print(json.dumps(llamacpp_child(c["model"], c["threads"], c["prompt_ids"],
                                        c["decode_tokens"], c["flash_attn"])))
        return

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("decode.py: llama-cpp-python is not installed in this Python; see the header "
                 "of bench/decode.py for the venv to run it with")
    if not args.model:
        args.model = subprocess.run([os.path.join(ROOT, "tools/fetch_default_model.sh")],
                                    check=True, capture_output=True, text=True).stdout.strip()
    if not args.skip_relayoutd:
        check_relayoutd(args.relayoutd)
    prompt, prompt_ids = make_prompt(args.model, args.prompt_tokens)
    threads_list = [int(t) for t in args.threads.split(",")]

    rows = []
    for threads in threads_list:
        native = auto = None
        decode_tokens = args.decode_tokens
        if not args.skip_relayoutd:
            native = run_relayoutd(args, "native", threads, prompt)
            auto = run_relayoutd(args, "auto", threads, prompt)
            decode_tokens = auto["generated_tokens"]
        # llama.cpp's first token comes from the prefill's logits, as
        # relayoutd's does: it evaluates one token fewer than it generates.
        llama = run_llamacpp(args, threads, prompt_ids, max(decode_tokens - 1, 1))
        rows.append({"threads": threads, "native": native, "auto": auto, "llama.cpp": llama})

    print(f"{os.path.basename(args.model)}: prefill {len(prompt_ids)} tokens, decode up to "
          f"{args.decode_tokens} tokens; tokens/s, peak RSS in MiB at ready and at the end")
    print(f"{'threads':>7} {'engine':<18} {'prefill':>9} {'decode':>9} {'RSS ready':>9} "
          f"{'RSS end':>8}")
    for row in rows:
        for name in ("native", "auto", "llama.cpp"):
            m = row[name]
            if m is None:
                continue
            label = {"native": "relayoutd native", "auto": "relayoutd auto"}.get(name, name)
            ready, end = rss_at_ready(m), rss_at_end(m)
            print(f"{row['threads']:>7} {label:<18} {fmt_rate(m['prefill_tokens_per_second'])} "
                  f"{fmt_rate(m['decode_tokens_per_second'])} "
                  f"{ready / 2**20 if ready else float('nan'):9.1f} "
                  f"{end / 2**20 if end else float('nan'):8.1f}")
    print()
    heads = ["prefill auto/native", "prefill relayoutd/llama.cpp", "decode relayoutd/llama.cpp",
             "RSS at ready relayoutd/llama.cpp", "RSS at end"]
    print(f"{'threads':>7}  " + "  ".join(heads) + "    (relayoutd = --layout auto)")
    for row in rows:
        n, a, l = row["native"], row["auto"], row["llama.cpp"]
        if a is None:
            continue
        cells = [ratio(a["prefill_tokens_per_second"], n["prefill_tokens_per_second"]),
                 ratio(a["prefill_tokens_per_second"], l["prefill_tokens_per_second"]),
                 ratio(a["decode_tokens_per_second"], l["decode_tokens_per_second"]),
                 ratio(rss_at_ready(a), rss_at_ready(l)), ratio(rss_at_end(a), rss_at_end(l))]
        print(f"{row['threads']:>7}  " + "  ".join(c.rjust(len(h)) for c, h in zip(cells, heads)))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": os.path.basename(args.model), "prompt_tokens": len(prompt_ids),
                       "decode_tokens": args.decode_tokens, "cpu_count": os.cpu_count(),
                       "rows": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
