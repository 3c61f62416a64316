#!/usr/bin/env python3
"""The GPU check's bookkeeping: stage results in, summary.json and a table out.

tools/gpu_check.sh calls it; standard library only (the GPU machine's python3).

  report.py stage --work W --name NAME --status S --seconds T [--note TEXT]
                  [--data KEY=FILE ...]
      records one stage in W/stages/NAME.json; each FILE is JSON (one
      document) or JSON lines (a list), kept under results[KEY].
  report.py annotate KEY=VALUE ...  < lines > lines
      adds fields to every JSON line on stdin (integers stay integers).
  report.py summary --work W --out SUMMARY [--meta FILE]
      merges this run's stages into SUMMARY (stages of an earlier run in the
      same file stay, marked from_earlier_run), derives the figures that
      combine stages (decode against the copy bandwidth: the bytes a step must
      read, over the device-to-device copy's GB/s), sets "ok".
  report.py table SUMMARY
      prints one line per stage and the key figures, for the end of a log.

Stage status: pass (every check held), fail (a check did not), error (it
could not run), timeout (stopped at its time limit), skipped (with a note
saying why), not_run (the deadline left no time). ok: no fail, error,
timeout or not_run.
"""

import argparse
import glob
import json
import os
import sys

STAGES = ["build", "ceilings", "conformance", "golden", "convert", "decode"]
BAD = ("fail", "error", "timeout", "not_run")


def load_data(path):
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        out = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"unparsed": line})
        return out


def cmd_stage(a):
    results = {}
    for item in a.data:
        key, _, path = item.partition("=")
        if os.path.exists(path):
            results[key] = load_data(path)
    record = {"status": a.status, "seconds": round(a.seconds, 2)}
    if a.note:
        record["note"] = a.note
    if results:
        record["results"] = results
    os.makedirs(os.path.join(a.work, "stages"), exist_ok=True)
    with open(os.path.join(a.work, "stages", a.name + ".json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    return 0


def value(text):
    try:
        return int(text)
    except ValueError:
        return text


def cmd_annotate(a):
    extra = {}
    for item in a.fields:
        k, _, v = item.partition("=")
        extra[k] = value(v)
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        d.update(extra)
        print(json.dumps(d))
    return 0


def copy_gbps(stages):
    try:
        return float(stages["ceilings"]["results"]["ceilings"]["copy_gb_per_s"])
    except (KeyError, TypeError, ValueError):
        return None


def derive(summary):
    """Figures that combine stages: decode against the memory-bound limit."""
    stages = summary["stages"]
    bw = copy_gbps(stages)
    decode = stages.get("decode", {}).get("results", {}).get("runs")
    if not isinstance(decode, list):
        return
    table = []
    for r in decode:
        if not isinstance(r, dict) or "decode_tokens_per_second" not in r:
            continue
        # A step reads every weight but the embedding table (a gather of B
        # rows), and each sequence's K and V so far (on average the prompt
        # and half the decoded tokens).
        context = r.get("prompt_tokens", 0) + r.get("decode_steps", 0) / 2
        kv = r.get("batch", 0) * context * r.get("kv_bytes_per_token", 0)
        streamed = r.get("weight_bytes", 0) - r.get("embedding_bytes", 0) + int(kv)
        row = {k: r.get(k) for k in ("dtype", "layout", "graphs", "batch",
                                      "decode_tokens_per_second", "decode_step_ms")}
        row["streamed_bytes_per_step"] = streamed
        if bw and streamed > 0:
            limit = r["batch"] * bw * 1e9 / streamed
            row["limit_tokens_per_second"] = round(limit, 1)
            row["fraction_of_limit"] = round(r["decode_tokens_per_second"] / limit, 4)
        table.append(row)
    by_key = {(t["dtype"], t["layout"], t["batch"], t["graphs"]): t for t in table}
    for t in table:
        if t["graphs"] == "on":
            off = by_key.get((t["dtype"], t["layout"], t["batch"], "off"))
            if off and off["decode_tokens_per_second"]:
                t["graphs_on_over_off"] = round(
                    t["decode_tokens_per_second"] / off["decode_tokens_per_second"], 3)
        if t["layout"] == "auto":
            nat = by_key.get((t["dtype"], "native", t["batch"], t["graphs"]))
            if nat and nat["decode_tokens_per_second"]:
                t["preferred_over_native"] = round(
                    t["decode_tokens_per_second"] / nat["decode_tokens_per_second"], 3)
    summary["derived"] = {"copy_gb_per_s": bw, "decode": table}


def cmd_summary(a):
    summary = {"stages": {}}
    if os.path.exists(a.out):
        try:
            with open(a.out, encoding="utf-8") as f:
                summary = json.load(f)
            for s in summary.get("stages", {}).values():
                s["from_earlier_run"] = True
        except (OSError, json.JSONDecodeError):
            summary = {"stages": {}}
    if a.meta and os.path.exists(a.meta):
        with open(a.meta, encoding="utf-8") as f:
            summary.update(json.load(f))
    for path in sorted(glob.glob(os.path.join(a.work, "stages", "*.json"))):
        with open(path, encoding="utf-8") as f:
            summary["stages"][os.path.basename(path)[:-5]] = json.load(f)
    order = {n: i for i, n in enumerate(STAGES)}
    summary["stages"] = dict(sorted(summary["stages"].items(),
                                    key=lambda kv: order.get(kv[0], len(order))))
    derive(summary)
    summary["ok"] = not any(s.get("status") in BAD for s in summary["stages"].values())
    # The run's description first, then the stages and what derives from them.
    tail = {k: summary.pop(k) for k in ("ok", "stages", "derived") if k in summary}
    summary.update(tail)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)
    return 0


def fmt_bytes(n):
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.1f} MiB"


