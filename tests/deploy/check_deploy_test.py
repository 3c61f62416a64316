#!/usr/bin/env python3
"""The deploy checks catch what they claim to: each rule of check_deploy.py on
a Dockerfile or an exposition that breaks it. Run by CTest (deploy.self_test).
"""
import os
import sys
import tempfile
import textwrap
import unittest

import yaml

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


def gateway_objects():
    """What overlays/cpu-inference-gateway renders, assembled from the files
    without kustomize: the base Deployment and NetworkPolicy as the base's
    labels and the component's patches leave them, the component's objects,
    and the ConfigMaps its generators make."""
    def load(*parts):
        with open(os.path.join(check_deploy.DEPLOY, "k8s", *parts), encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d]

    objects = []
    for name in ("inferencepool.yaml", "epp-rbac.yaml", "epp-deployment.yaml", "epp-service.yaml",
                 "epp-networkpolicy.yaml"):
        objects += load("components", "inference-gateway", name)
    server = load("base", "deployment.yaml")[0]
    policy = load("base", "networkpolicy.yaml")[0]
    for o in (server, policy):
        o["metadata"].setdefault("labels", {})["app.kubernetes.io/name"] = "relayoutd"
    server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "relayoutd"
    server["spec"]["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "http", "containerPort": 8000, "protocol": "TCP"})
    policy["spec"]["ingress"][0]["ports"].append({"port": "http", "protocol": "TCP"})
    with open(os.path.join(check_deploy.INFERENCE_GATEWAY, "endpoint-picker-config.yaml"),
              encoding="utf-8") as f:
        picker_config = f.read()
    objects += [server, policy,
                {"kind": "ConfigMap", "metadata": {"name": "relayoutd-flags"},
                 "data": {"RELAYOUTD_HTTP_LISTEN": "0.0.0.0:8000"}},
                {"kind": "ConfigMap", "metadata": {"name": "relayoutd-epp-config"},
                 "data": {"endpoint-picker.yaml": picker_config}}]
    objects += load("overlays", "cpu-inference-gateway", "httproute.yaml")
    return objects


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def epp_args(objects):
    return find(objects, "Deployment", "relayoutd-epp")["spec"]["template"]["spec"][
        "containers"][0]["args"]


class InferenceGatewayTest(unittest.TestCase):
    def errors(self, objects):
        return check_deploy.check_inference_gateway(objects, check_deploy.exported_gauges())

    def assertFailsWith(self, objects, needle):
        errors = self.errors(objects)
        self.assertTrue(any(needle in e for e in errors), errors)

    def test_the_component_is_consistent(self):
        self.assertEqual(self.errors(gateway_objects()), [])

    def test_exported_names_are_read_from_server_metrics(self):
        exported = check_deploy.exported_gauges()
        for name in ("relayout_queue_depth", "relayout_requests_running",
                     "relayout_kv_cache_usage_ratio", "vllm:num_requests_waiting",
                     "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                     "vllm:gpu_cache_usage_perc", "vllm:lora_requests_info",
                     "vllm:cache_config_info"):
            self.assertEqual(exported.get(name), "gauge", name)
        self.assertEqual(exported.get("relayout_generated_tokens_total"), "counter")

    def test_pool_selector_must_select_relayoutd_pods(self):
        objects = gateway_objects()
        find(objects, "InferencePool", "relayoutd")["spec"]["selector"]["matchLabels"][
            "app.kubernetes.io/component"] = "servr"
        self.assertFailsWith(objects, "does not match relayoutd's pod labels")

    def test_pool_selector_must_not_select_the_picker(self):
        objects = gateway_objects()
        find(objects, "InferencePool", "relayoutd")["spec"]["selector"]["matchLabels"] = {
            "app.kubernetes.io/part-of": "relayoutd"}
        self.assertFailsWith(objects, "also selects relayoutd-epp")

    def test_target_port_must_be_the_http_port(self):
        objects = gateway_objects()
        find(objects, "InferencePool", "relayoutd")["spec"]["targetPorts"] = [{"number": 8080}]
        self.assertFailsWith(objects, "not relayoutd's http port 8000")

    def test_http_listen_flag_must_match_the_port(self):
        objects = gateway_objects()
        find(objects, "ConfigMap", "relayoutd-flags")["data"]["RELAYOUTD_HTTP_LISTEN"] = ":8001"
        self.assertFailsWith(objects, "RELAYOUTD_HTTP_LISTEN")

    def test_endpoint_picker_ref_must_name_its_service(self):
        objects = gateway_objects()
        find(objects, "InferencePool", "relayoutd")["spec"]["endpointPickerRef"]["name"] = "epp"
        self.assertFailsWith(objects, "names Service 'epp', which is not in the manifests")
        objects = gateway_objects()
        find(objects, "InferencePool", "relayoutd")["spec"]["endpointPickerRef"]["port"] = {
            "number": 9003}
        self.assertFailsWith(objects, "has no port 9003")

    def test_metric_flags_must_name_exported_gauges(self):
        objects = gateway_objects()
        args = epp_args(objects)
        args[args.index("--total-queued-requests-metric=relayout_queue_depth")] = \
            "--total-queued-requests-metric=relayout_queue_length"
        self.assertFailsWith(objects, "relayout_queue_length is not a gauge relayoutd exports")
        objects = gateway_objects()
        args = epp_args(objects)
        args[args.index("--total-running-requests-metric=relayout_requests_running")] = \
            "--total-running-requests-metric=relayout_generated_tokens_total"
        self.assertFailsWith(objects, "(server/observe/server_metrics.*: counter)")
        objects = gateway_objects()
        args = epp_args(objects)
        args.remove("--kv-cache-usage-percentage-metric=relayout_kv_cache_usage_ratio")
        self.assertFailsWith(objects, "--kv-cache-usage-percentage-metric is not set")

    def test_picker_must_scrape_the_metrics_port_and_watch_its_pool(self):
        objects = gateway_objects()
        args = epp_args(objects)
        args.remove("--model-server-metrics-port=9464")
        self.assertFailsWith(objects, "--model-server-metrics-port")
        objects = gateway_objects()
        args = epp_args(objects)
        args[args.index("--pool-name=relayoutd")] = "--pool-name=relayout"
        self.assertFailsWith(objects, "--pool-name 'relayout'")

    def test_picker_image_must_be_pinned(self):
        objects = gateway_objects()
        find(objects, "Deployment", "relayoutd-epp")["spec"]["template"]["spec"]["containers"][
            0]["image"] = "registry.k8s.io/gateway-api-inference-extension/epp:main"
        self.assertFailsWith(objects, "is not pinned")

    def test_picker_needs_rights_on_pods(self):
        objects = gateway_objects()
        find(objects, "Role", "relayoutd-epp")["rules"].pop(0)
        self.assertFailsWith(objects, "may not get/list/watch pods")

    def test_picker_config_refers_to_defined_plugins(self):
        objects = gateway_objects()
        cm = find(objects, "ConfigMap", "relayoutd-epp-config")
        cm["data"]["endpoint-picker.yaml"] = cm["data"]["endpoint-picker.yaml"].replace(
            "  - type: prefix-cache-scorer\n", "")
        self.assertFailsWith(objects, "undefined plugins ['prefix-cache-scorer']")

    def test_route_must_send_to_this_pool(self):
        objects = gateway_objects()
        find(objects, "HTTPRoute", "relayoutd")["spec"]["rules"][0]["backendRefs"][0][
            "group"] = "inference.networking.x-k8s.io"
        self.assertFailsWith(objects, "HTTPRoute relayoutd sends to InferencePool")


if __name__ == "__main__":
    unittest.main()
