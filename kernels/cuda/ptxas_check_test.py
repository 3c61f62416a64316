#!/usr/bin/env python3
"""Tests of ptxas_check.py's parser and rules on canned ptxas reports.

Needs no CUDA: the reports below are ptxas -v output as nvcc 13.0 prints it
(and one in the older "lmem" form), and the failing run goes through the
script's --report mode on a saved copy.
"""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptxas_check as pc  # noqa: E402

# nvcc 13.0, -cubin -Xptxas -v, two kernels and a device function kept out of
# line by printf.
REPORT_90A = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN8relayout4cuda5SpillILi64EEEvPfi' for 'sm_90a'
ptxas info    : Function properties for _ZN8relayout4cuda5SpillILi64EEEvPfi
    272 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 272 bytes cumulative stack size
ptxas info    : Compile time = 18.757 ms
ptxas info    : Compiling entry function '_ZN8relayout4cuda5CleanEPf' for 'sm_90a'
ptxas info    : Function properties for _ZN8relayout4cuda5CleanEPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
ptxas info    : Compile time = 1.662 ms
ptxas info    : 4 bytes gmem
ptxas info    : Compiling entry function '_Z10UsesPrintfPf' for 'sm_90a'
ptxas info    : Function properties for _Z10UsesPrintfPf
    8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 24 registers, used 0 barriers, 8 bytes cumulative stack size
ptxas info    : Function properties for _Z6Helperf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
"""

# An older ptxas: local memory on the registers line, no properties line.
REPORT_OLD = """\
ptxas info    : Compiling entry function '_Z3oldPf' for 'sm_80'
ptxas info    : Used 10 registers, 8+0 bytes lmem, 28+16 bytes smem
ptxas info    : Compiling entry function '_Z5clearPf' for 'sm_80'
ptxas info    : Used 6 registers, 0 bytes lmem
"""

HEADER = """\
// __global__ void CommentedOut(float* x) {}
/* __global__ void AlsoCommentedOut(); */
template <int kN>
__global__ void __launch_bounds__(Max(kN, 32) * (4))
    Spill(float* x, int i) {}
__global__ void Clean(float* x) {}
template <class T> __global__ __launch_bounds__(256, 1) void Odd(T* p);
"""


def parsed(text, arch=""):
    functions = pc.parse_report(text, default_arch=arch)
    names = pc.demangle(sorted({f.mangled for f in functions}))
    for f in functions:
        f.demangled = names[f.mangled]
    return functions


class ParseTest(unittest.TestCase):
    def test_entries_and_device_functions_with_their_resources(self):
        fs = parsed(REPORT_90A)
        self.assertEqual([(f.mangled, f.entry) for f in fs],
                         [("_ZN8relayout4cuda5SpillILi64EEEvPfi", True),
                          ("_ZN8relayout4cuda5CleanEPf", True),
                          ("_Z10UsesPrintfPf", True),
                          ("_Z6Helperf", False)])
        spill = fs[0]
        self.assertEqual((spill.arch, spill.stack, spill.spill_stores, spill.spill_loads,
                          spill.registers), ("sm_90a", 272, 12, 16, 255))
        self.assertTrue(fs[1].clean)
        self.assertEqual(fs[1].registers, 8)
        self.assertEqual(fs[2].stack, 8)
        self.assertTrue(fs[3].clean)
        self.assertEqual(fs[3].registers, -1)

    def test_older_lmem_form_counts_as_stack(self):
        fs = parsed(REPORT_OLD)
        self.assertEqual([(f.mangled, f.arch, f.stack, f.registers) for f in fs],
                         [("_Z3oldPf", "sm_80", 8, 10), ("_Z5clearPf", "sm_80", 0, 6)])
        self.assertFalse(fs[0].clean)
        self.assertTrue(fs[1].clean)

    def test_kernel_names_skip_comments_and_launch_bounds(self):
        self.assertEqual(pc.kernel_names(HEADER), ["Spill", "Clean", "Odd"])

    def test_base_name_drops_namespaces_templates_and_parameters(self):
        self.assertEqual(
            pc.base_name("void relayout::cuda::Kernel<(relayout::cuda::QuantType)1, true>"
                         "(unsigned char const*, long)"), "Kernel")
        self.assertEqual(pc.base_name("relayout::cuda::Clean(float*)"), "Clean")
        self.assertEqual(pc.base_name("_Z3oldPf"), "_Z3oldPf")


class RulesTest(unittest.TestCase):
    def test_spills_and_stack_frames_fail_naming_the_function(self):
        failures = pc.check(parsed(REPORT_90A), {"k.cuh": ["Spill", "Clean"]})
        self.assertEqual(len(failures), 2, failures)
        self.assertIn("sm_90a kernel void relayout::cuda::Spill<64>(float*, int): 272 bytes stack "
                      "frame, 12 bytes spill stores, 16 bytes spill loads", failures[0])
        self.assertIn("UsesPrintf", failures[1])

    def test_a_declared_kernel_that_no_unit_compiled_fails(self):
        failures = pc.check(parsed(REPORT_90A.replace("Spill", "Other")),
                            {"k.cuh": ["Clean", "Missing"]})
        self.assertTrue(any("sm_90a kernel Missing (k.cuh) was compiled by no translation unit"
                            in f for f in failures), failures)

    def test_the_allowlist_says_why(self):
        saved = list(pc.ALLOWLIST)
        try:
            pc.ALLOWLIST[:] = [(r"Spill<", None, "a test of the allowlist"),
                               (r"UsesPrintf", "sm_80", "only on sm_80")]
            failures = pc.check(parsed(REPORT_90A), {})
            self.assertEqual(len(failures), 1, failures)
            self.assertIn("UsesPrintf", failures[0])  # allowed on sm_80 only
        finally:
            pc.ALLOWLIST[:] = saved

    def test_report_mode_exits_1_on_failures_and_0_when_clean(self):
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "kernels", "cuda", "kernels"))
            with open(os.path.join(root, "kernels", "cuda", "kernels", "k.cuh"), "w") as f:
                f.write("__global__ void Clean(float* x) {}\n")
            bad = os.path.join(root, "bad.txt")
            good = os.path.join(root, "good.txt")
            with open(bad, "w") as f:
                f.write(REPORT_90A)
            with open(good, "w") as f:
                f.write(REPORT_OLD.replace("8+0 bytes lmem", "0 bytes lmem").replace(
                    "_Z3oldPf", "_Z5CleanPf"))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(pc.main(["--root", root, "--report", bad]), 1)
                self.assertEqual(pc.main(["--root", root, "--report", good]), 0)
            self.assertIn("Spill<64>", out.getvalue())
            self.assertIn("1 declared kernels all compiled", out.getvalue())


if __name__ == "__main__":
    unittest.main()
