#!/usr/bin/env python3
"""The GPU check script's plumbing, on the host-reference plugin (no GPU).

Runs tools/gpu_check.sh as a GPU session would, with GPU_CHECK_DEVICE=hostref
(every stage that can run there, at tiny shapes) over an existing build, and
checks summary.json: each stage's status and figures, the merge of a second
run into the first one's summary, a stage stopped at its time limit while
the stages after it still run, the total deadline, and a bad stage name.

  gpu_check_test.py --build-dir BUILD [--python PY] [--shared DIR]

CTest runs it (gpu_check.dry_run, label integration). The build stage is not
run here (it would rebuild the engine inside a test); a GPU session runs it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "gpu_check.sh")
ARGS = None


def run(out, *stages, **env):
    e = dict(os.environ)
    e.update({"GPU_CHECK_DEVICE": "hostref", "GPU_CHECK_BUILD_DIR": ARGS.build_dir, "OUT": out,
              "GPU_CHECK_PYTHON": ARGS.python, "GPU_CHECK_DECODE_STEPS": "4",
              "GPU_CHECK_DECODE_PROMPT": "8"})
    if ARGS.shared:
        e["GPU_CHECK_SHARED"] = ARGS.shared
    e.pop("RELAYOUT_PLUGIN_DIR", None)  # the script's own: the build's plugins
    e.update({k: str(v) for k, v in env.items()})
    r = subprocess.run(["bash", SCRIPT, *stages], env=e, capture_output=True, text=True)
    summary = None
    path = os.path.join(out, "summary.json")
    if os.path.exists(path):
        with open(path) as f:
            summary = json.load(f)
    return r, summary


class DryRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.dir.name, "out")
        cls.r, cls.summary = run(cls.out, "ceilings", "conformance", "golden", "convert",
                                 "decode")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def stage(self, name):
        self.assertIsNotNone(self.summary, self.r.stdout[-3000:] + self.r.stderr[-3000:])
        return self.summary["stages"][name]

    def test_every_stage_that_can_run_on_hostref_passes(self):
        self.assertEqual(self.r.returncode, 0, self.r.stdout[-4000:])
        self.assertTrue(self.summary["ok"])
        self.assertEqual(self.summary["device"], "hostref")
        self.assertEqual(list(self.summary["stages"]),
                         ["ceilings", "conformance", "golden", "convert", "decode"])
        for s in self.summary["stages"].values():
            self.assertGreater(s["seconds"], 0)
        self.assertTrue(os.path.getsize(os.path.join(self.out, "gpu_check.log")) > 0)
        self.assertIn("decode tokens/s", self.r.stdout)  # the table ends the log

    def test_ceilings_and_sanitizers_skip_saying_why(self):
        c = self.stage("ceilings")
        self.assertEqual((c["status"], c["note"]), ("skipped", "needs a CUDA device"))
        r = self.stage("conformance")["results"]
        for tool in ("memcheck", "racecheck"):
            self.assertEqual(r[tool]["status"], "skipped")
            self.assertTrue(r[tool]["note"])

    def test_conformance_ran_every_op(self):
        s = self.stage("conformance")
        self.assertEqual(s["status"], "pass")
        c = s["results"]["conformance"]
        self.assertEqual(c["failed"], 0)
        ops = {r["op"] for r in c["results"]}
        self.assertEqual(ops, {"matmul", "embedding", "rms_norm", "rope", "add", "add_row_bias",
                               "silu_gate", "argmax", "kv_write", "attention", "transform"})

    def test_golden_texts_equal_the_references(self):
        s = self.stage("golden")
        if s["status"] == "skipped":
            if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1":
                self.fail("golden skipped: " + s.get("note", ""))
            self.skipTest(s.get("note", ""))
        self.assertEqual(s["status"], "pass", s)
        cases = s["results"]["cases"]
        self.assertEqual(len(cases), 24)  # 6 texts x 2 containers x 2 layouts
        self.assertTrue(all(c["status"] == "pass" and c["cpu_equal"] for c in cases))

    def test_convert_holds_every_bound_on_both_containers_and_layouts(self):
        s = self.stage("convert")
        self.assertEqual(s["status"], "pass", s)
        runs = s["results"]["runs"]
        self.assertEqual([r["label"] for r in runs],
                         ["bf16-native", "bf16-auto", "q4_0-native", "q4_0-auto", "q4_0-live"])
        for r in runs:
            self.assertEqual(r["exit"], 0)
            self.assertTrue(r["bound_held"] and r["memory_matches"] and r["checksums_equal"], r)
            self.assertLessEqual(r["ledger_peak_bytes"], r["weights_bytes"] + r["budget_bytes"])
            self.assertGreater(r["load_to_ready_seconds"], 0)
            self.assertGreater(r["read_once_seconds"], 0)
        self.assertGreater(runs[3]["transformed_on_device"], 0)  # Q4_0 auto: q-rowgroup
        # Loaded native, moved live into auto: the bytes of the start-up path.
        live = runs[4]
        self.assertEqual(live["live_to"], "auto")
        self.assertGreater(live["live_tensors"], 0)
        self.assertTrue(live["live_bound_held"], live)
        self.assertLessEqual(live["live_scratch_peak_bytes"], live["budget_bytes"])
        self.assertGreater(live["live_seconds"], 0)

    def test_decode_covers_every_combination(self):
        s = self.stage("decode")
        self.assertEqual(s["status"], "pass", s)
        runs = s["results"]["runs"]
        seen = {(r["dtype"], r["layout"], r["graphs"], r["batch"]) for r in runs}
        self.assertEqual(len(seen), 2 * 2 * 2 * 3)
        for r in runs:
            self.assertGreater(r["decode_tokens_per_second"], 0)
            self.assertEqual(r["cuda_graphs_env"], "1" if r["graphs"] == "on" else "0")
            self.assertGreater(r["weight_bytes"], r["embedding_bytes"])
        derived = self.summary["derived"]["decode"]
        self.assertEqual(len(derived), 24)
        self.assertIsNone(self.summary["derived"]["copy_gb_per_s"])  # no ceilings on hostref

    def test_a_second_run_merges_and_a_slow_stage_times_out(self):
        out = os.path.join(self.dir.name, "second")
        first, _ = run(out, "conformance")
        self.assertEqual(first.returncode, 0, first.stdout[-3000:])
        # decode is far too slow for a 6 s cap; golden still runs after it.
        r, summary = run(out, "decode", "golden", GPU_CHECK_CAP_DECODE=6,
                         GPU_CHECK_DECODE_STEPS=100000)
        self.assertEqual(r.returncode, 1, r.stdout[-3000:])
        self.assertFalse(summary["ok"])
        self.assertEqual(summary["stages"]["decode"]["status"], "timeout")
        self.assertLess(summary["stages"]["decode"]["seconds"], 20)
        self.assertIn(summary["stages"]["golden"]["status"], ("pass", "skipped"))
        self.assertTrue(summary["stages"]["conformance"]["from_earlier_run"])
        self.assertNotIn("from_earlier_run", summary["stages"]["decode"])

    def test_the_total_deadline_leaves_later_stages_not_run(self):
        out = os.path.join(self.dir.name, "deadline")
        r, summary = run(out, "conformance", "golden", GPU_CHECK_DEADLINE=9)
        self.assertEqual(r.returncode, 1)
        for name in ("conformance", "golden"):
            self.assertEqual(summary["stages"][name]["status"], "not_run")
            self.assertIn("deadline", summary["stages"][name]["note"])

    def test_an_unknown_stage_is_a_usage_error(self):
        r, _ = run(os.path.join(self.dir.name, "bad"), "bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown stage bogus", r.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--shared", default="")
    ARGS, rest = ap.parse_known_args()
    if not os.path.exists(ARGS.python):  # no .venv: numpy must be in this one
        ARGS.python = sys.executable
    unittest.main(argv=[sys.argv[0], *rest])
