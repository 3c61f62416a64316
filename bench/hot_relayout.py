#!/usr/bin/env python3
"""Hot relayout: serving while converting, relayout under load, tuned layouts.

One program, three parts (issue 16's "must show"):

  1. start-up   Time from process start to the first token of a request sent
                at start, with `--serve-while-converting` (the default: the
                server answers as soon as the weights are loaded in their
                common layout and converts them between forward steps) versus
                `--serve-while-converting=false` (the conversion runs first).
                t0 is taken just before the process is spawned; one client
                sends a greedy Generate (4 new tokens) as soon as the gRPC port
                listens and retries on UNAVAILABLE until a token comes back.
                Also: when the conversion was done (its "conversion done" log
                line, relative to t0), how long it took, its report's measured
                peak against weights + budget (GetModelInfo), and the process's
                VmHWM. Models: the 2 GiB generated checkpoint (F16, made once
                with tools/gen_checkpoint.py --preset 2gib-f16 into the cache,
                with Llama 2's tokenizer) and SmolLM2 (Q4_1 GGUF). --repeats
                runs each, medians are printed.
  2. under load N concurrent Generate streams (greedy, ignore_eos, logprobs) on
                SmolLM2, once undisturbed and once while `relayoutd relayout
                --to native`, `--to auto`, `--to native`, `--to auto` run one
                after the other. Every stream's tokens and log-probabilities
                must equal the undisturbed run's, no stream may fail, every
                relayout must exit 0 with its bound held (its "conversion done
                live=true" log line and its report). TPOT inside the relayout
                windows (inter-token gaps that overlap one) is compared with
                TPOT outside them (p50 and mean over all streams' gaps). The
                streams are made long enough for the relayouts to run inside
                them (a relayout is timed on the idle server first).
  3. tuned      `relayoutd plan --layout tuned` (its choice and the timings
                that led to it) and `relayoutd bench --layout tuned,auto`
                (prefill ppN and decode tgN tokens/s, tuned / auto).

  .venv/bin/python bench/hot_relayout.py [--relayoutd build/server/relayoutd]
      [--threads N] [--repeats 3] [--streams 16] [--stream-tokens 192]
      [--skip-startup] [--skip-load] [--skip-tuned] [--json-out F]
  .venv/bin/python bench/hot_relayout.py --quick   # smoke: SmolLM2 only, < 60 s

--quick (CTest bench.hot_relayout_smoke) runs part 1 on SmolLM2 once, part 2
with 4 streams of 48 tokens and one relayout pair (native, auto), and part 3
with short tests. Any run exits 1 on a token or log-probability mismatch, a
stream error, a relayout or command that exits non-zero, or a broken bound;
timing ratios are only printed (machine noise). Exit 77 (a skip) when the
model, the daemon or grpcio is missing, unless RELAYOUT_REQUIRE_TEST_DATA=1.
The numbers are as good as the machine is quiet.
"""
import argparse
import asyncio
import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from relayoutd_process import Server, generate_stubs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import PROMPTS, percentile  # noqa: E402

SKIP = 77
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZER_2GIB = "/work/shared/models/tokenizers/llama2-32k/tokenizer.model"
FIRST_TOKENS = 4  # new tokens of the start-up request
GiB = float(1 << 30)
MiB = float(1 << 20)


# ---------------------------------------------------------------- helpers

def cache_root():
    """As tools/fetch_default_model.sh spells it."""
    if os.environ.get("RELAYOUTD_CACHE_DIR"):
        return os.environ["RELAYOUTD_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "relayoutd")


def default_relayoutd():
    for rel in ("build/server/relayoutd", "build/relayoutd"):
        path = os.path.join(ROOT, rel)
        if os.path.exists(path):
            return path
    return os.path.join(ROOT, "build/server/relayoutd")


def smollm2_path(fetch):
    path = os.environ.get("RELAYOUT_SMOLLM2_GGUF") or os.path.join(cache_root(), "models", SMOLLM2)
    if not os.path.exists(path) and fetch:
        path = subprocess.check_output([os.path.join(ROOT, "tools/fetch_default_model.sh")],
                                       text=True).strip()
    return path


def generated_2gib():
    """The 2 GiB F16 checkpoint, generated once (about 20 s) into the cache."""
    out = os.path.join(cache_root(), "bench", "gen_f16_2gib")
    if os.path.exists(os.path.join(out, ".done")):
        return out
    tmp = out + ".partial"
    subprocess.run(["rm", "-rf", tmp], check=True)
    print(f"generating {out} (tools/gen_checkpoint.py --preset 2gib-f16)", file=sys.stderr)
    subprocess.run([os.path.join(ROOT, ".venv/bin/python"),
                    os.path.join(ROOT, "tools/gen_checkpoint.py"), "--out", tmp,
                    "--preset", "2gib-f16", "--seed", "7"], check=True)
    subprocess.run(["cp", TOKENIZER_2GIB, tmp], check=True)
    open(os.path.join(tmp, ".done"), "w").write("ok\n")
    subprocess.run(["rm", "-rf", out], check=True)
    os.rename(tmp, out)
    return out


_FIELD = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_log(line):
    """One text log line `TS LEVEL MSG key=value ...` as a dict (wall: epoch s)."""
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) < 3:
        return None
    ts, level, rest = parts
    try:
        wall = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None
    m = _FIELD.search(rest)
    msg = (rest[:m.start()] if m else rest).strip()
    fields = {k: (v[1:-1] if v.startswith('"') else v) for k, v in _FIELD.findall(rest)}
    return {"wall": wall, "level": level, "msg": msg, "f": fields}


