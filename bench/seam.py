#!/usr/bin/env python3
"""Before/after speed of two relayoutd builds on the same models, in one run.

Made to show that a change costs no CPU speed (the device seam: the forward
pass moved behind engine/device's Device, whose CpuDevice calls the same
kernels). Each round runs, for every model, `generate` of both binaries one
after the other (before, after, then after, before in the next round, so a
drift of the machine hits both), with the same prompt, threads and greedy
decoding:

  relayoutd generate --model M --prompt TEXT --max-tokens D --temperature 0
            --layout auto --threads T --timings-json FILE

and reads prefill and decode tokens/s from FILE. It prints the median of the
rounds per binary and the ratio after/before, with the spread (min-max over
rounds) so "within noise" can be judged from the numbers.

  bench/seam.py --before /tmp/before/server/relayoutd --after build/server/relayoutd \
                --model ~/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf \
                --model /tmp/q4_0_1b.gguf --rounds 5

Run it on an idle machine: the numbers are as good as the machine is quiet.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def prompt_text(words):
    with open(os.path.join(ROOT, "tests/data/perplexity_text.txt"), encoding="utf-8") as f:
        return " ".join(f.read().split()[:words])


def run(binary, model, prompt, decode_tokens, threads, layout):
    with tempfile.TemporaryDirectory() as tmp:
        timings = os.path.join(tmp, "t.json")
        cmd = [binary, "generate", "--model", model, "--prompt", prompt, "--max-tokens",
               str(decode_tokens), "--temperature", "0", "--seed", "0", "--layout", layout,
               "--threads", str(threads), "--timings-json", timings]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"seam.py: {' '.join(cmd[:4])} failed ({r.returncode}):\n{r.stderr[-2000:]}")
        with open(timings, encoding="utf-8") as f:
            t = json.load(f)
        t["text"] = r.stdout
        return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the relayoutd binary before the change")
    ap.add_argument("--after", default=os.path.join(ROOT, "build/server/relayoutd"))
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt-words", type=int, default=256)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--layout", default="auto")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    prompt = prompt_text(args.prompt_words)
    results = {}
    for model in args.model:
        runs = {"before": [], "after": []}
        for i in range(args.rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for which in order:
                binary = args.before if which == "before" else args.after
                runs[which].append(run(binary, model, prompt, args.decode_tokens, args.threads,
                                       args.layout))
        same_text = runs["before"][0]["text"] == runs["after"][0]["text"]
        results[os.path.basename(model)] = {"runs": runs, "same_text": same_text}
        print(f"\n{os.path.basename(model)}: {runs['after'][0]['prompt_tokens']} prompt tokens, "
              f"{runs['after'][0]['generated_tokens']} decoded, {args.threads} threads, "
              f"{args.rounds} rounds, greedy text {'equal' if same_text else 'DIFFERENT'}")
        print(f"  {'':8} {'before':>22} {'after':>22} {'after/before':>13}")
        for key, name in (("prefill_tokens_per_second", "prefill"),
                          ("decode_tokens_per_second", "decode")):
            b = [r[key] for r in runs["before"]]
            a = [r[key] for r in runs["after"]]
            mb, ma = statistics.median(b), statistics.median(a)
            print(f"  {name:8} {mb:8.1f} ({min(b):6.1f}-{max(b):6.1f}) "
                  f"{ma:8.1f} ({min(a):6.1f}-{max(a):6.1f}) {ma / mb:13.3f}")
    if args.json_out:
        for r in results.values():
            for runs in r["runs"].values():
                for t in runs:
                    t.pop("text", None)
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
