#!/usr/bin/env python3
"""Time to first token at one client: relayoutd serve against llama-server.

Starts `relayoutd serve` and `llama-server` on the same model with the same
thread count (one after the other, never both at once), and from one client
sends each the same sequence of requests, one at a time: greedy, 4 new tokens,
ignore_eos. TTFT is from sending a request to receiving its first token
(relayoutd: the first Generate message with tokens; llama-server: the first
streamed /completion event with text). Three kinds of prompt:

  repeat   the same prompt every time (a client retrying, a benchmark loop):
           both engines reuse the KV of all but its last block (relayoutd's
           prefix cache, whole 16-token blocks) or token (llama-server's
           slot cache, cache_prompt);
  shared   one system prompt, then a different question each time (a chat
           front end): both reuse the system prompt's KV;
  fresh    prompts with no common start: nothing is reused, the whole
           prompt is prefilled.

  .venv/bin/python bench/ttft.py --model M.gguf --threads 2 \\
      --llama-server /path/to/llama-server [--requests 12] [--json-out F]

It prints p50 and p90 TTFT per engine and kind, and relayoutd / llama-server
(below 1: relayoutd answers first). The numbers are as good as the machine is
quiet.
"""
import argparse
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from relayoutd_process import Server, generate_stubs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import PROMPTS, percentile, wait_serving  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
NEW_TOKENS = 4
SYSTEM = ("You are a helpful assistant. Answer briefly and clearly, in plain words, and say so "
          "when you do not know something. Keep every answer under fifty words.\n\nQuestion: ")
REPEAT = "Please write a short poem about the sea, the wind and the old lighthouse on the hill."


def prompts(kind, n):
    if kind == "repeat":
        return [REPEAT] * n
    if kind == "shared":
        return [SYSTEM + PROMPTS[i % len(PROMPTS)] for i in range(n)]
    # fresh: a different first word each time, so no block (or token) is shared
    return [f"{i + 1}. {PROMPTS[i % len(PROMPTS)]} {PROMPTS[(i + 5) % len(PROMPTS)]}"
            for i in range(n)]


async def relayoutd_ttft(address, pb2, pb2_grpc, texts):
    import grpc
    out = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb2_grpc.GenerationStub(channel)
        for text in texts:
            request = pb2.GenerateRequest(
                prompt=pb2.Prompt(text=text),
                sampling=pb2.SamplingParams(temperature=0, max_new_tokens=NEW_TOKENS,
                                            ignore_eos=True))
            start = time.perf_counter()
            first = None
            async for message in stub.Generate(request, timeout=600):
                if message.tokens and first is None:
                    first = time.perf_counter()
            out.append(first - start)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server_ttft(port, texts):
    out = []
    for text in texts:
        body = json.dumps({"prompt": text, "n_predict": NEW_TOKENS, "stream": True,
                           "temperature": 0, "ignore_eos": True, "cache_prompt": True})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        start = time.perf_counter()
        conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        first = None
        for line in response:
            if line.startswith(b"data: ") and first is None:
                if json.loads(line[6:]).get("content"):
                    first = time.perf_counter()
        conn.close()
        out.append(first - start)
    return out


def start_llama_server(binary, model, threads, port):
    proc = subprocess.Popen(
        [binary, "-m", model, "-t", str(threads), "-tb", str(threads), "--host", "127.0.0.1",
         "--port", str(port), "-c", "4096", "-np", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llama-server never became healthy")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--relayoutd", default=os.path.join(ROOT, "build/server/relayoutd"))
    p.add_argument("--llama-server", required=True)
    p.add_argument("--model", required=True, help="a GGUF both engines load")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--requests", type=int, default=12, help="per kind")
    p.add_argument("--kinds", default="repeat,shared,fresh")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra flag for relayoutd serve (repeatable)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    kinds = args.kinds.split(",")
    results = {"relayoutd": {}, "llama-server": {}}

    with tempfile.TemporaryDirectory() as stub_dir:
        _, _, pb2, pb2_grpc = generate_stubs(os.path.join(ROOT, "proto"), stub_dir)
        server = Server(args.relayoutd, args.model,
                        ["--threads", str(args.threads), *args.server_arg])
        try:
            address = f"127.0.0.1:{server.port}"
            wait_serving(address)
            asyncio.run(relayoutd_ttft(address, pb2, pb2_grpc, ["Warm up the weights."]))
            for kind in kinds:
                results["relayoutd"][kind] = asyncio.run(
                    relayoutd_ttft(address, pb2, pb2_grpc, prompts(kind, args.requests)))
        finally:
            server.stop()

    port = free_port()
    proc = start_llama_server(args.llama_server, args.model, args.threads, port)
    try:
        llama_server_ttft(port, ["Warm up the weights."])
        for kind in kinds:
            results["llama-server"][kind] = llama_server_ttft(port, prompts(kind, args.requests))
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    print(f"model {os.path.basename(args.model)}, {args.threads} threads, one client, "
          f"{args.requests} requests per kind, {NEW_TOKENS} new tokens each")
    print("| prompts | relayoutd TTFT p50 ms | p90 | llama-server TTFT p50 ms | p90 "
          "| relayoutd / llama-server (p50) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for kind in kinds:
        r = results["relayoutd"][kind]
        ls = results["llama-server"][kind]
        row = {"kind": kind,
               "relayoutd_p50_ms": 1e3 * percentile(r, 50),
               "relayoutd_p90_ms": 1e3 * percentile(r, 90),
               "llama_server_p50_ms": 1e3 * percentile(ls, 50),
               "llama_server_p90_ms": 1e3 * percentile(ls, 90)}
        row["ratio"] = row["relayoutd_p50_ms"] / row["llama_server_p50_ms"]
        rows.append(row)
        print(f"| {kind} | {row['relayoutd_p50_ms']:.0f} | {row['relayoutd_p90_ms']:.0f} "
              f"| {row['llama_server_p50_ms']:.0f} | {row['llama_server_p90_ms']:.0f} "
              f"| {row['ratio']:.2f}x |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "rows": rows,
                       "samples": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
