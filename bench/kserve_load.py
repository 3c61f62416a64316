#!/usr/bin/env python3
"""Load generator for relayoutd's KServe v2 endpoint (tritonclient streaming).

genai-perf needs perf_analyzer, which is not on PyPI; this does the part we
use: N concurrent clients, each with its own ModelStreamInfer stream, send
requests one after another (vLLM layout: text_input, stream=true,
sampling_parameters) until --requests are done or --duration has passed, and
the run reports output tokens/s, requests/s, time to first token p50/p90/p99
and inter-token latency p50/p90 (per request: (last token - first token) /
(tokens - 1), as genai-perf defines it).

Against a running server:
  .venv-clients/bin/python bench/kserve_load.py --url 127.0.0.1:50051 \\
      --model SmolLM2-135M-Instruct.Q4_1 --concurrency 8 --duration 20 --max-tokens 128
Or starting one (free ports, stopped with SIGTERM at the end):
  .venv-clients/bin/python bench/kserve_load.py --relayoutd build/server/relayoutd \\
      --model-path ../shared/models/stories260K/model.gguf --concurrency 4 --requests 32

--check (the CTest `bench.kserve_load`) fails unless every request succeeded,
each generated exactly --max-tokens (it sets ignore_eos), the token counts of
the responses add up to that, and, with a server it started, the server's
/metrics counted the same requests (relayout_requests_total{rpc=
"ModelStreamInfer",code="OK"}) and tokens (relayout_generated_tokens_total).
Exits 77 (skipped) when tritonclient or the model is missing.
"""
import argparse
import json
import os
import queue
import re
import statistics
import sys
import threading
import time
import urllib.request

SKIP = 77


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def make_inputs(prompt, sampling):
    import numpy as np
    import tritonclient.grpc as grpcclient
    inputs = []
    for name, array, dtype in (
            ("text_input", np.array([prompt.encode()], dtype=np.object_), "BYTES"),
            ("stream", np.array([True], dtype=bool), "BOOL"),
            ("sampling_parameters", np.array([json.dumps(sampling).encode()], dtype=np.object_),
             "BYTES"),
            ("return_num_output_tokens", np.array([True], dtype=bool), "BOOL")):
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        inputs.append(t)
    return inputs


class Worker(threading.Thread):
    """One client and its stream; requests one at a time."""

    def __init__(self, index, args, budget, deadline, records):
        super().__init__(daemon=True)
        self.index, self.args, self.budget, self.deadline = index, args, budget, deadline
        self.records = records
        self.error = None

    def run(self):
        import tritonclient.grpc as grpcclient
        responses = queue.Queue()
        client = grpcclient.InferenceServerClient(self.args.url)
        client.start_stream(callback=lambda result, error: responses.put(
            (time.perf_counter(), result, error)))
        sampling = {"max_tokens": self.args.max_tokens, "temperature": self.args.temperature,
                    "ignore_eos": self.args.ignore_eos}
        inputs = make_inputs(self.args.prompt, sampling)
        try:
            n = 0
            while self.budget.take() and time.perf_counter() < self.deadline:
                request_id = f"{self.index}-{n}"
                n += 1
                record = {"id": request_id, "ok": True, "tokens": 0, "responses": 0,
                          "token_times": []}
                start = time.perf_counter()
                client.async_stream_infer(self.args.model, inputs, request_id=request_id,
                                          enable_empty_final_response=True)
                while True:
                    at, result, error = responses.get(timeout=self.args.request_timeout)
                    if error is not None:
                        record["ok"], record["error"] = False, str(error)
                        break
                    response = result.get_response()
                    if response.id != request_id:
                        raise RuntimeError(f"response for {response.id}, expected {request_id}")
                    counts = result.as_numpy("num_output_tokens")
                    if counts is not None and int(counts[0]) > 0:
                        record["tokens"] += int(counts[0])
                        record["responses"] += 1
                        record["token_times"].append(at - start)
                    if response.parameters["triton_final_response"].bool_param:
                        break
                record["seconds"] = time.perf_counter() - start
                self.records.append(record)
        except Exception as e:  # reported by run_load
            self.error = e
        finally:
            client.stop_stream()
            client.close()


class Budget:
    """At most `count` requests over all workers (None: unbounded)."""

    def __init__(self, count):
        self.left, self.lock = count, threading.Lock()

    def take(self):
        with self.lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def run_load(args):
    """Runs the load; returns the report (a dict)."""
    records = []
    deadline = time.perf_counter() + (args.duration if args.duration else 1e9)
    budget = Budget(args.requests)
    workers = [Worker(i, args, budget, deadline, records) for i in range(args.concurrency)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    errors = [str(w.error) for w in workers if w.error is not None]
    ok = [r for r in records if r["ok"]]
    ttft = [r["token_times"][0] * 1000 for r in ok if r["token_times"]]
    itl = [(r["token_times"][-1] - r["token_times"][0]) * 1000 / (r["tokens"] - 1)
           for r in ok if r["tokens"] > 1]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "concurrency": args.concurrency, "max_tokens": args.max_tokens,
        "requests_ok": len(ok), "requests_failed": len(records) - len(ok),
        "worker_errors": errors,
        "request_errors": [r["error"] for r in records if not r["ok"]][:5],
        "output_tokens": tokens, "wall_seconds": wall,
        "output_tokens_per_second": tokens / wall if wall > 0 else 0.0,
        "requests_per_second": len(ok) / wall if wall > 0 else 0.0,
        "ttft_ms": {"p50": percentile(ttft, 50), "p90": percentile(ttft, 90),
                    "p99": percentile(ttft, 99)},
        "itl_ms": {"p50": percentile(itl, 50), "p90": percentile(itl, 90),
                   "mean": statistics.fmean(itl) if itl else float("nan")},
        "tokens_per_request": sorted({r["tokens"] for r in ok}),
    }


