#!/usr/bin/env python3
"""Fails when a CTest test has no TIMEOUT property.

Reads `ctest --show-only=json-v1` on stdin. Every test must carry its own
timeout (unit tests seconds, integration minutes) so that a hang fails fast
with the test's name instead of using up CI's budget.
"""
import json
import sys


def main() -> int:
    data = json.load(sys.stdin)
    tests = data.get("tests", [])
    missing = []
    for test in tests:
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        timeout = props.get("TIMEOUT")
        if timeout is None or float(timeout) <= 0:
            missing.append(test["name"])
    if not tests:
        print("check_test_timeouts: no tests listed", file=sys.stderr)
        return 1
    if missing:
        print(f"check_test_timeouts: {len(missing)} of {len(tests)} tests have no TIMEOUT:",
              file=sys.stderr)
        for name in missing[:20]:
            print(f"  {name}", file=sys.stderr)
        return 1
    print(f"check_test_timeouts: all {len(tests)} tests have a TIMEOUT", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