def log_events(lines, start=0):
    out = []
    for line in list(lines[start:]):
        e = parse_log(line)
        if e is not None:
            out.append(e)
    return out


def vm_hwm(pid):
    """Peak resident bytes of a live process (VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def report_dict(report):
    keys = ("weights_bytes", "budget_bytes", "predicted_peak_bytes", "measured_peak_bytes",
            "scratch_peak_bytes", "os_peak_rss_bytes", "baseline_rss_bytes", "seconds")
    return {k: getattr(report, k) for k in keys}


def bound_held(d):
    return d["measured_peak_bytes"] <= d["weights_bytes"] + d["budget_bytes"]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


class Stubs:
    def __init__(self, stub_dir):
        self.model_pb2, self.model_grpc, self.gen_pb2, self.gen_grpc = generate_stubs(
            os.path.join(ROOT, "proto"), stub_dir)

    def request(self, prompt, tokens, logprobs=False):
        pb2 = self.gen_pb2
        return pb2.GenerateRequest(
            prompt=pb2.Prompt(text=prompt),
            sampling=pb2.SamplingParams(temperature=0, max_new_tokens=tokens, ignore_eos=True,
                                        logprobs=logprobs))

    def model_info(self, address):
        import grpc
        with grpc.insecure_channel(address) as channel:
            return self.model_grpc.ModelStub(channel).GetModelInfo(
                self.model_pb2.GetModelInfoRequest(), timeout=30)


def wait_startup_conversion(server, live, timeout_s=900):
    """Waits for the end of the start-up conversion; returns its "conversion
    done" event (live: the one of the conversion while serving; when nothing
    moves while serving, the load's own)."""
    deadline = time.monotonic() + timeout_s
    serving_since = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"relayoutd exited with {server.proc.returncode}:\n"
                               + "".join(server.lines[-30:]))
        events = log_events(server.lines)
        done = [e for e in events if e["msg"] == "conversion done"]
        failed = [e for e in events if e["msg"] in ("conversion stopped",
                                                    "conversion while serving refused",
                                                    "start-up failed")]
        if failed:
            raise RuntimeError(f"start-up conversion failed: {failed[0]}")
        serving = any(e["msg"] == "lifecycle" and e["f"].get("state") == "serving"
                      for e in events)
        if live:
            live_done = [e for e in done if e["f"].get("live") == "true"]
            if live_done:
                return live_done[0]
            started = any(e["msg"] == "conversion started" for e in events)
            if serving and not started:
                serving_since = serving_since or time.monotonic()
                if time.monotonic() - serving_since > 3 and done:
                    return done[0]  # nothing left to convert while serving
        elif done and serving:
            return done[0]
        time.sleep(0.02)
    raise RuntimeError("the start-up conversion did not finish in time:\n"
                       + "".join(server.lines[-30:]))


def server_flags(threads, extra=()):
    return ["--threads", str(threads), "--log-format", "text", *extra]


# ---------------------------------------------------------------- part 1

def first_token_from_start(stubs, address, t0, timeout_s=900):
    """Sends a greedy 4-token Generate, retrying on UNAVAILABLE; returns
    (seconds from t0 to the first token, attempts)."""
    import grpc
    deadline = time.monotonic() + timeout_s
    attempts = 0
    with grpc.insecure_channel(address) as channel:
        stub = stubs.gen_grpc.GenerationStub(channel)
        request = stubs.request(PROMPTS[0], FIRST_TOKENS)
        while True:
            attempts += 1
            first = None
            try:
                for message in stub.Generate(request, timeout=timeout_s):
                    if message.tokens and first is None:
                        first = time.perf_counter()
                return first - t0, attempts
            except grpc.RpcError as e:
                if first is not None or e.code() != grpc.StatusCode.UNAVAILABLE \
                        or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)


