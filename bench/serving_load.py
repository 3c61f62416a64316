#!/usr/bin/env python3
"""One load generator, the same load, against relayoutd serve and llama-server.

Runs aiperf (a load generator nobody here wrote; .venv-loadgen, from
tools/requirements-loadgen.txt) against the OpenAI-compatible chat endpoint
of `relayoutd serve` and then of `llama-server`, on the same GGUF with the
same thread count, one server at a time (never both at once): streamed chat
completions, synthetic prompts of --isl tokens from the same seed, --osl
output tokens each (ignore_eos), --concurrency clients, --requests requests
after --warmup ones. llama-server gets one slot per client (-np) and a
context that holds them all.

  .venv/bin/python bench/serving_load.py --model M.gguf --threads 2 \\
      --llama-server /path/to/llama-server [--concurrency 4] [--requests 32] \\
      [--isl 128] [--osl 64] [--json-out F]

It prints output tokens/s, requests/s, TTFT p50/p90 and inter-token latency
p50 per server, and relayoutd / llama-server for each (throughput above 1
and latency below 1: relayoutd is ahead). The numbers are as good as the
machine is quiet; aiperf itself runs beside the server on the same cores,
equally for both, unless --server-cpus and --client-cpus pin them apart.
--smoke runs relayoutd only and fails unless every request
succeeded (CTest server.openai_load; exit 77, a skip, when aiperf or the model
is missing, a failure under RELAYOUT_REQUIRE_TEST_DATA=1).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from relayoutd_process import Server  # noqa: E402

SKIP = 77
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
METRICS = [  # (aiperf metric, statistic, column)
    ("output_token_throughput", "avg", "output tok/s"),
    ("request_throughput", "avg", "req/s"),
    ("time_to_first_token", "p50", "TTFT p50 ms"),
    ("time_to_first_token", "p90", "TTFT p90 ms"),
    ("inter_token_latency", "p50", "ITL p50 ms"),
]
HIGHER_IS_BETTER = {"output tok/s", "req/s"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, timeout_s=600, proc=None):
    """Polls GET path until it answers 200 (a server loads, then serves)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before serving")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"127.0.0.1:{port}{path} never answered 200")


def pinned(cpus):
    """The taskset prefix that keeps a command on cpus ("" : none)."""
    return ["taskset", "-c", cpus] if cpus else []


def model_id(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/v1/models")
    return json.loads(conn.getresponse().read())["data"][0]["id"]


def export_tokenizer(model, out_dir):
    """aiperf sizes its synthetic prompts with a Hugging Face tokenizer: the
    GGUF's own vocabulary, written as tokenizer.json (no network here)."""
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([os.path.join(ROOT, ".venv/bin/python"),
                    os.path.join(ROOT, "tools/export_hf_tokenizer_json.py"), model,
                    os.path.join(out_dir, "tokenizer.json")], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 1 << 20}, f)


def run_aiperf(args, port, name, tokenizer_dir, artifacts):
    out = os.path.join(artifacts, name)
    cmd = [*pinned(args.client_cpus), args.aiperf, "profile", "--model", model_id(port), "--tokenizer", tokenizer_dir,
           "--endpoint-type", "chat", "--streaming", "--url", f"http://127.0.0.1:{port}",
           "--concurrency", str(args.concurrency), "--request-count", str(args.requests),
           "--warmup-request-count", str(args.warmup),
           "--synthetic-input-tokens-mean", str(args.isl), "--synthetic-input-tokens-stddev", "0",
           "--output-tokens-mean", str(args.osl), "--output-tokens-stddev", "0",
           "--extra-inputs", "ignore_eos:true", "--extra-inputs", "temperature:0",
           "--random-seed", "7", "--use-server-token-count", "--workers-max", "1",
           "--record-processors", "1", "--ui-type", "none", "--artifact-dir", out]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"aiperf against {name} failed ({proc.returncode}):\n"
                           + proc.stdout[-4000:])
    with open(os.path.join(out, "profile_export_aiperf.json")) as f:
        return json.load(f)


def summary(export):
    row = {}
    for metric, stat, column in METRICS:
        row[column] = float(export.get(metric, {}).get(stat) or 0.0)
    row["completed"] = int(export.get("completed_request_count", {}).get("avg") or
                           export.get("request_count", {}).get("avg") or 0)
    # completed counts successes and errors; error_summary lists the errors.
    row["errors"] = sum(int(e.get("count", 1)) for e in export.get("error_summary") or [])
    row["output tokens"] = int(export.get("total_output_tokens", {}).get("avg") or 0)
    row["error_summary"] = export.get("error_summary") or []
    return row