def key_figures(name, s):
    r = s.get("results") or {}
    out = []
    if not r:
        return out
    try:
        if name == "build":
            p = r.get("ptxas") or {}
            out.append(f"ptxas {p.get('status', '?')}")
        elif name == "ceilings":
            c = r["ceilings"]
            out.append(f"copy {c['copy_gb_per_s']:.0f} GB/s, h2d pinned "
                       f"{c['h2d_pinned_gb_per_s']:.1f} GB/s, bf16 gemm "
                       f"{c['gemm_bf16_tflops']:.0f} TFLOP/s")
        elif name == "conformance":
            c = r.get("conformance")
            if isinstance(c, dict):
                out.append(f"{c['passed']} pass, {c['failed']} fail, {c['skipped']} skip")
                for f in c.get("failures", [])[:3]:
                    out.append("  FAIL " + f[:150])
            q = r.get("conformance_q8_gemv")
            if isinstance(q, dict):
                out.append(f"quantized on the Q8 GEMV path: {q['passed']} pass, {q['failed']} fail")
            for tool in ("memcheck", "racecheck"):
                t = r.get(tool)
                if isinstance(t, dict):
                    out.append(f"{tool}: {t.get('status')} {t.get('note', '')}".rstrip())
        elif name == "golden":
            runs = r.get("cases") or []
            bad = [x for x in runs if x.get("status") != "pass"]
            out.append(f"{len(runs) - len(bad)}/{len(runs)} texts equal")
            for x in bad[:3]:
                out.append(f"  {x.get('status')} {x.get('case')}")
        elif name == "convert":
            for c in r.get("runs") or []:
                out.append(
                    f"{c.get('label', '?'):14s} peak-weights {fmt_bytes(c['peak_over_weights_bytes'])}"
                    f" bound {c['bound_held']} mem {c['driver_minus_ledger_after_convert_bytes'] / 2**20:+.1f}"
                    f" MiB sums {'=' if c['checksums_equal'] else 'DIFFER'} ready/read "
                    f"{c['ready_over_read_once']:.2f}")
    except (KeyError, TypeError):
        out.append("(results incomplete)")
    return out


def cmd_table(a):
    with open(a.summary, encoding="utf-8") as f:
        summary = json.load(f)
    print(f"gpu_check: {summary.get('device', '?')} on {summary.get('gpu', '?')}, "
          f"{summary.get('total_seconds', '?')} s, ok={summary.get('ok')}")
    for name, s in summary.get("stages", {}).items():
        earlier = " (earlier run)" if s.get("from_earlier_run") else ""
        note = f"  {s['note']}" if s.get("note") else ""
        print(f"  {name:12s} {s.get('status', '?'):8s} {s.get('seconds', 0):7.1f} s{earlier}{note}")
        for line in key_figures(name, s):
            print("      " + line)
    d = (summary.get("derived") or {}).get("decode") or []
    if d:
        print("  decode tokens/s (fraction of the bytes-read / copy-bandwidth limit):")
        for t in d:
            frac = t.get("fraction_of_limit")
            print(f"      {t['dtype']:5s} {t['layout']:7s} graphs {t['graphs']:3s} batch "
                  f"{t['batch']:3d}: {t['decode_tokens_per_second']:10.1f}"
                  f"{'' if frac is None else f'  ({frac:.2f})'}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stage")
    p.add_argument("--work", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--status", required=True,
                   choices=["pass", "fail", "error", "timeout", "skipped", "not_run"])
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--note", default="")
    p.add_argument("--data", action="append", default=[])
    p = sub.add_parser("annotate")
    p.add_argument("fields", nargs="*")
    p = sub.add_parser("summary")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--meta")
    p = sub.add_parser("table")
    p.add_argument("summary")
    a = ap.parse_args(argv)
    return {"stage": cmd_stage, "annotate": cmd_annotate, "summary": cmd_summary,
            "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
