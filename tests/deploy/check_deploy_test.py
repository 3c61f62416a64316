#!/usr/bin/env python3
"""The deploy checks catch what they claim to: each rule of check_deploy.py on
a Dockerfile or an exposition that breaks it. Run by CTest (deploy.self_test).
"""
import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_deploy  # pylint: disable=wrong-import-position

GOOD = """\
FROM debian:12.8 AS build
WORKDIR /src
COPY . .
RUN RELAYOUT_SKIP_VENV=1 tools/setup.sh

FROM debian:12.8-slim AS runtime
RUN apt-get update \\
    && apt-get install -y --no-install-recommends libgrpc++1.51 python3 \\
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/server/relayoutd /usr/local/bin/relayoutd
USER 10001:10001
HEALTHCHECK CMD ["true"]
ENTRYPOINT ["/usr/local/bin/relayoutd"]
"""


def errors_of(text):
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
        f.write(textwrap.dedent(text))
    try:
        return check_deploy.check_dockerfile_rules(f.name)[0]
    finally:
        os.unlink(f.name)


class DockerfileRulesTest(unittest.TestCase):
    def assertOneError(self, text, needle):
        errors = errors_of(text)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(needle, errors[0])

    def test_good_dockerfile_passes(self):
        self.assertEqual(errors_of(GOOD), [])

    def test_runtime_packages_are_read(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(GOOD)
        try:
            self.assertEqual(check_deploy.check_dockerfile_rules(f.name)[1],
                             ["libgrpc++1.51", "python3"])
        finally:
            os.unlink(f.name)

    def test_untagged_or_latest_base_fails(self):
        self.assertOneError(GOOD.replace("debian:12.8-slim", "debian"), "not pinned")
        self.assertOneError(GOOD.replace("debian:12.8-slim", "debian:latest"), "not pinned")

    def test_digest_pins_too(self):
        self.assertEqual(errors_of(GOOD.replace("debian:12.8-slim", "debian@sha256:" + "0" * 64)),
                         [])

    def test_root_final_user_fails(self):
        self.assertOneError(GOOD.replace("USER 10001:10001", "USER root"), "non-root USER")
        self.assertOneError(GOOD.replace("USER 10001:10001\n", ""), "non-root USER")

    def test_build_tools_in_final_stage_fail(self):
        self.assertOneError(GOOD.replace("python3 \\", "python3 cmake libgrpc++-dev \\"),
                            "build tools in the final stage: cmake libgrpc++-dev")

    def test_recommends_and_apt_lists_are_checked(self):
        self.assertOneError(GOOD.replace(" --no-install-recommends", ""),
                            "--no-install-recommends")
        self.assertOneError(GOOD.replace("rm -rf /var/lib/apt/lists/*", "true"), "apt lists")

    def test_missing_healthcheck_needs_a_reason(self):
        no_check = GOOD.replace('HEALTHCHECK CMD ["true"]\n', "")
        self.assertOneError(no_check, "HEALTHCHECK")
        self.assertEqual(errors_of("# no HEALTHCHECK: probes are Kubernetes'\n" + no_check), [])

    def test_copy_of_sources_into_final_stage_fails(self):
        self.assertOneError(GOOD.replace("USER 10001", "COPY tools /tools\nUSER 10001"),
                            "build context")
        self.assertOneError(GOOD.replace("/src/build/server/relayoutd", "/src"), "COPY --from")

    def test_build_outside_setup_script_fails(self):
        self.assertOneError(GOOD.replace("RUN RELAYOUT_SKIP_VENV=1 tools/setup.sh",
                                         "RUN cmake -S . -B build && tools/setup.sh"),
                            "one build script")
        self.assertOneError(GOOD.replace("tools/setup.sh", "./build.sh"), "tools/setup.sh")


class MetricNamesTest(unittest.TestCase):
    def test_exposition_families_and_samples(self):
        families, samples = check_deploy.exported_metric_names(
            "# HELP relayout_x_seconds x\n# TYPE relayout_x_seconds histogram\n"
            'relayout_x_seconds_bucket{le="1"} 0\nrelayout_x_seconds_sum 0\n'
            "# TYPE relayout_up gauge\nrelayout_up 1\n")
        self.assertEqual(families, {"relayout_x_seconds": "histogram", "relayout_up": "gauge"})
        self.assertEqual(samples, {"relayout_x_seconds_bucket", "relayout_x_seconds_sum",
                                   "relayout_up"})

    def test_used_names_cover_rules_and_dashboard(self):
        used = check_deploy.used_metric_names()
        self.assertIn("relayout_conversion_peak_bytes", used)
        self.assertIn("relayout_time_to_first_token_seconds_bucket", used)
        self.assertIn("relayout_queue_depth", used)
        self.assertTrue(any(w.startswith("panel") for w in used["relayout_kv_cache_usage_ratio"]))


if __name__ == "__main__":
    unittest.main()
