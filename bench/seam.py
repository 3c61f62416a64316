#!/usr/bin/env python3
"""Before/after CPU speed of two builds on the same models, in one run.

Made to show that a change to the forward pass's plumbing costs no CPU speed
(the device seam: the pass moved behind engine/device's Device, whose
CpuDevice calls the same kernels). It runs bench_forward (bench/forward.cc:
prefill of --prompt token ids, then --decode greedy steps, best of --reps)
from both build trees, alternating (before, after, then after, before in the
next round, so a drift of the machine hits both), and prints per model the
median over rounds of prefill and decode tokens/s for each build, their
spread (min-max) and the ratio after/before. The greedy checksum of both must
match: the same tokens came out.

  bench/seam.py --before /tmp/before/build/bench/bench_forward \\
                --after build/bench/bench_forward \\
                --model ~/.cache/relayoutd/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
                --model /tmp/q4_0_1b.gguf --rounds 5

Run it on an idle machine: the numbers are as good as the machine is quiet.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run(binary, model, args):
    cmd = [binary, "--model", model, "--layout", args.layout, "--threads", str(args.threads),
           "--prompt", str(args.prompt), "--decode", str(args.decode), "--reps", str(args.reps)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"seam.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="bench_forward of the build before")
    ap.add_argument("--after", default=os.path.join(ROOT, "build/bench/bench_forward"))
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--layout", default="auto")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    results = {}
    for model in args.model:
        runs = {"before": [], "after": []}
        for i in range(args.rounds):
            for which in (("before", "after") if i % 2 == 0 else ("after", "before")):
                runs[which].append(run(getattr(args, which), model, args))
        same = {r["greedy_checksum"] for r in runs["before"] + runs["after"]}
        name = os.path.basename(model)
        results[name] = runs
        print(f"\n{name}: layout {args.layout}, {args.threads} threads, prompt {args.prompt}, "
              f"decode {args.decode}, {args.rounds} rounds; greedy tokens "
              f"{'equal' if len(same) == 1 else 'DIFFERENT'}")
        print(f"  {'tokens/s':8} {'before median (min-max)':>26} {'after median (min-max)':>26}"
              f" {'after/before':>13}")
        for key, label in (("prefill_tokens_per_second", "prefill"),
                           ("decode_tokens_per_second", "decode")):
            b = [r[key] for r in runs["before"]]
            a = [r[key] for r in runs["after"]]
            mb, ma = statistics.median(b), statistics.median(a)
            print(f"  {label:8} {mb:9.1f} ({min(b):7.1f}-{max(b):7.1f}) "
                  f"{ma:9.1f} ({min(a):7.1f}-{max(a):7.1f}) {ma / mb:13.3f}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
