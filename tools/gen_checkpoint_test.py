#!/usr/bin/env python3
"""Tests of tools/gen_checkpoint.py against independent readers.

safetensors files are read with a parser written here from the format's spec;
GGUF files with the gguf package's GGUFReader, and quantized blocks compared
with the gguf package's own reference quantizers. Run with .venv/bin/python.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import gen_checkpoint as gc  # noqa: E402
from gguf_quants_test import KQUANT_DIR, require, rmse, rmse_bound  # noqa: E402

TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=192, vocab=512)
NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def generate(*args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, "gen_checkpoint.py"), *args],
                          capture_output=True, text=True)


def read_safetensors(path):
    """{name: numpy array}, with BF16 widened to float32."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            a = np.frombuffer(f.read(end - begin), NP_DTYPES[info["dtype"]]).reshape(info["shape"])
            if info["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            out[name] = a
        assert f.seek(0, 2) == base + max(i["data_offsets"][1] for k, i in header.items()
                                          if k != "__metadata__")
    return out


def hf_permute(w, heads):
    # llama.cpp's converter: HF rotate-half rows -> GGUF interleaved pairs.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def test_tiny_f32_has_hf_names_shapes_and_config(self):
        r = generate("--out", self.out, "--preset", "tiny", "--no-tie")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = read_safetensors(os.path.join(self.out, "model.safetensors"))
        self.assertEqual(len(t), 3 + 9 * 2)
        self.assertEqual(t["model.embed_tokens.weight"].shape, (512, 64))
        self.assertEqual(t["lm_head.weight"].shape, (512, 64))
        self.assertEqual(t["model.layers.1.self_attn.k_proj.weight"].shape, (32, 64))
        self.assertEqual(t["model.layers.1.mlp.down_proj.weight"].shape, (64, 192))
        self.assertEqual(t["model.norm.weight"].shape, (64,))
        w = t["model.layers.0.mlp.up_proj.weight"]
        self.assertAlmostEqual(float(w.std()), 0.02, delta=0.002)
        self.assertGreater(len(np.unique(w)), w.size // 2)
        self.assertAlmostEqual(float(t["model.norm.weight"].mean()), 1.0, delta=0.01)
        with open(os.path.join(self.out, "config.json")) as f:
            c = json.load(f)
        self.assertEqual((c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                          c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                          c["vocab_size"], c["tie_word_embeddings"], c["torch_dtype"]),
                         (64, 192, 2, 4, 2, 16, 512, False, "float32"))

    def test_tied_model_has_no_lm_head(self):
        self.assertEqual(generate("--out", self.out, "--tie").returncode, 0)
        t = read_safetensors(os.path.join(self.out, "model.safetensors"))
        self.assertNotIn("lm_head.weight", t)

    def test_f16_and_bf16_are_the_f32_values_rounded(self):
        dirs = {d: os.path.join(self.out, d) for d in ("F32", "F16", "BF16")}
        for d, path in dirs.items():
            self.assertEqual(generate("--out", path, "--dtype", d, "--seed", "7").returncode, 0)
        f32, f16, bf16 = (read_safetensors(os.path.join(dirs[d], "model.safetensors"))
                          for d in ("F32", "F16", "BF16"))
        for name, ref in f32.items():
            np.testing.assert_array_equal(f16[name], ref.astype(np.float16))
            np.testing.assert_allclose(bf16[name], ref, rtol=2**-8)

    def test_seed_changes_the_values(self):
        a, b = (os.path.join(self.out, s) for s in ("a", "b"))
        generate("--out", a, "--seed", "1")
        generate("--out", b, "--seed", "2")
        name = "model.layers.0.self_attn.q_proj.weight"
        self.assertFalse(np.array_equal(read_safetensors(a + "/model.safetensors")[name],
                                        read_safetensors(b + "/model.safetensors")[name]))

    def test_shards_hold_the_same_tensors_and_index_maps_each(self):
        one, three = os.path.join(self.out, "one"), os.path.join(self.out, "three")
        self.assertEqual(generate("--out", one, "--dtype", "F16").returncode, 0)
        r = generate("--out", three, "--dtype", "F16", "--shards", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(three, "model.safetensors.index.json")) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
        self.assertEqual(files, [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)])
        merged = {}
        for name in files:
            part = read_safetensors(os.path.join(three, name))
            self.assertTrue(part)
            for k in part:
                self.assertEqual(index["weight_map"][k], name)
            merged.update(part)
        whole = read_safetensors(os.path.join(one, "model.safetensors"))
        self.assertEqual(merged.keys(), whole.keys())
        for k in whole:
            np.testing.assert_array_equal(merged[k], whole[k])
        self.assertEqual(index["metadata"]["total_size"], sum(a.nbytes for a in whole.values()))

    def test_bad_arguments_are_refused_with_a_reason(self):
        r = generate("--out", self.out, "--format", "gguf", "--dtype", "Q4_0", "--hidden", "48",
                     "--heads", "4", "--kv-heads", "4")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("divisible by 32", r.stderr)
        r = generate("--out", self.out, "--dtype", "Q8_0")
        self.assertIn("safetensors takes F32 F16 BF16", r.stderr)
        r = generate("--out", self.out, "--heads", "3")
        self.assertIn("hidden % heads", r.stderr)


class GgufTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        hf = os.path.join(cls.dir.name, "hf")
        assert generate("--out", hf, "--seed", "3", "--no-tie").returncode == 0
        cls.hf = read_safetensors(os.path.join(hf, "model.safetensors"))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def gguf(self, dtype):
        path = os.path.join(self.dir.name, f"{dtype}.gguf")
        r = generate("--out", path, "--format", "gguf", "--dtype", dtype, "--seed", "3", "--no-tie")
        self.assertEqual(r.returncode, 0, r.stderr)
        return gguf.GGUFReader(path)

    def source(self, t):
        """The float32 values GGUF tensor t was made from, in GGUF row order."""
        hf_name = {x.gguf_name: x for x in gc.plan_tensors(gc.Shape(**TINY, tie=False))}[t.name]
        w = self.hf[hf_name.hf_name]
        return hf_permute(w, hf_name.rope_heads) if hf_name.rope_heads else w

    def test_metadata_is_llama(self):
        r = self.gguf("F32")
        field = {k: f.parts[f.data[0]] for k, f in r.fields.items() if f.data}
        self.assertEqual(bytes(field["general.architecture"]), b"llama")
        for key, want in [("llama.block_count", 2), ("llama.embedding_length", 64),
                          ("llama.feed_forward_length", 192), ("llama.attention.head_count", 4),
                          ("llama.attention.head_count_kv", 2), ("llama.rope.dimension_count", 16),
                          ("llama.context_length", 2048), ("general.alignment", 32)]:
            self.assertEqual(int(field[key][0]), want, key)
        self.assertAlmostEqual(float(field["llama.rope.freq_base"][0]), 10000.0)
        self.assertAlmostEqual(float(field["llama.attention.layer_norm_rms_epsilon"][0]), 1e-5)

    def test_f32_holds_the_hf_values_with_qk_rows_permuted(self):
        r = self.gguf("F32")
        self.assertEqual(len(r.tensors), len(self.hf))
        by_name = {t.name: t for t in r.tensors}
        self.assertEqual([int(d) for d in by_name["blk.0.ffn_down.weight"].shape], [192, 64])
        self.assertEqual([int(d) for d in by_name["token_embd.weight"].shape], [64, 512])
        for t in r.tensors:
            self.assertEqual(t.tensor_type, QT.F32)
            np.testing.assert_array_equal(np.asarray(t.data), self.source(t), t.name)
        self.assertFalse(np.array_equal(by_name["blk.0.attn_q.weight"].data,
                                        self.hf["model.layers.0.self_attn.q_proj.weight"]))

    def check_quantized(self, dtype, qtype, step_per_scale):
        r = self.gguf(dtype)
        for t in r.tensors:
            src = self.source(t)
            if t.name.endswith("norm.weight"):
                self.assertEqual(t.tensor_type, QT.F32, t.name)
                continue
            self.assertEqual(t.tensor_type, qtype, t.name)
            raw = np.asarray(t.data)
            # Bit-exact with the reference quantizer, and close to the source.
            np.testing.assert_array_equal(raw.reshape(-1), gguf.quants.quantize(src, qtype).reshape(-1),
                                          t.name)
            deq = gguf.quants.dequantize(raw, qtype).reshape(src.shape)
            blocks = src.reshape(-1, 32)
            bound = (blocks.max(axis=1) - blocks.min(axis=1)) * step_per_scale + 1e-6
            err = np.abs(deq - src).reshape(-1, 32).max(axis=1)
            self.assertTrue(np.all(err <= bound), t.name)

    def test_q8_0(self):
        self.check_quantized("Q8_0", QT.Q8_0, 1 / 127)

    def test_q4_0(self):
        self.check_quantized("Q4_0", QT.Q4_0, 1 / 8)

    def test_q4_1(self):
        self.check_quantized("Q4_1", QT.Q4_1, 1 / 15)

    def test_f16_weights_and_f32_norms(self):
        r = self.gguf("F16")
        types = {t.name: t.tensor_type for t in r.tensors}
        self.assertEqual(types["blk.1.attn_v.weight"], QT.F16)
        self.assertEqual(types["output_norm.weight"], QT.F32)


# The shape of $RELAYOUT_SHARED_DIR/models/synthetic-kquant's models, which
# llama-quantize made: every row is whole super-blocks of 256.
KQ_SHAPE = dict(hidden=256, layers=4, heads=4, kv_heads=2, ffn=768, vocab=512)


def shape_args(shape):
    return [a for k, v in shape.items() for a in (f"--{k.replace('_', '-')}", str(v))]


class MixTest(unittest.TestCase):
    """llama-quantize's file mixes: per-tensor types and values."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.hf = {}
        for name, shape, tie in (("kq", KQ_SHAPE, "--no-tie"), ("tiny", TINY, "--tie")):
            out = os.path.join(cls.dir.name, name)
            assert generate("--out", out, "--seed", "5", tie, *shape_args(shape)).returncode == 0
            cls.hf[name] = read_safetensors(os.path.join(out, "model.safetensors"))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def gguf(self, mix, name, *extra):
        shape, tie = (KQ_SHAPE, "--no-tie") if name == "kq" else (TINY, "--tie")
        path = os.path.join(self.dir.name, f"{name}-{mix}{''.join(extra)}.gguf")
        if os.path.exists(path):  # made by an earlier test
            return gguf.GGUFReader(path)
        r = generate("--out", path, "--format", "gguf", "--dtype", mix, "--seed", "5", tie,
                     *shape_args(shape), *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return gguf.GGUFReader(path)

    def check_values(self, reader, name):
        shape = KQ_SHAPE if name == "kq" else TINY
        plan = {t.gguf_name: t for t in gc.plan_tensors(gc.Shape(**shape, tie=name == "tiny"))}
        for t in reader.tensors:
            p = plan[t.name]
            src = self.hf[name][p.hf_name]
            src = hf_permute(src, p.rope_heads) if p.rope_heads else src
            deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(src.shape)
            if t.tensor_type == QT.F32:
                np.testing.assert_array_equal(deq, src, t.name)
            else:
                self.assertLess(rmse(deq, src) / float(src.std()), rmse_bound(t.tensor_type),
                                (t.name, t.tensor_type.name))

    def test_mixes_hold_the_weights_within_each_types_bound(self):
        for mix in gc.MIX_DTYPES:
            r = self.gguf(mix, "kq")
            self.assertEqual(int(r.fields["general.file_type"].parts[-1][0]), gc.FILE_TYPES[mix])
            self.check_values(r, "kq")

    def test_mixes_give_each_tensor_llama_quantizes_type(self):
        for mix in gc.MIX_DTYPES:
            ref = gguf.GGUFReader(require(os.path.join(KQUANT_DIR, f"kq-{mix}.gguf")))
            ours = self.gguf(mix, "kq")
            self.assertEqual({t.name: t.tensor_type.name for t in ours.tensors},
                             {t.name: t.tensor_type.name for t in ref.tensors}, mix)
            self.assertEqual(int(ours.fields["general.file_type"].parts[-1][0]),
                             int(ref.fields["general.file_type"].parts[-1][0]), mix)

    def test_rows_not_whole_super_blocks_fall_back_to_32_element_types(self):
        # hidden 64 and ffn 192 are not multiples of 256; the embedding is tied,
        # so it gets the output head's type, Q8_0 where Q6_K does not fit.
        for mix, base, more in (("Q4_K_M", "Q5_0", "Q8_0"), ("Q5_K_M", "Q5_1", "Q8_0"),
                                ("Q6_K", "Q8_0", "Q8_0"), ("Q3_K_M", "IQ4_NL", "Q5_1"),
                                ("Q2_K", "IQ4_NL", "IQ4_NL")):
            r = self.gguf(mix, "tiny")
            types = {t.name: t.tensor_type.name for t in r.tensors}
            self.assertEqual(types["token_embd.weight"], "Q8_0", mix)
            self.assertEqual(types["blk.0.attn_q.weight"], base, mix)
            self.assertEqual(types["blk.0.ffn_gate.weight"], base, mix)
            # attn_v of layer 1 of 2 before its fallback: Q6_K in Q4_K_M and
            # Q5_K_M (the last eighth), Q5_K in Q3_K_M (the first two), Q3_K in Q2_K.
            self.assertEqual(types["blk.1.attn_v.weight"], more, mix)
            self.assertEqual(types["output_norm.weight"], "F32")
            self.check_values(r, "tiny")

    def test_bits_fill_gives_valid_blocks_of_every_type(self):
        for mix in gc.MIX_DTYPES:
            r = self.gguf(mix, "kq", "--fill", "bits")
            for t in r.tensors:
                w = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
                self.assertTrue(np.all(np.isfinite(w)), (mix, t.name))
                if t.tensor_type == QT.F32:
                    self.assertAlmostEqual(float(w.mean()), 1.0, delta=0.01)
                    continue
                self.assertLess(float(np.abs(w).max()), 0.3, (mix, t.name))
                self.assertGreater(float(w.std()), 0.005, (mix, t.name))
                self.assertLess(float(w.std()), 0.06, (mix, t.name))


class BitsFillTest(unittest.TestCase):
    """--fill bits: valid numbers of the promised size, fast, reproducible."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def safetensors(self, dtype, *args):
        out = os.path.join(self.out, dtype + "-".join(args))
        r = generate("--out", out, "--dtype", dtype, "--fill", "bits", "--no-tie", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return read_safetensors(os.path.join(out, "model.safetensors"))

    def test_floats_are_finite_and_weight_sized_with_norms_near_one(self):
        for dtype in ("BF16", "F16", "F32"):
            t = self.safetensors(dtype)
            self.assertEqual(len(t), 3 + 9 * 2)
            for name, w in t.items():
                w = w.astype(np.float32)
                self.assertTrue(np.all(np.isfinite(w)), (dtype, name))
                if w.ndim == 1:
                    self.assertAlmostEqual(float(w.mean()), 1.0, delta=0.01, msg=name)
                    continue
                a = np.abs(w)
                self.assertTrue(np.all((a >= 2**-7) & (a < 2**-5)), (dtype, name))
                self.assertAlmostEqual(float((w > 0).mean()), 0.5, delta=0.1, msg=name)
                self.assertGreater(len(np.unique(w)), min(w.size // 4, 200), (dtype, name))

    def test_the_same_seed_gives_the_same_file_whatever_the_workers(self):
        a = os.path.join(self.out, "a")
        b = os.path.join(self.out, "b")
        c = os.path.join(self.out, "c")
        for out, args in ((a, ["--workers", "1"]), (b, ["--workers", "3"]), (c, ["--seed", "9"])):
            r = generate("--out", out, "--dtype", "BF16", "--fill", "bits", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        read = lambda d: open(os.path.join(d, "model.safetensors"), "rb").read()  # noqa: E731
        self.assertEqual(read(a), read(b))
        self.assertNotEqual(read(a), read(c))

    def test_many_chunks_per_tensor_and_shards(self):
        saved = gc.BITS_CHUNK_BYTES
        try:
            gc.BITS_CHUNK_BYTES = 1000  # several chunks of whole rows per tensor
            s = gc.Shape(**TINY, tie=False)
            for shards in (1, 3):
                out = os.path.join(self.out, f"s{shards}")
                gc.write_safetensors(out, s, "BF16", shards, 5, fill="bits", workers=4)
            one = read_safetensors(os.path.join(self.out, "s1", "model.safetensors"))
            three = {}
            for i in range(3):
                three.update(read_safetensors(
                    os.path.join(self.out, "s3", f"model-0000{i + 1}-of-00003.safetensors")))
            self.assertEqual(sorted(one), sorted(three))
            for name, w in one.items():
                np.testing.assert_array_equal(w, three[name], name)
                self.assertTrue(np.all(np.isfinite(w)), name)
            rows = one["model.layers.0.mlp.up_proj.weight"]  # 192 rows of 128 bytes
            self.assertFalse(np.array_equal(rows[:7], rows[7:14]))  # chunks differ
        finally:
            gc.BITS_CHUNK_BYTES = saved

    def test_quantized_blocks_have_valid_scales(self):
        for dtype, qtype, lo, hi in (("Q4_0", QT.Q4_0, 2**-8, 2**-7),
                                     ("Q4_1", QT.Q4_1, 2**-9, 2**-8),
                                     ("Q8_0", QT.Q8_0, 2**-12, 2**-11)):
            path = os.path.join(self.out, dtype + ".gguf")
            r = generate("--out", path, "--format", "gguf", "--dtype", dtype, "--fill", "bits",
                         "--no-tie")
            self.assertEqual(r.returncode, 0, r.stderr)
            reader = gguf.GGUFReader(path)
            self.assertEqual(len(reader.tensors), 3 + 9 * 2)
            for t in reader.tensors:
                raw = np.asarray(t.data)
                if t.name.endswith("norm.weight"):
                    self.assertEqual(t.tensor_type, QT.F32)
                    self.assertAlmostEqual(float(raw.mean()), 1.0, delta=0.01)
                    continue
                self.assertEqual(t.tensor_type, qtype, t.name)
                blocks = raw.reshape(-1, gc.BLOCK_BYTES[dtype])
                d = blocks[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]
                self.assertTrue(np.all((d >= lo) & (d < hi)), (dtype, t.name))
                if dtype == "Q4_1":
                    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)[:, 0]
                    self.assertTrue(np.all((m <= -2**-5) & (m > -2**-4)), t.name)
                w = gguf.quants.dequantize(raw, qtype)
                self.assertTrue(np.all(np.isfinite(w)), t.name)
                self.assertLess(float(np.abs(w).max()), 0.15, t.name)
                self.assertGreater(float(w.std()), 0.005, t.name)


class PresetTest(unittest.TestCase):
    def resolve(self, *args):
        return gc.resolve(gc.parse_args(["--out", "x", *args]))

    def test_size_presets_come_near_their_target(self):
        for args, fmt, target in [(["--preset", "1gib"], "safetensors", 1 << 30),
                                  (["--preset", "1gib", "--dtype", "F32"], "safetensors", 1 << 30),
                                  (["--preset", "2gib-f16"], "safetensors", 2 << 30),
                                  (["--preset", "1gib", "--format", "gguf", "--dtype", "Q4_0"],
                                   "gguf", 1 << 30)]:
            s, dtype = self.resolve(*args)
            self.assertLess(abs(gc.model_bytes(s, fmt, dtype) / target - 1), 0.06, args)

    def test_8b_is_llama3_8b(self):
        s, dtype = self.resolve("--preset", "8b")
        params = sum(int(np.prod(t.shape)) for t in gc.plan_tensors(s))
        self.assertEqual(dtype, "F16")
        self.assertEqual(params, 8030261248)  # Meta-Llama-3-8B's parameter count


if __name__ == "__main__":
    unittest.main()
