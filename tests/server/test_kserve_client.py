#!/usr/bin/env python3
"""relayoutd serve from tritonclient.grpc, the KServe v2 client nobody here wrote.

Starts `relayoutd serve` (the SmolLM2 GGUF in $RELAYOUT_SMOLLM2_GGUF when set,
else the stories260K GGUF), then checks, through tritonclient: server live and
ready, model ready, server and model metadata, the model config (decoupled),
ModelInfer in the vLLM layout (text_input + sampling_parameters JSON) and in
the TensorRT-LLM layout (flat max_tokens/temperature), a streaming
start_stream/async_stream_infer that collects the per-token responses up to
the empty final one, two requests in flight on one stream, an error that
leaves the stream open, and that the greedy text equals relayout.v1 Generate's
for the same prompt, temperature 0 and max tokens.

tritonclient lives in .venv-clients (tools/setup.sh); relayout.v1 Generate is
called from .venv's Python (grpcio-tools), in a child process, since the two
venvs pin different protobuf versions. Exits 77 (skipped) when either venv or
the model is missing, 1 then under RELAYOUT_REQUIRE_TEST_DATA=1:
  .venv-clients/bin/python tests/server/test_kserve_client.py \\
      --relayoutd build/server/relayoutd --proto-dir proto --shared-dir ../shared \\
      --native-python .venv/bin/python
"""
import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from relayoutd_process import Server, report_suite  # noqa: E402

SKIP = 77
ARGS = None
SERVER = None
MODEL_NAME = None
PROMPT = "Once upon a time"
MAX_TOKENS = 24


def skip():
    """Exit code of a skip: 77, or 1 under RELAYOUT_REQUIRE_TEST_DATA=1 (CI)."""
    return 1 if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1" else SKIP


