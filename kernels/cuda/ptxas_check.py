#!/usr/bin/env python3
"""The CUDA kernels' resource check: no spills and no stack frame.

Compiles the CUDA backend's translation units (every .cu under kernels/cuda/:
the plugin's, which instantiate every kernel header's ops) to device code
only with `-Xptxas -v`, one nvcc invocation per architecture (run side by
side), and reads ptxas's report. It fails, naming the kernel and the architecture, when

  - a kernel or a device function it calls has spill stores or loads, or a
    stack frame (local memory: `N bytes stack frame`, or `lmem` in older
    reports), unless ALLOWLIST below says why that one may;
  - a kernel declared `__global__` in kernels/cuda/kernels/*.cuh was compiled
    by no translation unit (so nothing checked it, and the plugin does not
    use it): call its op from the plugin, or instantiate it in a .cu beside.

A spill or a stack frame means local memory, which on these devices is device
memory behind L1: a hot kernel that touches it moves bytes nobody counted.

  ptxas_check.py --nvcc /usr/local/cuda/bin/nvcc --root . --arch 80 --arch 90a
  ptxas_check.py --report saved.txt --root .   # parse a saved report, no nvcc

Prints one line per compiled function and architecture, then the failures.
Exit 0: clean; 1: a failure above; 2: nvcc failed (its output is printed).
kernels/cuda/ptxas_check_test.py tests the parser on canned reports.
"""

import argparse
import concurrent.futures
import dataclasses
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

# (regular expression searched in the demangled name, architecture or None
# for all, why it may use local memory). Keep each reason specific.
ALLOWLIST = []


@dataclasses.dataclass
class Function:
    mangled: str
    arch: str  # "sm_90a"
    entry: bool  # a kernel (entry function), else a device function
    stack: int = 0  # bytes of stack frame (local memory per thread)
    spill_stores: int = 0
    spill_loads: int = 0
    registers: int = -1
    demangled: str = ""

    @property
    def clean(self):
        return self.stack == 0 and self.spill_stores == 0 and self.spill_loads == 0


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_LMEM = re.compile(r"(\d+)(?:\+(\d+))? bytes lmem")


def parse_report(text, default_arch=""):
    """The functions of a ptxas -v report, in order of appearance.

    Entries start with "Compiling entry function 'X' for 'sm_N'"; any function
    (entries and device functions that were not inlined) gets a "Function
    properties for X" line followed by its stack frame and spills; "Used N
    registers" follows an entry's properties. Older reports give local memory
    as "N bytes lmem" (or "N+M bytes lmem") on the registers line.
    """
    functions = []
    arch = default_arch
    entry = None  # mangled name of the entry being compiled
    current = None
    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            entry, arch = m.group(1), m.group(2)
            current = None
            continue
        m = _PROPS.search(line)
        if m:
            name = m.group(1)
            current = Function(mangled=name, arch=arch, entry=(name == entry))
            functions.append(current)
            continue
        m = _FRAME.search(line)
        if m and current is not None:
            current.stack, current.spill_stores, current.spill_loads = map(int, m.groups())
            continue
        m = _USED.search(line)
        if m:
            # An entry's registers line; older reports print it without a
            # properties line, so make the record here when there is none.
            if current is None or current.mangled != entry:
                if entry is None:
                    continue
                current = Function(mangled=entry, arch=arch, entry=True)
                functions.append(current)
            current.registers = int(m.group(1))
            lm = _LMEM.search(line)
            if lm:
                current.stack = max(current.stack, int(lm.group(1)) + int(lm.group(2) or 0))
    return functions


def strip_comments(source):
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def kernel_names(source):
    """Names of the __global__ functions declared in CUDA source."""
    source = strip_comments(source)
    names = []
    for m in re.finditer(r"\b__global__\b", source):
        i = m.end()
        while i < len(source):
            while i < len(source) and source[i].isspace():
                i += 1
            w = re.match(r"[A-Za-z_]\w*", source[i:])
            if not w:
                break
            word = w.group(0)
            i += len(word)
            j = i
            while j < len(source) and source[j].isspace():
                j += 1
            if j < len(source) and source[j] == "(":
                if word in ("__launch_bounds__", "__maxnreg__", "__cluster_dims__", "alignas"):
                    depth = 0
                    while j < len(source):  # skip the balanced argument list
                        depth += {"(": 1, ")": -1}.get(source[j], 0)
                        j += 1
                        if depth == 0:
                            break
                    i = j
                    continue
                names.append(word)
                break
    return names


def base_name(demangled):
    """relayout::cuda::Kernel<(T)1, true>(const unsigned char*, long) -> Kernel."""
    out, depth = [], 0
    for ch in demangled:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            break
        elif depth == 0:
            out.append(ch)
    # "void ns::Kernel" (some demanglers print the return type of templates)
    return "".join(out).strip().split(" ")[-1].split("::")[-1]


