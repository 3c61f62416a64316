#!/usr/bin/env python3
"""`relayoutd relayout` against a running `relayoutd serve` (relayout.v1.Admin).

Starts `relayoutd serve` on stories260K in its common layout (--layout native,
so no start-up conversion runs) with a bearer token, then runs the client:
to rowgroup-g8k8 (progress lines on stderr, one per tenth at most, and the
report's summary on stdout with the bound held), back to native, an unknown
layout (exit 2, naming it), no --to (exit 2), and no token (exit 2,
UNAUTHENTICATED); finally SIGTERM ends the server with exit 0.

Run by CTest (label integration); exits 77 (skipped) when the shared model
is missing:
  .venv/bin/python tests/server/test_relayout_cli.py --relayoutd build/server/relayoutd \\
      --shared-dir ../shared
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from relayoutd_process import Server, report_suite  # noqa: E402

SKIP = 77
TOKEN = "relayout-cli-test-token"

ARGS = None
SERVER = None
TOKEN_FILE = None


def skip():
    """Exit code of a skip: 77, or 1 under RELAYOUT_REQUIRE_TEST_DATA=1 (CI)."""
    return 1 if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1" else SKIP


def wait_serving(timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("state=serving" in line for line in SERVER.lines):
            return
        time.sleep(0.02)
    raise RuntimeError("relayoutd never served:\n" + "".join(SERVER.lines))


def relayout(*flags, token=True):
    cmd = [ARGS.relayoutd, "relayout", "--server", f"127.0.0.1:{SERVER.port}", *flags]
    if token:
        cmd += ["--auth-token-file", TOKEN_FILE]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)


class RelayoutCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        wait_serving()

    def test_1_relayout_prints_progress_then_the_report_with_the_bound_held(self):
        r = relayout("--to", "rowgroup-g8k8", "--budget", "1MiB")
        self.assertEqual(r.returncode, 0, r.stderr)
        progress = [line for line in r.stderr.splitlines() if line.startswith("relayout: ")]
        self.assertGreaterEqual(len(progress), 1, r.stderr)
        self.assertLessEqual(len(progress), 11, r.stderr)  # one per tenth at most
        self.assertIn("100%", progress[-1])
        self.assertIn("tensors", progress[-1])
        out = r.stdout
        self.assertIn("relayout done:", out)
        self.assertIn("to rowgroup-g8k8", out)
        for field in ("tensors ", "weights ", "budget ", "measured peak ", "seconds "):
            self.assertIn(field, out)
        self.assertIn("bound held", out)
        self.assertIn("budget        1.0 MiB (1048576 bytes)", out)
        tensors = int(out.split("tensors       ")[1].split()[0])
        self.assertGreater(tensors, 0)

    def test_2_relayout_back_to_native_succeeds(self):
        r = relayout("--to", "native")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("bound held", r.stdout)

    def test_3_unknown_layout_is_exit_2_naming_it(self):
        r = relayout("--to", "no-such-layout")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no-such-layout", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_4_missing_to_is_exit_2(self):
        r = relayout()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--to", r.stderr)

    def test_5_missing_token_is_refused(self):
        r = relayout("--to", "native", token=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("relayoutd: relayout:", r.stderr)
        self.assertIn("token", r.stderr.lower())


def main():
    global ARGS, SERVER, TOKEN_FILE
    p = argparse.ArgumentParser()
    p.add_argument("--relayoutd", required=True)
    p.add_argument("--shared-dir", required=True)
    ARGS = p.parse_args()
    model = os.path.join(ARGS.shared_dir, "models/stories260K/model.safetensors")
    if not os.path.exists(model):
        print(f"SKIPPED: {model} missing")
        return skip()
    with tempfile.TemporaryDirectory() as tmp:
        TOKEN_FILE = os.path.join(tmp, "token")
        with open(TOKEN_FILE, "w") as f:
            f.write(TOKEN + "\n")
        SERVER = Server(ARGS.relayoutd, model, listen_timeout=20,
                        extra=("--layout", "native", "--device", "cpu",
                               "--auth-token-file", TOKEN_FILE))
        try:
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(RelayoutCliTest)
            result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
        finally:
            exit_code = SERVER.stop()
    return report_suite(result, SERVER, exit_code)


if __name__ == "__main__":
    sys.exit(main())