def native_generate(port, prompt, max_new_tokens):
    """Greedy relayout.v1 Generate text, from .venv's Python."""
    out = subprocess.run(
        [ARGS.native_python, os.path.abspath(__file__), "--native", str(port), ARGS.proto_dir,
         prompt, str(max_new_tokens)],
        capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def native_main(argv):
    """Child process: prints {"text", "tokens"} of a greedy Generate as JSON."""
    port, proto_dir, prompt, n = argv
    from relayoutd_process import generate_stubs
    import grpc
    with tempfile.TemporaryDirectory() as stub_dir:
        _, _, generation_pb2, generation_pb2_grpc = generate_stubs(proto_dir, stub_dir)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = generation_pb2_grpc.GenerationStub(channel)
            request = generation_pb2.GenerateRequest(
                prompt=generation_pb2.Prompt(text=prompt),
                sampling=generation_pb2.SamplingParams(temperature=0, max_new_tokens=int(n)))
            text, tokens = "", 0
            for message in stub.Generate(request, timeout=60):
                text += "".join(t.text for t in message.tokens)
                tokens += len(message.tokens)
    print(json.dumps({"text": text, "tokens": tokens}))
    return 0


def text_inputs(prompt, sampling=None, stream=None, exclude_input=None, extra=()):
    """vLLM-layout inputs, as genai-perf and Triton's vLLM clients build them."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    inputs = []

    def add(name, array, dtype):
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        inputs.append(t)

    add("text_input", np.array([prompt.encode()], dtype=np.object_), "BYTES")
    if stream is not None:
        add("stream", np.array([stream], dtype=bool), "BOOL")
    if sampling is not None:
        add("sampling_parameters", np.array([json.dumps(sampling).encode()], dtype=np.object_),
            "BYTES")
    if exclude_input is not None:
        add("exclude_input_in_output", np.array([exclude_input], dtype=bool), "BOOL")
    for name, array, dtype in extra:
        add(name, array, dtype)
    return inputs


class KserveClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tritonclient.grpc as grpcclient
        cls.client = grpcclient.InferenceServerClient(f"127.0.0.1:{SERVER.port}")
        deadline = time.monotonic() + 60
        while not cls.client.is_server_ready():
            if time.monotonic() > deadline:
                raise RuntimeError("never ready")
            time.sleep(0.05)
        cls.native = native_generate(SERVER.port, PROMPT, MAX_TOKENS)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_health_and_readiness(self):
        from tritonclient.utils import InferenceServerException
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        self.assertTrue(self.client.is_model_ready(MODEL_NAME))
        self.assertTrue(self.client.is_model_ready(MODEL_NAME, "1"))
        with self.assertRaises(InferenceServerException):
            self.client.is_model_ready("no-such-model")

    def test_server_metadata_lists_only_what_is_implemented(self):
        metadata = self.client.get_server_metadata(as_json=True)
        self.assertEqual(metadata["name"], "relayoutd")
        self.assertEqual(sorted(metadata["extensions"]), ["model_configuration", "parameters"])

    def test_model_metadata_and_config(self):
        metadata = self.client.get_model_metadata(MODEL_NAME, as_json=True)
        self.assertEqual(metadata["name"], MODEL_NAME)
        self.assertEqual(metadata["versions"], ["1"])
        inputs = {t["name"]: t["datatype"] for t in metadata["inputs"]}
        self.assertEqual(inputs["text_input"], "BYTES")
        self.assertEqual(inputs["sampling_parameters"], "BYTES")
        self.assertEqual(inputs["max_tokens"], "INT32")
        config = self.client.get_model_config(MODEL_NAME, as_json=True)["config"]
        self.assertTrue(config["model_transaction_policy"]["decoupled"])
        self.assertEqual(config["input"][0]["name"], "text_input")

    def test_model_infer_vllm_layout_equals_native_generate(self):
        result = self.client.infer(MODEL_NAME, text_inputs(
            PROMPT, {"max_tokens": MAX_TOKENS, "temperature": 0}, exclude_input=True))
        self.assertEqual(result.as_numpy("text_output")[0].decode(), self.native["text"])

    def test_model_infer_prepends_the_prompt_by_default(self):
        result = self.client.infer(MODEL_NAME, text_inputs(
            PROMPT, {"max_tokens": MAX_TOKENS, "temperature": "0"}))
        self.assertEqual(result.as_numpy("text_output")[0].decode(),
                         PROMPT + self.native["text"])

    def test_model_infer_tensorrt_llm_layout(self):
        import numpy as np
        flat = [("max_tokens", np.array([[MAX_TOKENS]], dtype=np.int32), "INT32"),
                ("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
                ("exclude_input_in_output", np.array([[True]], dtype=bool), "BOOL")]
        result = self.client.infer(MODEL_NAME, text_inputs(PROMPT, extra=flat))
        self.assertEqual(result.as_numpy("text_output")[0].decode(), self.native["text"])

    def test_invalid_requests_are_invalid_argument(self):
        from tritonclient.utils import InferenceServerException
        with self.assertRaisesRegex(InferenceServerException, "sampling_parameters.temperature"):
            self.client.infer(MODEL_NAME, text_inputs(PROMPT, {"temperature": [1]}))
        with self.assertRaisesRegex(InferenceServerException, "not served here"):
            self.client.infer("other", text_inputs(PROMPT))

    def stream(self, requests, failing=()):
        """Sends (id, inputs) on one stream; returns {id: [results]} and the errors.

        tritonclient hands an error response over without its id: the ids in
        `failing` are the requests expected to fail."""
        done = queue.Queue()

        def callback(result, error):
            done.put((result, error))

        results, errors = {}, []
        self.client.start_stream(callback=callback)
        try:
            for request_id, inputs in requests:
                self.client.async_stream_infer(MODEL_NAME, inputs, request_id=request_id,
                                               enable_empty_final_response=True)
            pending = {request_id for request_id, _ in requests}
            while pending:
                result, error = done.get(timeout=60)
                if error is not None:
                    errors.append(str(error))
                    pending.discard(failing[len(errors) - 1] if len(errors) <= len(failing)
                                    else None)
                    if len(errors) > len(failing):
                        break
                    continue
                response = result.get_response()
                results.setdefault(response.id, []).append(result)
                if response.parameters["triton_final_response"].bool_param:
                    pending.discard(response.id)
        finally:
            self.client.stop_stream()
        return results, errors

    def test_stream_sends_the_tokens_as_they_come_then_an_empty_final_response(self):
        inputs = text_inputs(PROMPT, {"max_tokens": MAX_TOKENS, "temperature": 0}, stream=True)
        results, errors = self.stream([("s1", inputs)])
        self.assertEqual(errors, [])
        responses = results["s1"]
        final = responses[-1]
        self.assertIsNone(final.as_numpy("text_output"))
        pieces = [r.as_numpy("text_output")[0].decode() for r in responses[:-1]]
        self.assertGreater(len(pieces), 1)
        self.assertEqual("".join(pieces), self.native["text"])

    def test_two_requests_share_a_stream_and_an_error_leaves_it_open(self):
        a = text_inputs(PROMPT, {"max_tokens": MAX_TOKENS, "temperature": 0}, stream=True)
        bad = text_inputs(PROMPT, {"max_tokens": "lots"}, stream=True)
        b = text_inputs(PROMPT, {"max_tokens": MAX_TOKENS, "temperature": 0}, stream=False)
        results, errors = self.stream([("a", a), ("bad", bad), ("b", b)], failing=("bad",))
        self.assertEqual(len(errors), 1)
        self.assertIn("sampling_parameters.max_tokens", errors[0])
        text_a = "".join(r.as_numpy("text_output")[0].decode()
                         for r in results["a"] if r.as_numpy("text_output") is not None)
        self.assertEqual(text_a, self.native["text"])
        # Not streaming: one response with the whole text (and the prompt),
        # then the empty final one.
        self.assertEqual(len(results["b"]), 2)
        self.assertEqual(results["b"][0].as_numpy("text_output")[0].decode(),
                         PROMPT + self.native["text"])


def main():
    global ARGS, SERVER, MODEL_NAME
    if len(sys.argv) > 1 and sys.argv[1] == "--native":
        return native_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--relayoutd", required=True)
    p.add_argument("--proto-dir", required=True)
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--native-python", required=True)
    ARGS = p.parse_args()
    try:
        import numpy  # noqa: F401
        import tritonclient.grpc  # noqa: F401
    except ImportError as e:
        print(f"SKIPPED: {e} (tools/setup.sh installs tritonclient into .venv-clients)")
        return skip()
    if not os.access(ARGS.native_python, os.X_OK):
        print(f"SKIPPED: {ARGS.native_python} missing (tools/setup.sh creates .venv)")
        return skip()
    model = os.environ.get("RELAYOUT_SMOLLM2_GGUF", "")
    if not os.path.exists(model):
        model = os.path.join(ARGS.shared_dir, "models/stories260K/model.gguf")
    if not os.path.exists(model):
        print(f"SKIPPED: {model} missing")
        return skip()

    SERVER = Server(ARGS.relayoutd, model, listen_timeout=30)
    try:
        for line in SERVER.lines:
            m = re.search(r"kserve_model=\"?([^\s\"]+)", line)
            if m:
                MODEL_NAME = m.group(1)
        if MODEL_NAME is None:
            raise RuntimeError("no kserve_model in the listening line:\n" + "".join(SERVER.lines))
        print(f"model {model}, served as {MODEL_NAME}")
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(KserveClientTest)
        result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    finally:
        exit_code = SERVER.stop()
    return report_suite(result, SERVER, exit_code)


if __name__ == "__main__":
    sys.exit(main())
