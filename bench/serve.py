#!/usr/bin/env python3
"""Serving load generator: N concurrent Generate streams against `relayoutd serve`.

Starts `relayoutd serve --model M` on free loopback ports, generates the Python
stubs of proto/relayout/v1/*.proto into a temporary directory, waits for health
SERVING, then for each N in --concurrency (default 1,4,16) runs N clients at
once (grpc.aio, one asyncio task each), each sending --rounds Generate requests
one after the other: greedy, ignore_eos, exactly --max-new-tokens tokens, on
distinct prompts. It prints, per N:
  - aggregate generated tokens/s (all tokens of the level / its wall time),
  - time to first token (TTFT: request sent -> first token received), p50 and p99,
  - time per output token (TPOT: (last token - first token) / (tokens - 1)), p50 and p99,
and the ratio of the aggregate throughput at the largest N to N=1: the gain of
continuous batching (every running stream is decoded in one forward pass).

  .venv/bin/python bench/serve.py [--model M] [--relayoutd build/server/relayoutd]
                                  [--concurrency 1,4,16] [--max-new-tokens 64] [--rounds 2]
                                  [--json-out results.json]

The default model is SmolLM2-135M-Instruct Q4_1 (tools/fetch_default_model.sh).
The numbers are as good as the machine is quiet.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from relayoutd_process import Server, generate_stubs  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PROMPTS = [
    "Write a short story about a robot who learns to paint.",
    "Explain why the sky is blue to a ten year old.",
    "List three tips for staying focused while studying.",
    "What is the capital of France, and what is it famous for?",
    "Describe a sunrise over the mountains.",
    "Give me a recipe for a simple tomato soup.",
    "Why do cats purr?",
    "Summarize the plot of a detective novel in two sentences.",
    "How does a bicycle stay upright?",
    "Write a haiku about autumn leaves.",
    "What are the benefits of drinking water?",
    "Tell me a fun fact about octopuses.",
    "How do airplanes fly?",
    "Suggest a name for a friendly dragon.",
    "What should I pack for a weekend camping trip?",
    "Explain what a computer program is.",
]


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


async def one_stream(stub, pb2, prompt, max_new_tokens):
    """Returns (tokens, ttft_s, tpot_s or None)."""
    request = pb2.GenerateRequest(
        prompt=pb2.Prompt(text=prompt),
        sampling=pb2.SamplingParams(temperature=0, max_new_tokens=max_new_tokens,
                                    ignore_eos=True))
    start = time.perf_counter()
    first = last = None
    tokens = 0
    async for message in stub.Generate(request, timeout=600):
        if message.tokens:
            now = time.perf_counter()
            if first is None:
                first = now
            last = now
            tokens += len(message.tokens)
    ttft = first - start
    tpot = (last - first) / (tokens - 1) if tokens > 1 else None
    return tokens, ttft, tpot


async def run_level(address, pb2, pb2_grpc, n, rounds, max_new_tokens):
    import grpc
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb2_grpc.GenerationStub(channel)

        async def client(i):
            out = []
            for r in range(rounds):
                prompt = PROMPTS[(i + r * n) % len(PROMPTS)]
                out.append(await one_stream(stub, pb2, prompt, max_new_tokens))
            return out

        start = time.perf_counter()
        results = await asyncio.gather(*(client(i) for i in range(n)))
        wall = time.perf_counter() - start
    streams = [s for c in results for s in c]
    tokens = sum(s[0] for s in streams)
    ttfts = [s[1] for s in streams]
    tpots = [s[2] for s in streams if s[2] is not None]
    return {
        "concurrency": n, "requests": len(streams), "tokens": tokens, "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttft_p50_ms": 1e3 * percentile(ttfts, 50), "ttft_p99_ms": 1e3 * percentile(ttfts, 99),
        "tpot_p50_ms": 1e3 * percentile(tpots, 50), "tpot_p99_ms": 1e3 * percentile(tpots, 99),
    }


def wait_serving(address, timeout_s=600):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise RuntimeError("relayoutd never became SERVING")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--relayoutd", default=os.path.join(ROOT, "build/server/relayoutd"))
    p.add_argument("--model", default=None, help="default: tools/fetch_default_model.sh")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="requests per client, one at a time")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra flag for relayoutd serve (repeatable)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    model = args.model or subprocess.check_output(
        [os.path.join(ROOT, "tools/fetch_default_model.sh")], text=True).strip()
    levels = [int(x) for x in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory() as stub_dir:
        _, _, pb2, pb2_grpc = generate_stubs(os.path.join(ROOT, "proto"), stub_dir)
        server = Server(args.relayoutd, model,
                        ["--max-sessions", str(max(levels) * 2), *args.server_arg])
        try:
            address = f"127.0.0.1:{server.port}"
            wait_serving(address)
            # Warm-up: page in the weights and size the activations.
            asyncio.run(run_level(address, pb2, pb2_grpc, 1, 1, 8))
            rows = [asyncio.run(run_level(address, pb2, pb2_grpc, n, args.rounds,
                                          args.max_new_tokens)) for n in levels]
        finally:
            code = server.stop()
    print(f"model {os.path.basename(model)}, {args.max_new_tokens} new tokens per request "
          f"(greedy, ignore_eos), {args.rounds} requests per client, relayoutd exit {code}")
    print("| streams | requests | tokens | wall s | tokens/s | TTFT p50 ms | TTFT p99 ms "
          "| TPOT p50 ms | TPOT p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['tokens']} | {r['wall_s']:.2f} "
              f"| {r['tokens_per_s']:.1f} | {r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} "
              f"| {r['tpot_p50_ms']:.1f} | {r['tpot_p99_ms']:.1f} |")
    gain = rows[-1]["tokens_per_s"] / rows[0]["tokens_per_s"]
    print(f"continuous batching gain (tokens/s at N={rows[-1]['concurrency']} / "
          f"N={rows[0]['concurrency']}): {gain:.2f}x")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": model, "levels": rows, "gain": gain}, f, indent=2)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
