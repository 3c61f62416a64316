#!/usr/bin/env python3
"""Tests of tools/gguf_quants.py and tools/requantize_gguf.py.

Every quantizer's bytes are read back with the gguf package's dequantizers
(written from ggml's, independently of ours), so a layout error shows as a
large error. Blocks quantized by llama.cpp's llama-quantize come from
$RELAYOUT_SHARED_DIR/models/synthetic-kquant (default: ../shared next to the
checkout); those tests skip without it, or fail when
RELAYOUT_REQUIRE_TEST_DATA is set. Run with .venv/bin/python.
"""

import glob
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import gguf_quants as gq  # noqa: E402
import requantize_gguf  # noqa: E402

SHARED = os.environ.get("RELAYOUT_SHARED_DIR", os.path.join(TOOLS, "..", "..", "shared"))
KQUANT_DIR = os.path.join(SHARED, "models", "synthetic-kquant")

# type: (bits per value, elements and bytes per block as the format defines them
# in kernels/quant_format.h)
TYPES = {
    QT.Q2_K: (2, 256, 84),
    QT.Q3_K: (3, 256, 110),
    QT.Q4_K: (4, 256, 144),
    QT.Q5_K: (5, 256, 176),
    QT.Q6_K: (6, 256, 210),
    QT.IQ4_NL: (4, 32, 18),
    QT.Q5_0: (5, 32, 22),
    QT.Q5_1: (5, 32, 24),
    QT.Q4_0: (4, 32, 18),
    QT.Q4_1: (4, 32, 20),
    QT.Q8_0: (8, 32, 34),
}


def rmse_bound(qtype):
    """Bound on the RMSE of qtype on N(0, 1) values.

    A uniform quantizer of step D has an RMSE of D / sqrt(12). A sub-block of
    16 or 32 normal values spans about 4 sigma, so b bits give a step of about
    4 / (2^b - 1); 5 / (2^b - 1) leaves room for the quantized scales and for
    the symmetric types' unused code.
    """
    bits = TYPES[qtype][0]
    return 5 / ((2**bits - 1) * math.sqrt(12))


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def round_trip(x, qtype):
    return gguf.quants.dequantize(gq.quantize(x, qtype), qtype).reshape(x.shape)


def require(path):
    if not os.path.exists(path):
        if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA"):
            raise AssertionError(f"missing test data: {path}")
        raise unittest.SkipTest(f"no {path}")
    return path