def startup_run(args, stubs, model, live, extra):
    flags = server_flags(args.threads, ["--layout", "auto",
                                        f"--serve-while-converting={'true' if live else 'false'}",
                                        *extra])
    t0_wall = time.time()
    t0 = time.perf_counter()
    server = Server(args.relayoutd, model, flags, listen_timeout=120)
    try:
        address = f"127.0.0.1:{server.port}"
        ttft, attempts = first_token_from_start(stubs, address, t0)
        done = wait_startup_conversion(server, live)
        hwm = vm_hwm(server.proc.pid)
        info = stubs.model_info(address)
        events = log_events(server.lines)
        serving = next((e for e in events if e["msg"] == "lifecycle"
                        and e["f"].get("state") == "serving"), None)
        load_done = next((e for e in events if e["msg"] == "conversion done"), None)
    finally:
        code = server.stop()
    report = report_dict(info.report)
    row = {
        "mode": "serve-while-converting" if live else "wait",
        "ttft_from_start_s": ttft,
        "attempts": attempts,
        "serving_at_s": serving["wall"] - t0_wall if serving else None,
        "load_done_at_s": load_done["wall"] - t0_wall if load_done else None,
        "load_seconds": float(load_done["f"].get("seconds", "nan")) if load_done else None,
        "conversion_done_at_s": done["wall"] - t0_wall,
        "conversion_live": done["f"].get("live") == "true",
        "conversion_seconds": float(done["f"].get("seconds", "nan")),
        "conversion_bound_log": done["f"].get("bound"),
        "report": report,
        "bound_held": bound_held(report) and done["f"].get("bound", "held") == "held",
        "vm_hwm_bytes": hwm,
        "exit_code": code,
    }
    return row


def part_startup(args, stubs, models, failures):
    results = []
    for name, path, extra in models:
        runs = {"serve-while-converting": [], "wait": []}
        # Untimed: pages the binary and the checkpoint in, for both modes alike.
        startup_run(args, stubs, path, False, extra)
        for r in range(args.repeats):
            for live in ((True, False) if r % 2 == 0 else (False, True)):
                row = startup_run(args, stubs, path, live, extra)
                runs[row["mode"]].append(row)
                print(f"  {name} {row['mode']} #{r + 1}: "
                      f"first token {row['ttft_from_start_s']:.3f} s, "
                      f"conversion done at {row['conversion_done_at_s']:.3f} s "
                      f"({row['conversion_seconds']:.3f} s, live={row['conversion_live']}), "
                      f"peak {row['report']['measured_peak_bytes'] / MiB:.1f} MiB, "
                      f"VmHWM {fmt(row['vm_hwm_bytes'] and row['vm_hwm_bytes'] / MiB, '.1f')} MiB",
                      file=sys.stderr, flush=True)
                if not row["bound_held"]:
                    failures.append(f"start-up {name} {row['mode']}: bound broken {row['report']}")
                if row["exit_code"] != 0:
                    failures.append(f"start-up {name} {row['mode']}: "
                                    f"relayoutd exit {row['exit_code']}")
        summary = {"model": name, "path": path, "runs": runs}
        for mode, rows in runs.items():
            summary[mode] = {
                "ttft_s": median([r["ttft_from_start_s"] for r in rows]),
                "conversion_done_at_s": median([r["conversion_done_at_s"] for r in rows]),
                "conversion_seconds": median([r["conversion_seconds"] for r in rows]),
                "serving_at_s": median([r["serving_at_s"] for r in rows]),
                "load_seconds": median([r["load_seconds"] for r in rows]),
                "measured_peak_bytes": max(r["report"]["measured_peak_bytes"] for r in rows),
                "weights_plus_budget_bytes": min(r["report"]["weights_bytes"]
                                                 + r["report"]["budget_bytes"] for r in rows),
                "vm_hwm_bytes": max((r["vm_hwm_bytes"] or 0) for r in rows),
                "bound_held": all(r["bound_held"] for r in rows),
            }
        swc, wait = summary["serve-while-converting"], summary["wait"]
        summary["gap_s"] = wait["ttft_s"] - swc["ttft_s"]
        live_conv = swc["conversion_seconds"] if all(
            r["conversion_live"] for r in runs["serve-while-converting"]) else None
        summary["live_conversion_s"] = live_conv
        summary["gap_over_conversion"] = (summary["gap_s"] / live_conv) if live_conv else None
        results.append(summary)
    return results