def scrape(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()

    def value(pattern):
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else 0.0

    return {"stream_ok": value(
                r'^relayout_requests_total\{code="OK",rpc="ModelStreamInfer"\} (\S+)'),
            "generated_tokens": value(r"^relayout_generated_tokens_total (\S+)")}


def check(report, args, before, after):
    """The --check assertions; returns the failures."""
    failures = []
    if report["worker_errors"]:
        failures.append(f"worker errors: {report['worker_errors']}")
    if report["requests_failed"]:
        failures.append(f"{report['requests_failed']} requests failed: "
                        f"{report['request_errors']}")
    if args.requests is not None and report["requests_ok"] != args.requests:
        failures.append(f"{report['requests_ok']} requests succeeded, expected {args.requests}")
    if report["tokens_per_request"] not in ([], [args.max_tokens]):
        failures.append(f"tokens per request {report['tokens_per_request']}, "
                        f"expected {args.max_tokens} each")
    if report["output_tokens"] != report["requests_ok"] * args.max_tokens:
        failures.append(f"{report['output_tokens']} tokens for {report['requests_ok']} "
                        f"requests of {args.max_tokens}")
    if before is not None:
        requests = after["stream_ok"] - before["stream_ok"]
        tokens = after["generated_tokens"] - before["generated_tokens"]
        if requests != report["requests_ok"]:
            failures.append(f"/metrics counted {requests} ModelStreamInfer requests, "
                            f"the clients {report['requests_ok']}")
        if tokens != report["output_tokens"]:
            failures.append(f"/metrics counted {tokens} generated tokens, "
                            f"the clients {report['output_tokens']}")
    return failures


def wait_ready(url, timeout=60):
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(url)
    deadline = time.monotonic() + timeout
    try:
        while not client.is_server_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never ready")
            time.sleep(0.05)
    finally:
        client.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="host:port of a running server")
    p.add_argument("--model", help="the served model's name (default: the started server's)")
    p.add_argument("--relayoutd", help="start `relayoutd serve` with --model-path instead")
    p.add_argument("--model-path")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra `relayoutd serve` argument (repeatable)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, help="total requests (default: unbounded)")
    p.add_argument("--duration", type=float, help="seconds to send new requests for")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--prompt", default="Once upon a time")
    p.add_argument("--request-timeout", type=float, default=120)
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.add_argument("--check", action="store_true",
                   help="fail unless every request succeeded and the counts add up")
    args = p.parse_args()
    if args.requests is None and args.duration is None:
        p.error("give --requests or --duration")
    if args.check:
        args.ignore_eos = True
    try:
        import numpy  # noqa: F401
        import tritonclient.grpc  # noqa: F401
    except ImportError as e:
        print(f"SKIPPED: {e} (tools/setup.sh installs tritonclient into .venv-clients)")
        return 1 if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1" else SKIP

    server = None
    metrics_port = None
    if args.relayoutd:
        if not args.model_path or not os.path.exists(args.model_path):
            print(f"SKIPPED: model {args.model_path} missing")
            return 1 if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1" else SKIP
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tools"))
        from relayoutd_process import Server
        server = Server(args.relayoutd, args.model_path, extra=args.serve_arg, listen_timeout=60)
        listening = "".join(server.lines)
        args.url = f"127.0.0.1:{server.port}"
        metrics_port = int(re.search(r"metrics_port=(\d+)", listening).group(1))
        if args.model is None:
            args.model = re.search(r"kserve_model=\"?([^\s\"]+)", listening).group(1)
    if not args.url or not args.model:
        p.error("give --url and --model, or --relayoutd and --model-path")

    failures = []
    try:
        wait_ready(args.url)
        before = scrape(metrics_port) if metrics_port else None
        report = run_load(args)
        after = scrape(metrics_port) if metrics_port else None
        if args.check:
            failures = check(report, args, before, after)
    finally:
        if server is not None:
            code = server.stop()
            if code != 0:
                failures.append(f"relayoutd exited with {code} after SIGTERM")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['requests_ok']} requests ok, {report['requests_failed']} failed, "
              f"concurrency {args.concurrency}, {args.max_tokens} max tokens, "
              f"{report['wall_seconds']:.2f} s")
        print(f"output tokens/s {report['output_tokens_per_second']:.1f} "
              f"({report['output_tokens']} tokens), requests/s "
              f"{report['requests_per_second']:.2f}")
        t, i = report["ttft_ms"], report["itl_ms"]
        print(f"TTFT ms p50 {t['p50']:.1f} p90 {t['p90']:.1f} p99 {t['p99']:.1f}; "
              f"ITL ms p50 {i['p50']:.2f} p90 {i['p90']:.2f} mean {i['mean']:.2f}")
    for f in failures:
        print(f"FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