def start_llama_server(args, port):
    ctx = args.concurrency * (args.isl * 2 + args.osl + 64)
    proc = subprocess.Popen(
        [*pinned(args.server_cpus), args.llama_server, "-m", args.model, "-t", str(args.threads), "-tb", str(args.threads),
         "--host", "127.0.0.1", "--port", str(port), "-c", str(ctx), "-np",
         str(args.concurrency), *args.llama_arg],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(port, "/health", proc=proc)
    return proc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--relayoutd", default=os.path.join(ROOT, "build/server/relayoutd"))
    p.add_argument("--llama-server", default=None)
    p.add_argument("--aiperf", default=os.path.join(ROOT, ".venv-loadgen/bin/aiperf"))
    p.add_argument("--model", default=os.environ.get("RELAYOUT_SMOLLM2_GGUF", ""),
                   help="a GGUF both servers load (default: $RELAYOUT_SMOLLM2_GGUF)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--isl", type=int, default=128, help="prompt tokens")
    p.add_argument("--osl", type=int, default=64, help="output tokens")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per aiperf run")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra flag for relayoutd serve (repeatable)")
    p.add_argument("--server-cpus", default="",
                   help="taskset CPU list for the servers (e.g. 1), so that the load generator "
                        "does not compete with them")
    p.add_argument("--client-cpus", default="", help="taskset CPU list for aiperf (e.g. 0)")
    p.add_argument("--llama-arg", action="append", default=[],
                   help="extra flag for llama-server (repeatable), e.g. --llama-arg=--poll=0")
    p.add_argument("--smoke", action="store_true",
                   help="relayoutd only; fail unless every request succeeded")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    if not args.smoke and not args.llama_server:
        p.error("--llama-server is required (or --smoke)")
    missing = [f for f in (args.model, args.aiperf) if not f or not os.path.exists(f)]
    if missing:
        print(f"SKIPPED: missing {missing} (tools/setup.sh makes .venv-loadgen; tools/test.sh "
              "sets $RELAYOUT_SMOLLM2_GGUF)")
        if args.smoke and os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") != "1":
            return SKIP
        return 1

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_dir = os.path.join(tmp, "tokenizer")
        export_tokenizer(args.model, tokenizer_dir)
        port = free_port()
        server = Server(args.relayoutd, args.model,
                        ["--threads", str(args.threads), "--http-listen", f"127.0.0.1:{port}",
                         *args.server_arg], launcher=pinned(args.server_cpus))
        try:
            wait_http(port, "/v1/models", proc=server.proc)
            results["relayoutd"] = summary(run_aiperf(args, port, "relayoutd", tokenizer_dir, tmp))
        finally:
            code = server.stop()
        if code != 0:
            raise RuntimeError(f"relayoutd exited with {code}:\n" + "".join(server.lines[-40:]))
        if not args.smoke:
            port = free_port()
            proc = start_llama_server(args, port)
            try:
                results["llama-server"] = summary(
                    run_aiperf(args, port, "llama-server", tokenizer_dir, tmp))
            finally:
                proc.terminate()
                proc.wait(timeout=60)

    print(f"model {os.path.basename(args.model)}, {args.threads} threads, aiperf chat streaming, "
          f"concurrency {args.concurrency}, {args.requests} requests (+{args.warmup} warm-up), "
          f"{args.isl} prompt tokens, {args.osl} output tokens")
    names = list(results)
    columns = [c for _, _, c in METRICS]
    print("| server | " + " | ".join(columns) + " | completed | errors |")
    print("|---|" + "---:|" * (len(columns) + 2))
    for name in names:
        r = results[name]
        print(f"| {name} | " + " | ".join(f"{r[c]:.1f}" for c in columns)
              + f" | {r['completed']} | {r['errors']} |")
    if "llama-server" in results:
        a, b = results["relayoutd"], results["llama-server"]
        ratios = [a[c] / b[c] if b[c] else float("nan") for c in columns]
        print("| relayoutd / llama-server | " + " | ".join(f"{x:.2f}x" for x in ratios)
              + " | | |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "args": vars(args),
                       "results": results}, f, indent=2)
    r = results["relayoutd"]
    if r["errors"] or r["completed"] != args.requests or r["output tokens"] < args.requests:
        print(f"relayoutd: {r['completed']} of {args.requests} requests completed, "
              f"{r['errors']} errors, {r['output tokens']} output tokens", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
