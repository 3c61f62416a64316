"""A `relayoutd serve` child process and our gRPC stubs, for Python clients.

Shared by tests/server/test_python_client.py and bench/serve.py.
"""

import re
import signal
import subprocess
import sys
import threading


class Server:
    """relayoutd serve on free loopback ports; its stderr is collected by a thread."""

    def __init__(self, relayoutd, model, extra=(), listen_timeout=60, launcher=()):
        self.proc = subprocess.Popen(
            [*launcher, relayoutd, "serve", "--model", model, "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        self.http_port = None  # the OpenAI API
        listening = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"grpc_port=(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    h = re.search(r"http_port=(\d+)", line)
                    self.http_port = int(h.group(1)) if h else None
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(listen_timeout) or self.port is None:
            self.proc.kill()
            raise RuntimeError("relayoutd did not listen:\n" + "".join(self.lines))

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def report_suite(result, server, exit_code):
    """Prints a test script's last line from its unittest result and the
    server's exit code after SIGTERM (not 0: a failure, with the server's
    log); returns the script's exit code."""
    failed = len(result.failures) + len(result.errors)
    if exit_code != 0:
        print(f"FAILED: relayoutd exited with {exit_code} after SIGTERM:\n" + "".join(server.lines))
        failed += 1
    passed = result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)
    print(f"===== {passed} passed, {failed} failed, {len(result.skipped)} skipped =====")
    return 0 if failed == 0 else 1


def generate_stubs(proto_dir, out_dir):
    """Compiles proto/relayout/v1 into out_dir and returns
    (model_pb2, model_pb2_grpc, generation_pb2, generation_pb2_grpc)."""
    from grpc_tools import protoc
    protos = ["relayout/v1/model.proto", "relayout/v1/generation.proto"]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", *protos])
    if rc != 0:
        raise RuntimeError(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)
    from relayout.v1 import generation_pb2, generation_pb2_grpc, model_pb2, model_pb2_grpc
    return model_pb2, model_pb2_grpc, generation_pb2, generation_pb2_grpc