class QuantizeTest(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(1234)

    def test_rmse_on_normal_values_is_within_the_bit_width_bound(self):
        x = self.rng.standard_normal((64, 2048)).astype(np.float32)
        for qtype in TYPES:
            e = rmse(round_trip(x, qtype), x)
            self.assertLess(e, rmse_bound(qtype), qtype.name)
        # Weight-sized values: the same relative error (f16 scales do not underflow).
        w = x * np.float32(0.02)
        for qtype in TYPES:
            self.assertLess(rmse(round_trip(w, qtype), w) / 0.02, rmse_bound(qtype), qtype.name)

    def test_more_bits_give_less_error(self):
        x = self.rng.standard_normal((16, 2048)).astype(np.float32)
        errs = [rmse(round_trip(x, t), x) for t in (QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K)]
        self.assertEqual(errs, sorted(errs, reverse=True))
        for a, b in zip(errs, errs[1:]):
            self.assertGreater(a / b, 1.6)  # about 2 per bit

    def test_byte_sizes_are_the_formats(self):
        x = self.rng.standard_normal((3, 512)).astype(np.float32)
        for qtype, (_, elems, nbytes) in TYPES.items():
            q = gq.quantize(x, qtype)
            self.assertEqual(q.dtype, np.uint8)
            self.assertEqual(q.shape, (3, 512 // elems * nbytes), qtype.name)
            self.assertEqual(gq.block_size(qtype), (elems, nbytes))
        # Several chunks, one row of many blocks, a row of one block.
        for shape in ((1, gq.CHUNK_ELEMS * 3 + 256), (1, 256)):
            x = self.rng.standard_normal(shape).astype(np.float32)
            for qtype in (QT.Q4_K, QT.Q6_K, QT.IQ4_NL):
                self.assertLess(rmse(round_trip(x, qtype), x), rmse_bound(qtype), qtype.name)
        with self.assertRaisesRegex(ValueError, "not whole Q4_K blocks"):
            gq.quantize(np.zeros((2, 320), np.float32), QT.Q4_K)

    def test_threads_give_the_same_bytes(self):
        x = self.rng.standard_normal((8, gq.CHUNK_ELEMS // 2)).astype(np.float32)
        for qtype in (QT.Q3_K, QT.Q5_K, QT.Q5_0):
            np.testing.assert_array_equal(gq.quantize(x, qtype), gq.quantize(x, qtype, workers=3))

    def test_zero_blocks_and_zero_sub_blocks_are_exact_zeros(self):
        x = self.rng.standard_normal((4, 512)).astype(np.float32)
        x[0] = 0  # whole super-blocks
        x[1, :32] = 0  # the first sub-block (of 16 or 32) and block of 32
        x[2, 256 + 32:256 + 64] = 0
        for qtype in TYPES:
            y = round_trip(x, qtype)
            self.assertTrue(np.all(np.isfinite(y)), qtype.name)
            np.testing.assert_array_equal(y[x == 0], 0, qtype.name)
            self.assertLess(rmse(y[3], x[3]), rmse_bound(qtype), qtype.name)

    def test_constant_blocks_come_back_within_f16_and_scale_rounding(self):
        # (Large enough that Q4_K's and Q5_K's d = c / 945 or c / 1953 is a normal f16.)
        for c in (0.37, -1.25, 5.0, -100.0):
            x = np.full((2, 512), c, np.float32)
            for qtype in TYPES:
                y = round_trip(x, qtype)
                # A constant takes the largest code: only the f16 scales' and a
                # 4- or 6-bit sub-block scale's rounding remain.
                np.testing.assert_allclose(y, c, rtol=2e-3, err_msg=f"{qtype.name} {c}")

    def test_large_magnitudes(self):
        x = self.rng.standard_normal((8, 1024)).astype(np.float32) * np.float32(1e4)
        x[0, 5] = 6e4  # near f16's largest finite value
        for qtype in TYPES:
            y = round_trip(x, qtype)
            self.assertTrue(np.all(np.isfinite(y)), qtype.name)
            self.assertLess(rmse(y[1:], x[1:]) / 1e4, rmse_bound(qtype), qtype.name)
            self.assertLess(abs(y[0, 5] - 6e4) / 6e4, 0.2, qtype.name)

    def test_f32_f16_bf16_are_conversions(self):
        x = self.rng.standard_normal((2, 64)).astype(np.float32)
        np.testing.assert_array_equal(gq.quantize(x, QT.F32), x)
        np.testing.assert_array_equal(gq.quantize(x, QT.F16), x.astype(np.float16))
        np.testing.assert_allclose(gguf.quants.dequantize(gq.quantize(x, QT.BF16), QT.BF16), x,
                                   rtol=2**-8)


class RealBlocksTest(unittest.TestCase):
    """Blocks that llama-quantize wrote: quantizing their values again finds
    (nearly) the same blocks."""

    # Bound on RMSE(requantized - values) relative to the values' own error
    # against the F16 weights they were made from: the new error adds at most
    # 0.5% to the old one (sqrt(1 + 0.1^2)).
    RELATIVE = 0.1

    def test_requantizing_quantized_values_is_near_lossless(self):
        f16 = gguf.GGUFReader(require(os.path.join(KQUANT_DIR, "kq-f16.gguf")))
        source = {t.name: gguf.quants.dequantize(t.data, t.tensor_type) for t in f16.tensors}
        seen = {}
        for path in sorted(glob.glob(os.path.join(KQUANT_DIR, "kq-*.gguf"))):
            for t in gguf.GGUFReader(path).tensors:
                if t.tensor_type not in TYPES or seen.get(t.tensor_type, 0) >= 3:
                    continue
                seen[t.tensor_type] = seen.get(t.tensor_type, 0) + 1
                values = gguf.quants.dequantize(t.data, t.tensor_type)
                again = round_trip(values, t.tensor_type)
                what = f"{os.path.basename(path)} {t.name} {t.tensor_type.name}"
                if TYPES[t.tensor_type][1] == 32:
                    # One scale per block, found from the block's extreme value:
                    # the same block again.
                    np.testing.assert_array_equal(again, values, what)
                else:
                    self.assertLessEqual(rmse(again, values),
                                         self.RELATIVE * rmse(values, source[t.name]), what)
        self.assertEqual(set(seen), set(TYPES) - {QT.Q4_1})  # every type but Q4_1 is there


class MixTest(unittest.TestCase):
    def types(self, mix, n_layers=4, hidden=256, ffn=768, tied=False, n_gqa=2):
        tensors = [("token_embd.weight", [hidden, 512])]
        for i in range(n_layers):
            tensors += [(f"blk.{i}.attn_norm.weight", [hidden]),
                        (f"blk.{i}.attn_q.weight", [hidden, hidden]),
                        (f"blk.{i}.attn_v.weight", [hidden, hidden // n_gqa]),
                        (f"blk.{i}.attn_output.weight", [hidden, hidden]),
                        (f"blk.{i}.ffn_down.weight", [ffn, hidden])]
        if not tied:
            tensors.append(("output.weight", [hidden, 512]))
        return {k: v.name for k, v in gq.mix_types(mix, tensors, n_layers, n_gqa).items()}

    def test_q4_k_m_gives_q6_k_to_attn_v_and_ffn_down_of_the_use_more_bits_layers(self):
        t = self.types("Q4_K_M", n_layers=30)
        # llama.cpp's use_more_bits(i, 30): i < 3, i >= 26, or (i - 3) % 3 == 2.
        more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        for i in range(30):
            want = "Q6_K" if i in more else "Q4_K"
            self.assertEqual(t[f"blk.{i}.attn_v.weight"], want, i)
            self.assertEqual(t[f"blk.{i}.ffn_down.weight"], want, i)
            self.assertEqual(t[f"blk.{i}.attn_q.weight"], "Q4_K")
            self.assertEqual(t[f"blk.{i}.attn_norm.weight"], "F32")
        self.assertEqual((t["output.weight"], t["token_embd.weight"]), ("Q6_K", "Q4_K"))

    def test_fallbacks_when_rows_are_not_whole_super_blocks(self):
        # SmolLM2's shape: hidden 576 (2.25 super-blocks), ffn 1536; tied embedding.
        for mix, base, more in (("Q4_K_M", "Q5_0", "Q8_0"), ("Q5_K_M", "Q5_1", "Q8_0"),
                                ("Q6_K", "Q8_0", "Q8_0")):
            t = self.types(mix, n_layers=30, hidden=576, ffn=1536, tied=True, n_gqa=3)
            self.assertEqual(t["blk.4.attn_q.weight"], base, mix)
            self.assertEqual(t["blk.0.attn_v.weight"], more, mix)
            self.assertEqual(t["token_embd.weight"], "Q8_0", mix)  # the output head's rule
            self.assertNotIn("output.weight", t)
            self.assertEqual(t["blk.4.ffn_down.weight"], gq.MIXES[mix][1].name, mix)
        t = self.types("Q2_K", hidden=320, ffn=320)
        self.assertEqual((t["blk.0.attn_q.weight"], t["blk.0.ffn_down.weight"]),
                         ("IQ4_NL", "IQ4_NL"))
        t = self.types("Q3_K_M", hidden=48, ffn=48)  # not even whole blocks of 32
        self.assertEqual(t["blk.0.attn_q.weight"], "F16")

    def test_ftype_numbers_are_llama_cpps(self):
        self.assertEqual({m: gq.MIXES[m][0] for m in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M",
                                                      "Q2_K", "Q5_0", "Q5_1", "IQ4_NL")},
                         dict(Q4_K_M=15, Q5_K_M=17, Q6_K=18, Q3_K_M=12, Q2_K=10, Q5_0=8, Q5_1=9,
                              IQ4_NL=25))


def field_bytes(reader):
    return {k: b"".join(p.tobytes() for p in f.parts) for k, f in reader.fields.items()
            if not k.startswith("GGUF.")}


class RequantizeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def run_tool(self, *args):
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "requantize_gguf.py"), *args],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stderr

    def test_generated_f16_checkpoint_to_q4_k_m(self):
        src = self.path("f16.gguf")
        # hidden 320: rows of 320 are not whole super-blocks, ffn_down's 768 are.
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "gen_checkpoint.py"), "--out", src,
                            "--format", "gguf", "--dtype", "F16", "--hidden", "320", "--heads", "4",
                            "--kv-heads", "2", "--ffn", "768", "--layers", "4", "--tie"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        log = self.run_tool(src, self.path("q.gguf"), "--mix", "q4_k_m")
        a, b = gguf.GGUFReader(src), gguf.GGUFReader(self.path("q.gguf"))
        fa, fb = field_bytes(a), field_bytes(b)
        self.assertEqual(list(fa), list(fb))
        for k in fa:
            if k != "general.file_type":
                self.assertEqual(fa[k], fb[k], k)
        self.assertEqual(int(b.fields["general.file_type"].parts[-1][0]), 15)
        want = {"token_embd.weight": "Q8_0", "output_norm.weight": "F32"}
        for i in range(4):
            more = i >= 2  # use_more_bits(i, 4)
            want.update({f"blk.{i}.attn_norm.weight": "F32", f"blk.{i}.ffn_norm.weight": "F32",
                         f"blk.{i}.attn_q.weight": "Q5_0", f"blk.{i}.attn_k.weight": "Q5_0",
                         f"blk.{i}.attn_output.weight": "Q5_0", f"blk.{i}.ffn_gate.weight": "Q5_0",
                         f"blk.{i}.ffn_up.weight": "Q5_0",
                         f"blk.{i}.attn_v.weight": "Q8_0" if more else "Q5_0",
                         f"blk.{i}.ffn_down.weight": "Q6_K" if more else "Q4_K"})
        self.assertEqual({t.name: t.tensor_type.name for t in b.tensors}, want)
        self.assertIn("9 F32, 2 Q4_K, 22 Q5_0, 2 Q6_K, 3 Q8_0", log)
        for ta, tb in zip(a.tensors, b.tensors):
            self.assertEqual((ta.name, list(ta.shape)), (tb.name, list(tb.shape)))
            x = gguf.quants.dequantize(ta.data, ta.tensor_type)
            y = gguf.quants.dequantize(tb.data, tb.tensor_type)
            if tb.tensor_type == QT.F32:
                np.testing.assert_array_equal(y, x, ta.name)
            else:
                self.assertLess(rmse(y, x) / float(x.std()), rmse_bound(tb.tensor_type), ta.name)

    def test_llama_quantize_types_and_metadata_of_a_real_file(self):
        src = require(os.path.join(KQUANT_DIR, "kq-f16.gguf"))
        ref = gguf.GGUFReader(os.path.join(KQUANT_DIR, "kq-Q4_K_M.gguf"))
        self.run_tool(src, self.path("q.gguf"), "--mix", "Q4_K_M", "--workers", "2")
        out = gguf.GGUFReader(self.path("q.gguf"))
        self.assertEqual({t.name: t.tensor_type for t in out.tensors},
                         {t.name: t.tensor_type for t in ref.tensors})
        f_src, f_out = field_bytes(gguf.GGUFReader(src)), field_bytes(out)
        self.assertIn("tokenizer.ggml.tokens", f_out)
        self.assertEqual({k: v for k, v in f_src.items() if k != "general.file_type"},
                         {k: v for k, v in f_out.items() if k != "general.file_type"})
        self.assertEqual(int(out.fields["general.file_type"].parts[-1][0]),
                         int(ref.fields["general.file_type"].parts[-1][0]))
        # Our error against the F16 weights is about llama-quantize's.
        f16 = {t.name: t for t in gguf.GGUFReader(src).tensors}
        ours = {t.name: t for t in out.tensors}
        for t in ref.tensors:
            if t.tensor_type == QT.F32:
                continue
            x = gguf.quants.dequantize(f16[t.name].data, f16[t.name].tensor_type)
            e_ref = rmse(gguf.quants.dequantize(t.data, t.tensor_type), x)
            e_ours = rmse(gguf.quants.dequantize(ours[t.name].data, t.tensor_type), x)
            self.assertLess(e_ours, 1.05 * e_ref, t.name)

    def test_plan_reads_the_shape_from_metadata(self):
        reader = gguf.GGUFReader(require(os.path.join(KQUANT_DIR, "kq-f16.gguf")))
        types = requantize_gguf.plan(reader, "Q3_K_M")
        ref = gguf.GGUFReader(os.path.join(KQUANT_DIR, "kq-Q3_K_M.gguf"))
        self.assertEqual(types, {t.name: t.tensor_type for t in ref.tensors})


if __name__ == "__main__":
    unittest.main()
