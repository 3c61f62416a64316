#!/usr/bin/env python3
"""Tests of tools/check_layering.py on small trees made here: a downward
include passes, an upward one and an included plugin fail, naming them."""
import os
import subprocess
import sys
import tempfile

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layering.py")


def tree(files):
    root = tempfile.mkdtemp(prefix="layering_test.")
    for path, text in files.items():
        os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(root, path), "w", encoding="utf-8") as f:
            f.write(text)
    return root


def run(root):
    return subprocess.run([sys.executable, CHECK, "--root", root], capture_output=True, text=True)


def main():
    failures = []
    ok = run(tree({
        "engine/model/a.cc": '#include "engine/base/status.h"\n#include "kernels/cpu/matmul.h"\n',
        "engine/base/status.h": "",
        "server/x.cc": '#include "engine/serving/s.h"\n',
        "kernels/cpu/matmul.h": '#include "kernels/device_abi.h"\n',
    }))
    if ok.returncode != 0:
        failures.append(f"downward includes were refused: {ok.stderr}")
    up = run(tree({"engine/base/env.cc": '#include "engine/serving/serving_engine.h"\n'}))
    if up.returncode == 0 or "engine/base/env.cc:1: includes engine/serving/serving_engine.h" not in up.stderr:
        failures.append(f"an upward include passed: rc={up.returncode} {up.stderr}")
    kernel_up = run(tree({"kernels/cpu/m.cc": '\n#include "engine/tensor/dtype.h"\n'}))
    if kernel_up.returncode == 0 or "kernels/cpu/m.cc:2" not in kernel_up.stderr:
        failures.append(f"kernels including the engine passed: {kernel_up.stderr}")
    plugin = run(tree({"engine/model/m.cc": '#include "kernels/cuda/plugin.h"\n'}))
    if plugin.returncode == 0 or "loaded through kernels/device_abi.h" not in plugin.stderr:
        failures.append(f"the engine including a plugin passed: {plugin.stderr}")
    stray = run(tree({"engine/newfolder/x.cc": ""}))
    if stray.returncode == 0 or "in no layer" not in stray.stderr:
        failures.append(f"a file in no layer passed: {stray.stderr}")
    for f in failures:
        print(f"check_layering_test: {f}", file=sys.stderr)
    print(f"check_layering_test: {5 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