def demangle(names):
    tool = shutil.which("c++filt") or shutil.which("cu++filt")
    if not tool or not names:
        return {n: n for n in names}
    r = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True)
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) != len(names):
        return {n: n for n in names}
    return dict(zip(names, lines))


def allowed(f):
    for pattern, arch, why in ALLOWLIST:
        if (arch is None or arch == f.arch) and re.search(pattern, f.demangled):
            return why
    return None


def check(functions, declared):
    """Failure lines for the report's functions and the kernels declared in
    the headers ({header: [names]})."""
    failures = []
    for f in functions:
        if f.clean:
            continue
        why = allowed(f)
        if why is None:
            kind = "kernel" if f.entry else "device function"
            failures.append(
                f"{f.arch} {kind} {f.demangled}: {f.stack} bytes stack frame, "
                f"{f.spill_stores} bytes spill stores, {f.spill_loads} bytes spill loads")
    arches = sorted({f.arch for f in functions})
    compiled = {(f.arch, base_name(f.demangled)) for f in functions if f.entry}
    for header, names in sorted(declared.items()):
        for name in names:
            for arch in arches or ["(none compiled)"]:
                if (arch, name) not in compiled:
                    failures.append(
                        f"{arch} kernel {name} ({header}) was compiled by no translation unit: "
                        "call its op from the plugin (kernels/cuda/*.cu)")
    return failures


def compile_report(nvcc, root, arch, sources, flags, std, workdir):
    """Runs nvcc for one architecture; returns (exit code, its output)."""
    odir = os.path.join(workdir, "sm_" + arch)
    os.makedirs(odir, exist_ok=True)
    cmd = [nvcc, "-cubin", f"-gencode=arch=compute_{arch},code=sm_{arch}", "-Xptxas", "-v",
           f"-std=c++{std}", "-DNDEBUG", "-I", root, "-odir", odir, *flags, *sources]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, " ".join(cmd) + "\n" + r.stdout + r.stderr


def declared_kernels(root):
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "kernels", "cuda", "kernels", "*.cuh"))):
        with open(path, encoding="utf-8") as f:
            names = kernel_names(f.read())
        if names:
            out[os.path.relpath(path, root)] = sorted(set(names))
    return out


def print_table(functions):
    for f in sorted(functions, key=lambda f: (f.demangled, f.arch)):
        state = "ok" if f.clean else ("allowed" if allowed(f) else "FAIL")
        kind = "kernel" if f.entry else "func  "
        regs = f"{f.registers:3d}" if f.registers >= 0 else "  -"
        print(f"{f.arch:7s} {state:7s} {kind} regs {regs} stack {f.stack:4d} "
              f"spill {f.spill_stores}/{f.spill_loads}  {f.demangled}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvcc", help="the CUDA compiler")
    ap.add_argument("--root", required=True, help="the repository root")
    ap.add_argument("--arch", action="append", default=[],
                    help="an architecture to compile for, e.g. 80 or 90a (repeatable)")
    ap.add_argument("--flag", action="append", default=[],
                    help="an extra nvcc flag, as the plugin is built (repeatable)")
    ap.add_argument("--std", default="17", help="the C++ standard of the plugin (17, 20)")
    ap.add_argument("--report", action="append", default=[],
                    help="parse this saved ptxas report instead of compiling (repeatable)")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.root)
    declared = declared_kernels(root)

    if args.report:
        text = ""
        for path in args.report:
            with open(path, encoding="utf-8") as f:
                text += f.read() + "\n"
        functions = parse_report(text)
    else:
        if not args.nvcc:
            ap.error("--nvcc is required unless --report is given")
        arches = [a.removeprefix("sm_") for a in args.arch] or ["80", "90a"]
        sources = sorted(glob.glob(os.path.join(root, "kernels", "cuda", "**", "*.cu"),
                                   recursive=True))
        if not sources:
            print("ptxas_check: no .cu files under kernels/cuda/", file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory(prefix="ptxas_check.") as work, \
                concurrent.futures.ThreadPoolExecutor(len(arches)) as pool:
            results = list(pool.map(
                lambda a: compile_report(args.nvcc, root, a, sources, args.flag, args.std, work), arches))
        functions = []
        for arch, (code, text) in zip(arches, results):
            if code != 0:
                print(f"ptxas_check: nvcc failed for sm_{arch}:\n{text}", file=sys.stderr)
                return 2
            functions += parse_report(text, default_arch="sm_" + arch)

    names = demangle(sorted({f.mangled for f in functions}))
    for f in functions:
        f.demangled = names.get(f.mangled, f.mangled)
    print_table(functions)
    failures = check(functions, declared)
    kernels = sum(1 for f in functions if f.entry)
    if failures:
        print(f"\nptxas_check: {len(failures)} failure(s) over {kernels} kernel compilations:")
        for line in failures:
            print("  " + line)
        return 1
    print(f"\nptxas_check: {kernels} kernel compilations, no spills, no stack frames; "
          f"{sum(len(v) for v in declared.values())} declared kernels all compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
