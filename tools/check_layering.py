#!/usr/bin/env python3
"""Fails the build when a source file includes a header of a higher layer.

The layers, lowest first (DESIGN.md "Layers"; each engine/ folder is one
CMake target that links only the targets below it):

  kernels/device_abi.h, quant_format.h      the C ABI of device plugins, block formats
  kernels/cpu                               CPU kernels
  kernels/cuda kernels/hostref              device plugins (never included above)
  engine/base engine/text engine/memory engine/tensor engine/checkpoint
  engine/tokenizer engine/chat engine/device engine/conversion engine/model
  engine/serving                            the engine, by concept
  server/cli                                subcommands that need no gRPC
  server/observe server/rpc server/http     the daemon: state, logs and
  server/daemon                             metrics; the gRPC services; the
                                            HTTP API; lifecycle
  server                                    main.cc

A file may include its own layer's headers and those of any layer below. A
static library does not stop an upward #include from compiling (every
header is on the include path), so this check runs as part of the build
(target layering_check, in ALL): an upward include fails the build, naming
the file, the line and both layers.

Usage: check_layering.py [--root DIR] [--stamp FILE]
"""
import argparse
import os
import re
import sys

# (prefix, rank): the longest matching prefix gives a path's layer.
LAYERS = [
    ("kernels/device_abi.h", 0),
    ("kernels/quant_format.h", 0),
    ("kernels/cpu/", 1),
    ("kernels/cuda/", 2),
    ("kernels/hostref/", 2),
    ("engine/base/", 10),
    ("engine/text/", 11),
    ("engine/memory/", 12),
    ("engine/tensor/", 13),
    ("engine/checkpoint/", 14),
    ("engine/tokenizer/", 15),
    ("engine/chat/", 16),
    ("engine/device/", 17),
    ("engine/conversion/", 18),
    ("engine/model/", 19),
    ("engine/serving/", 20),
    ("server/cli/", 30),
    ("server/observe/", 31),
    ("server/rpc/", 32),
    ("server/testing/", 32),  # test doubles of the rpc layer
    ("server/http/", 33),
    ("server/daemon/", 34),
    ("server/", 35),
]

# Pairs (from, to) that are refused although the ranks allow them: the
# plugins are loaded at run time through device_abi.h, never linked.
FORBIDDEN = [("engine/", "kernels/cuda/"), ("engine/", "kernels/hostref/"),
             ("server/", "kernels/cuda/"), ("server/", "kernels/hostref/")]

# Directories whose files are checked (tests beside the code included: a
# test may use its own layer and those below, like the code).
CHECKED = ("kernels/", "engine/", "server/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    best = None
    for prefix, rank in LAYERS:
        if path == prefix or path.startswith(prefix):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return best


def violations(root):
    found = []
    for top in CHECKED:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".h", ".cc", ".cu", ".cuh")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                own = layer_of(path)
                if own is None:
                    found.append(f"{path}: in no layer (add its folder to tools/check_layering.py)")
                    continue
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        included = m.group(1)
                        for source, plugin in FORBIDDEN:
                            if path.startswith(source) and included.startswith(plugin):
                                found.append(f"{path}:{number}: includes {included}: a plugin is"
                                             " loaded through kernels/device_abi.h, not included")
                        target = layer_of(included)
                        if target is None or target[1] <= own[1]:
                            continue
                        found.append(
                            f"{path}:{number}: includes {m.group(1)} ({target[0].rstrip('/')}),"
                            f" a layer above {own[0].rstrip('/')}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--stamp", help="file to touch when the check passes")
    args = parser.parse_args()
    found = violations(os.path.abspath(args.root))
    if found:
        print("layering: an include points upwards (DESIGN.md \"Layers\"):", file=sys.stderr)
        for v in found:
            print(f"  {v}", file=sys.stderr)
        return 1
    if args.stamp:
        with open(args.stamp, "w", encoding="utf-8") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