def print_startup(results, repeats):
    print(f"\n## 1. Time from process start to the first token (median of {repeats})")
    print("| model | mode | first token s | serving at s | load s | conversion done at s "
          "| conversion s | measured peak MiB | weights + budget MiB | bound | VmHWM MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for s in results:
        for mode in ("serve-while-converting", "wait"):
            m = s[mode]
            print(f"| {s['model']} | {mode} | {m['ttft_s']:.3f} | {fmt(m['serving_at_s'], '.3f')} "
                  f"| {fmt(m['load_seconds'], '.3f')} "
                  f"| {m['conversion_done_at_s']:.3f} | {m['conversion_seconds']:.3f} "
                  f"| {m['measured_peak_bytes'] / MiB:.1f} "
                  f"| {m['weights_plus_budget_bytes'] / MiB:.1f} "
                  f"| {'held' if m['bound_held'] else 'BROKEN'} | {m['vm_hwm_bytes'] / MiB:.1f} |")
    print("\n| model | first token, wait s | first token, serve-while-converting s "
          "| gap s | live conversion s | gap / conversion | wait / serve-while-converting "
          "| VmHWM serve-while-converting / wait |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in results:
        w, c = s["wait"]["ttft_s"], s["serve-while-converting"]["ttft_s"]
        hwm_w, hwm_c = s["wait"]["vm_hwm_bytes"], s["serve-while-converting"]["vm_hwm_bytes"]
        print(f"| {s['model']} | {w:.3f} | {c:.3f} | {s['gap_s']:.3f} "
              f"| {fmt(s['live_conversion_s'], '.3f')} | {fmt(s['gap_over_conversion'], '.2f')} "
              f"| {w / c:.2f}x | {hwm_c / hwm_w:.3f}x |")


# ---------------------------------------------------------------- part 2

async def one_stream(stub, request, out):
    """Fills out = {ids, logprobs, arrivals: [(time, n)], error} as tokens come."""
    try:
        async for message in stub.Generate(request, timeout=1800):
            if message.tokens:
                out["arrivals"].append((time.perf_counter(), len(message.tokens)))
                for t in message.tokens:
                    out["ids"].append(t.id)
                    out["logprobs"].append(t.logprob if t.HasField("logprob") else None)
    except Exception as e:  # noqa: BLE001 - a stream error is a result here
        code = e.code() if hasattr(e, "code") else ""
        details = e.details() if hasattr(e, "details") else str(e)
        out["error"] = f"{type(e).__name__} {code}: {details}"
    return out


def parse_cli_report(text):
    """The report `relayoutd relayout` prints on success, or None."""
    peak = re.search(r"^measured peak .*?\((\d+) bytes\): bound (\w+)", text, re.M)
    if not peak:
        return None
    out = {"measured_peak_bytes": int(peak.group(1)), "bound": peak.group(2).lower()}
    for key, name in (("weights_bytes", "weights"), ("budget_bytes", "budget")):
        m = re.search(rf"^{name}\s.*?\((\d+) bytes\)", text, re.M)
        if m:
            out[key] = int(m.group(1))
    m = re.search(r"^seconds\s+([\d.]+)", text, re.M)
    if m:
        out["seconds"] = float(m.group(1))
    return out


def relayout_cmd(args, address, target):
    cmd = [args.relayoutd, "relayout", "--to", target, "--server", address]
    if args.budget:
        cmd += ["--budget", args.budget]
    return cmd


async def run_relayouts(args, address, server, targets, windows):
    """Runs `relayoutd relayout --to T` for each target, one after the other;
    appends each one's window, exit code, output and server log line."""
    for target in targets:
        mark = len(server.lines)
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *relayout_cmd(args, address, target), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        end = time.perf_counter()
        done = None  # the server's line, logged as the call ends
        for _ in range(200):
            done = next((e for e in log_events(server.lines, mark)
                         if e["msg"] in ("conversion done", "conversion stopped")
                         and e["f"].get("live") == "true"), None)
            if done is not None or proc.returncode != 0:
                break
            await asyncio.sleep(0.01)
        windows.append({"to": target, "start": start, "end": end, "exit_code": proc.returncode,
                        "stdout": out.decode(errors="replace")[-3000:],
                        "stderr": err.decode(errors="replace")[-3000:], "log": done})


async def run_streams(args, stubs, address, n, tokens, relayouts=(), server=None):
    """n concurrent streams; with relayouts, runs them one after the other
    once every stream has its first token. Returns (streams, windows, t_start)."""
    import grpc
    windows = []
    streams = [{"ids": [], "logprobs": [], "arrivals": [], "error": None} for _ in range(n)]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = stubs.gen_grpc.GenerationStub(channel)
        requests = [stubs.request(PROMPTS[i % len(PROMPTS)], tokens, logprobs=True)
                    for i in range(n)]
        t_start = time.perf_counter()
        tasks = [asyncio.ensure_future(one_stream(stub, r, s)) for r, s in zip(requests, streams)]
        if relayouts:
            while not all(s["arrivals"] or s["error"] for s in streams):
                await asyncio.sleep(0.005)
            await run_relayouts(args, address, server, relayouts, windows)
        await asyncio.gather(*tasks)
    return streams, windows, t_start


def gaps(stream):
    """(gap seconds per token, interval start, interval end, tokens) per message after the first."""
    out = []
    arr = stream["arrivals"]
    for (t_prev, _), (t, k) in zip(arr, arr[1:]):
        out.append(((t - t_prev) / k, t_prev, t, k))
    return out


def tpot_split(streams, windows):
    during, outside = [], []
    for s in streams:
        for g, a, b, k in gaps(s):
            hit = any(a < w["end"] and b > w["start"] for w in windows)
            (during if hit else outside).extend([g] * k)
    return during, outside


def stats(values):
    if not values:
        return {"n": 0, "p50_ms": None, "mean_ms": None, "p99_ms": None}
    return {"n": len(values), "p50_ms": 1e3 * percentile(values, 50),
            "mean_ms": 1e3 * statistics.fmean(values), "p99_ms": 1e3 * percentile(values, 99)}


def compare_streams(base, other):
    """Mismatches of ids and log-probabilities, stream by stream."""
    problems = []
    max_lp_diff = 0.0
    for i, (a, b) in enumerate(zip(base, other)):
        if a["ids"] != b["ids"]:
            at = next((j for j, (x, y) in enumerate(zip(a["ids"], b["ids"])) if x != y),
                      min(len(a["ids"]), len(b["ids"])))
            problems.append(f"stream {i}: token ids differ at {at} "
                            f"({len(a['ids'])} vs {len(b['ids'])} tokens)")
            continue
        diffs = [abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"])
                 if x is not None and y is not None]
        if any(x is None for x in a["logprobs"] + b["logprobs"]):
            problems.append(f"stream {i}: a token without its log-probability")
        d = max(diffs) if diffs else 0.0
        max_lp_diff = max(max_lp_diff, d)
        if d != 0.0:
            problems.append(f"stream {i}: log-probabilities differ (max |diff| {d:.3g})")
    return problems, max_lp_diff


def run_cli(cmd, timeout=600):
    start = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    return p, time.perf_counter() - start


def part_load(args, stubs, model, failures):
    n, tokens = args.streams, args.stream_tokens
    sequence = args.relayouts.split(",")
    extra = ["--layout", "auto", "--max-sessions", str(max(64, 2 * n)),
             "--max-new-tokens", "8192", "--kv-cache-bytes", str(args.kv_cache_mib << 20)]
    server = Server(args.relayoutd, model, server_flags(args.threads, extra), listen_timeout=120)
    result = {"model": model, "streams": n, "sequence": sequence}
    try:
        address = f"127.0.0.1:{server.port}"
        wait_startup_conversion(server, live=True)
        asyncio.run(run_streams(args, stubs, address, 1, 8))  # warm-up
        # A relayout pair on the idle server: how long one takes.
        calib = []
        for target in (sequence[0], sequence[1] if len(sequence) > 1 else "auto"):
            p, secs = run_cli(relayout_cmd(args, address, target))
            calib.append({"to": target, "seconds": secs, "exit_code": p.returncode,
                          "stdout": p.stdout[-3000:], "stderr": p.stderr[-3000:]})
            if p.returncode != 0:
                failures.append(f"idle relayout --to {target}: exit {p.returncode}: "
                                f"{p.stderr.strip()[-500:]}")
        result["idle_relayouts"] = calib
        relayout_s = max(c["seconds"] for c in calib)
        timed = ", ".join(f"{c['to']} {c['seconds']:.3f} s" for c in calib)
        print(f"  idle relayout: {timed}", file=sys.stderr, flush=True)

        # Undisturbed; lengthen the streams until the relayouts fit (under
        # load a relayout may take a few times as long as on the idle server).
        need = len(sequence) * relayout_s * args.load_factor + 1.0
        for _ in range(3):
            base, _, t_start = asyncio.run(run_streams(args, stubs, address, n, tokens))
            firsts = [s["arrivals"][0][0] for s in base if s["arrivals"]]
            lasts = [s["arrivals"][-1][0] for s in base if s["arrivals"]]
            room = (min(lasts) - max(firsts)) if firsts else 0.0
            print(f"  undisturbed: {n} x {tokens} tokens, all started after "
                  f"{max(firsts) - t_start:.2f} s, room for relayouts {room:.2f} s "
                  f"(need ~{need:.2f} s)", file=sys.stderr, flush=True)
            if room >= need or args.quick or tokens >= args.max_stream_tokens:
                break
            per_token = room / max(1, tokens)
            tokens = min(args.max_stream_tokens,
                         int(math.ceil(1.3 * tokens * need / max(room, 1e-3)))
                         if per_token > 0 else tokens * 4)
        result["stream_tokens"] = tokens
        errors = [f"undisturbed stream {i}: {s['error']}" for i, s in enumerate(base) if s["error"]]
        failures.extend(errors)

        # Disturbed.
        streams, windows, t_start = asyncio.run(
            run_streams(args, stubs, address, n, tokens, relayouts=sequence, server=server))
        info = stubs.model_info(address)
    finally:
        code = server.stop()
    result["exit_code"] = code
    if code != 0:
        failures.append(f"under load: relayoutd exit {code}")
    for i, s in enumerate(streams):
        if s["error"]:
            failures.append(f"stream {i} failed during the relayouts: {s['error']}")
        if len(s["ids"]) != tokens:
            failures.append(f"stream {i}: {len(s['ids'])} tokens, expected {tokens}")
    problems, max_lp = compare_streams(base, streams)
    failures.extend(f"under load: {p}" for p in problems)
    result["mismatches"] = problems
    result["max_logprob_diff"] = max_lp

    first_all = max(s["arrivals"][0][0] for s in streams if s["arrivals"])
    end_first = min(s["arrivals"][-1][0] for s in streams if s["arrivals"])
    end_last = max(s["arrivals"][-1][0] for s in streams if s["arrivals"])
    rows = []
    for w in windows:
        log = w["log"] or {"f": {}}
        f = log["f"]
        rep = None
        if "measured_peak_bytes" in f:
            rep = {k: int(f[k]) for k in ("weights_bytes", "budget_bytes", "measured_peak_bytes")
                   if k in f}
        cli = parse_cli_report(w["stdout"])
        held = (f.get("bound") == "held" and (rep is None or bound_held(rep))
                and cli is not None and cli["bound"] == "held"
                and ("weights_bytes" not in cli or bound_held(cli)))
        row = {"to": w["to"], "start_s": w["start"] - t_start, "end_s": w["end"] - t_start,
               "seconds": w["end"] - w["start"], "exit_code": w["exit_code"],
               "server_seconds": float(f["seconds"]) if "seconds" in f else None,
               "report": rep, "cli_report": cli, "bound_log": f.get("bound"),
               "bound_cli": cli and cli["bound"], "bound_held": held,
               "overlap": "full" if w["end"] <= end_first else
                          ("partial" if w["start"] < end_last else "none"),
               "stdout": w["stdout"], "stderr": w["stderr"]}
        rows.append(row)
        if w["exit_code"] != 0:
            failures.append(f"relayout --to {w['to']}: exit {w['exit_code']}: "
                            f"{w['stderr'].strip()[-500:]}")
        elif not held:
            failures.append(f"relayout --to {w['to']}: bound not held "
                            f"(log line {log.get('msg')} {f}; printed {cli})")
    result["relayouts"] = rows
    result["overlapped_full"] = sum(r["overlap"] == "full" for r in rows)
    result["overlapped_any"] = sum(r["overlap"] != "none" for r in rows)
    during, outside = tpot_split(streams, windows)
    result["tpot_during"] = stats(during)
    result["tpot_outside"] = stats(outside)
    result["tpot_undisturbed"] = stats([g for s in base for g, _, _, k in gaps(s)
                                        for _ in range(k)])
    d, o = result["tpot_during"], result["tpot_outside"]
    result["tpot_ratio_p50"] = d["p50_ms"] / o["p50_ms"] if d["n"] and o["n"] else None
    result["tpot_ratio_mean"] = d["mean_ms"] / o["mean_ms"] if d["n"] and o["n"] else None
    result["all_started_s"] = first_all - t_start
    result["streams_end_s"] = [end_first - t_start, end_last - t_start]
    result["final_report"] = report_dict(info.report)
    result["final_layout_classes"] = [
        {"role": c.role, "dtype": c.dtype, "layout": c.layout} for c in info.tensor_classes]
    return result


def print_load(r):
    print(f"\n## 2. {r['streams']} streams x {r['stream_tokens']} tokens while relayout "
          f"{' -> '.join(r['sequence'])} runs")
    print(f"streams all started at {r['all_started_s']:.2f} s, ended between "
          f"{r['streams_end_s'][0]:.2f} and {r['streams_end_s'][1]:.2f} s; relayouts inside all "
          f"streams: {r['overlapped_full']} of {len(r['relayouts'])} "
          f"(at least partly: {r['overlapped_any']})")
    print("| relayout | window s | CLI s | server s | exit | measured peak MiB "
          "| weights + budget MiB | bound | overlap |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for w in r["relayouts"]:
        rep = w["report"] or {}
        peak = rep.get("measured_peak_bytes")
        wb = rep.get("weights_bytes", 0) + rep.get("budget_bytes", 0) if rep else None
        print(f"| --to {w['to']} | {w['start_s']:.2f}-{w['end_s']:.2f} | {w['seconds']:.3f} "
              f"| {fmt(w['server_seconds'], '.3f')} | {w['exit_code']} "
              f"| {fmt(peak and peak / MiB, '.2f')} | {fmt(wb and wb / MiB, '.2f')} "
              f"| {w['bound_log'] or '?'} (printed: {w['bound_cli'] or '?'}) "
              f"| {w['overlap']} |")
    print("| TPOT | gaps | p50 ms | mean ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, key in (("undisturbed run", "tpot_undisturbed"),
                      ("outside relayouts", "tpot_outside"),
                      ("during relayouts", "tpot_during")):
        s = r[key]
        print(f"| {name} | {s['n']} | {fmt(s['p50_ms'], '.1f')} | {fmt(s['mean_ms'], '.1f')} "
              f"| {fmt(s['p99_ms'], '.1f')} |")
    print(f"TPOT during / outside: p50 {fmt(r['tpot_ratio_p50'], '.2f')}x, mean "
          f"{fmt(r['tpot_ratio_mean'], '.2f')}x (expected <= 2)")
    print(f"tokens and log-probabilities equal to the undisturbed run: "
          f"{'yes' if not r['mismatches'] else 'NO: ' + '; '.join(r['mismatches'][:4])}"
          f" (max |logprob diff| {r['max_logprob_diff']:.3g})")


# ---------------------------------------------------------------- part 3

def plan_layouts(text):
    """The "layouts" section of `relayoutd plan`: {role dtype: layout}."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.strip() == "layouts":
            inside = True
            continue
        m = re.match(r"^\s+(\S+) (\S+) -> (\S+) \(", line) if inside else None
        if m:
            out[f"{m.group(1)} {m.group(2)}"] = m.group(3)
        elif inside and line.strip():
            break
    return out


def serve_tuning(args, stubs, model, failures):
    """GetModelInfo's layout_tuning and tensor classes of `serve --layout tuned`."""
    from google.protobuf.json_format import MessageToDict
    server = Server(args.relayoutd, model, server_flags(args.threads, ["--layout", "tuned"]),
                    listen_timeout=120)
    try:
        wait_startup_conversion(server, live=True)
        info = stubs.model_info(f"127.0.0.1:{server.port}")
    finally:
        code = server.stop()
    if code != 0:
        failures.append(f"serve --layout tuned: exit {code}")
    d = MessageToDict(info, preserving_proto_field_name=True)
    return {"layout_mode": info.layout_mode, "layout_tuning": d.get("layout_tuning"),
            "tensor_classes": d.get("tensor_classes", [])}


def part_tuned(args, stubs, name, model, n_prompt, n_gen, failures, serve=True):
    result = {"model": name, "path": model, "n_prompt": n_prompt, "n_gen": n_gen}
    if serve:
        try:
            result["serve"] = serve_tuning(args, stubs, model, failures)
        except RuntimeError as e:
            failures.append(f"serve --layout tuned: {str(e)[-800:]}")
    base = [args.relayoutd, "plan", "--model", model]
    p, secs = run_cli(base + ["--layout", "tuned"])
    result["plan_text"] = p.stdout
    result["plan_seconds"] = secs
    if p.returncode != 0:
        failures.append(f"{name}: plan --layout tuned: exit {p.returncode}: "
                        f"{p.stderr.strip()[-500:]}")
    pj, _ = run_cli(base + ["--layout", "tuned", "--json"])
    if pj.returncode == 0:
        try:
            result["tuning"] = json.loads(pj.stdout).get("layout_tuning")
        except ValueError:
            result["plan_json_error"] = pj.stdout[:500]
    pa, _ = run_cli(base + ["--layout", "auto"])
    result["layouts_tuned"] = plan_layouts(p.stdout)
    result["layouts_auto"] = plan_layouts(pa.stdout)
    bench = [args.relayoutd, "bench", "--model", model, "--layout", "tuned,auto",
             "--threads", str(args.threads), "--n-prompt", str(n_prompt), "--n-gen", str(n_gen),
             "--repetitions", str(args.bench_repetitions), "--read-bandwidth-mib", "0",
             "--output", "json"]
    b, secs = run_cli(bench, timeout=1800)
    result["bench_seconds"] = secs
    if b.returncode != 0:
        failures.append(f"{name}: bench --layout tuned,auto: exit {b.returncode}: "
                        f"{b.stderr.strip()[-500:]}")
        return result
    data = json.loads(b.stdout)
    rows = {(r["layout"], r["test"]): r for r in data["results"]}
    result["bench"] = data
    result["rates"] = []
    for test in sorted({r["test"] for r in data["results"]}):
        t, a = rows.get(("tuned", test)), rows.get(("auto", test))
        if t and a:
            result["rates"].append({"test": test, "tuned_ts": t["avg_ts"],
                                    "tuned_sd": t["stddev_ts"], "auto_ts": a["avg_ts"],
                                    "auto_sd": a["stddev_ts"],
                                    "tuned_load_s": t["load_seconds"],
                                    "auto_load_s": a["load_seconds"],
                                    "ratio": t["avg_ts"] / a["avg_ts"]})
    return result


def print_tuned(results):
    print("\n## 3. --layout tuned on this CPU")
    for r in results:
        t = r.get("tuning") or {}
        print(f"\n{r['model']}: `relayoutd plan --layout tuned` tuned in "
              f"{fmt(t.get('total_seconds'), '.3f')} s "
              f"(bound {fmt(t.get('max_seconds'), '.1f')} s, {t.get('threads', '?')} threads); "
              f"best matmul call, decode {t.get('decode_tokens', '?')} token / prefill "
              f"{t.get('prefill_tokens', '?')} tokens")
        print("| class | dtype | shape | layout | decode us | prefill us | score us/token "
              "| chosen |")
        print("|---|---|---|---|---:|---:|---:|---|")
        for c in t.get("classes", []):
            for cand in c.get("candidates", []):
                mark = "**yes**" if cand["layout"] == c["chosen"] else ""
                us = [fmt(1e6 * cand[k] if cand.get(k) else None, f)
                      for k, f in (("decode_seconds", ".1f"), ("prefill_seconds", ".1f"),
                                   ("score", ".2f"))]
                print(f"| {c['class']} | {c['dtype']} | {c['rows']}x{c['cols']} "
                      f"| {cand['layout']} | {us[0]} | {us[1]} | {us[2]} | {mark} |")
            if not c.get("measured", True):
                print(f"| {c['class']} | {c['dtype']} | | {c['chosen']} (not measured: "
                      f"{c.get('note', '')}) | | | | |")
        lt, la = r.get("layouts_tuned", {}), r.get("layouts_auto", {})
        differ = {k: (la.get(k), v) for k, v in lt.items() if la.get(k) != v}
        print("tuned vs auto layouts: " + ("the same for every tensor class" if not differ else
              "; ".join(f"{k}: auto {a} / tuned {b}" for k, (a, b) in differ.items())))
        serve = r.get("serve")
        if serve:
            print(f"serve --layout tuned: GetModelInfo layout_mode {serve['layout_mode']!r}, "
                  f"layout_tuning {'present' if serve['layout_tuning'] else 'absent'}")
        if r.get("rates"):
            print("| test | tuned t/s | auto t/s | tuned / auto | load s tuned | load s auto |")
            print("|---|---:|---:|---:|---:|---:|")
            for x in r["rates"]:
                print(f"| {x['test']} | {x['tuned_ts']:.1f} ± {x['tuned_sd']:.1f} "
                      f"| {x['auto_ts']:.1f} ± {x['auto_sd']:.1f} | {x['ratio']:.2f}x "
                      f"| {x['tuned_load_s']:.2f} | {x['auto_load_s']:.2f} |")


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--relayoutd", default=default_relayoutd())
    p.add_argument("--model", default=None, help="SmolLM2 GGUF (default: $RELAYOUT_SMOLLM2_GGUF "
                                                 "or tools/fetch_default_model.sh's cache)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3, help="start-up runs per model and mode")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--stream-tokens", type=int, default=192)
    p.add_argument("--max-stream-tokens", type=int, default=4096)
    p.add_argument("--relayouts", default="native,auto,native,auto",
                   help="targets of the relayouts under load, one after the other")
    p.add_argument("--budget", default="", help="relayout --budget (empty: its default)")
    p.add_argument("--load-factor", type=float, default=3.0,
                   help="how much longer a relayout may take under load than idle, "
                        "when sizing the streams")
    p.add_argument("--kv-cache-mib", type=int, default=4096)
    p.add_argument("--n-prompt", type=int, default=512)
    p.add_argument("--n-gen", type=int, default=128)
    p.add_argument("--n-prompt-2gib", type=int, default=128)
    p.add_argument("--n-gen-2gib", type=int, default=32)
    p.add_argument("--bench-repetitions", type=int, default=3)
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--skip-2gib", action="store_true")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--skip-tuned", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="smoke: SmolLM2 only, 1 repeat, 4 x 48 tokens, one relayout pair")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    if args.quick:
        args.repeats, args.streams, args.stream_tokens = 1, 4, 48
        args.relayouts, args.skip_2gib = "native,auto", True
        args.n_prompt, args.n_gen, args.bench_repetitions = 64, 16, 1
        args.kv_cache_mib = 512

    require = os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1"
    model = args.model or smollm2_path(fetch=not args.quick)
    missing = [f for f in (model, args.relayoutd) if not os.path.exists(f)]
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        missing.append("grpcio / grpcio-tools in this Python")
    if missing:
        print(f"SKIPPED: missing {missing} (tools/setup.sh, tools/fetch_default_model.sh)")
        return 1 if require or not args.quick else SKIP

    failures = []
    out = {"args": vars(args), "threads": args.threads}
    try:
        out["cpu"] = next((ln.split(":", 1)[1].strip() for ln in subprocess.check_output(
            ["lscpu"], text=True).splitlines() if ln.startswith("Model name")), "")
    except (OSError, subprocess.CalledProcessError):
        out["cpu"] = ""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as stub_dir:
        stubs = Stubs(stub_dir)
        if not args.skip_startup:
            models = []
            if not args.skip_2gib:
                models.append(("generated 2 GiB F16", generated_2gib(), []))
            models.append(("SmolLM2-135M Q4_1", model, []))
            print("part 1: first token from process start", file=sys.stderr, flush=True)
            out["startup"] = part_startup(args, stubs, models, failures)
        if not args.skip_load:
            print("part 2: streams under relayout", file=sys.stderr, flush=True)
            out["load"] = part_load(args, stubs, model, failures)
        if not args.skip_tuned:
            print("part 3: --layout tuned", file=sys.stderr, flush=True)
            out["tuned"] = []
            if not args.skip_2gib:
                out["tuned"].append(part_tuned(args, stubs, "generated 2 GiB F16", generated_2gib(),
                                               args.n_prompt_2gib, args.n_gen_2gib, failures,
                                               serve=False))
            out["tuned"].append(part_tuned(args, stubs, "SmolLM2-135M Q4_1", model, args.n_prompt,
                                           args.n_gen, failures))
    out["seconds"] = time.perf_counter() - started

    binary = os.path.abspath(args.relayoutd)
    if binary.startswith(ROOT + os.sep):
        binary = os.path.relpath(binary, ROOT)
    print(f"# hot relayout: {out['cpu']}, {args.threads} threads, relayoutd "
          f"{binary}{' (--quick)' if args.quick else ''}")
    if "startup" in out:
        print_startup(out["startup"], args.repeats)
    if "load" in out:
        print_load(out["load"])
        for key in ("tpot_ratio_p50", "tpot_ratio_mean"):
            v = out["load"].get(key)
            if v is not None and v > 2:
                print(f"NOTE: TPOT during / outside the relayouts {key[11:]} is {v:.2f}x (> 2)")
    if "tuned" in out:
        print_tuned(out["tuned"])
    print(f"\ntotal {out['seconds']:.1f} s")
    out["failures"] = failures
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2, default=str)
    if failures:
        print(f"\nFAILED ({len(failures)}):")
        for line in failures:
            print("  " + line)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
