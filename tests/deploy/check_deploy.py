#!/usr/bin/env python3
"""Offline checks of deploy/: images, Kubernetes manifests, alerts, dashboard.

One check per run, each a CTest test (label deploy, tests/deploy/CMakeLists.txt):

  manifests   kubectl kustomize renders every overlay; the output validates
              against the Kubernetes schemas in strict mode (kubernetes-validate,
              schemas bundled, at the oldest and newest versions we support);
              the objects the schemas do not know (PodMonitor, PrometheusRule,
              InferencePool, HTTPRoute) and the links between objects are
              checked here, the inference gateway's against the metrics
              server/observe/server_metrics.* exports.
  yamllint    deploy/ and .yamllint are yamllint-clean (.yamllint).
  dockerfiles hadolint, then the rules hadolint does not know (below).
  rules       promtool check rules and promtool test rules on the rule groups
              extracted from the PrometheusRule (deploy/prometheus/).
  metrics     every metric name used by the rules, the dashboard and the
              autoscaler is exported by a live `relayoutd serve`.
  checkov     security scan of the rendered manifests and the Dockerfiles: no
              failed check, and every skip carries a reason.

Exit status: 0 passed, 1 failed, 77 skipped (a tool is missing; the message
says which and how to get it).

  .venv/bin/python tests/deploy/check_deploy.py manifests --deploy-venv .venv-deploy
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

SKIP = 77
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
OVERLAYS = ["cpu", "gpu", "cpu-autoscaled", "cpu-inference-gateway"]
# The oldest Kubernetes the manifests target (native gRPC probes are GA since
# 1.27) and kubernetes-validate's newest bundled schemas.
KUBERNETES_VERSIONS = ["1.28.0", "1.37.0"]
CRD_KINDS = {"PodMonitor", "PrometheusRule", "InferencePool", "HTTPRoute"}
INFERENCE_GATEWAY = os.path.join(DEPLOY, "k8s", "components", "inference-gateway")
SERVER_METRICS = [os.path.join(ROOT, "server", "observe", f"server_metrics.{ext}")
                  for ext in ("h", "cc")]
# The endpoint picker's flags that name a model server metric: each must be a
# gauge relayoutd exports (the picker reads the gauge's value).
EPP_METRIC_FLAGS = ["total-queued-requests-metric", "total-running-requests-metric",
                    "kv-cache-usage-percentage-metric", "lora-info-metric", "cache-info-metric"]
# RELAYOUTD_* variables of a component whose flag is still being added to
# relayoutd serve: reported, not failed, while serve --help lacks them; once
# it lists one, the entry must go (the check says so).
PENDING_FLAGS = {}
DOCKERFILES = sorted(glob.glob(os.path.join(DEPLOY, "docker", "Dockerfile.*")))
# What the final stage of an image may copy from the build stage.
RUNTIME_ARTIFACTS = re.compile(r"^/src/build/(server/relayoutd|lib/relayoutd/librelayout_cuda\.so)$")
BUILD_TOOLS = re.compile(
    r"^(gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|clang(-\d+)?|clang-format(-\d+)?|llvm.*|cmake|"
    r"ninja-build|make|build-essential|ccache|pkg-config|pkgconf|autoconf|automake|libtool|"
    r"binutils|git|nvidia-cuda-toolkit|cuda-.*|.*-dev)(=.*)?$")
# Libraries every Debian slim image has (its own apt needs them).
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


def run(cmd, **kwargs):
    """Runs cmd; returns the CompletedProcess (text, output captured)."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run(cmd, text=True, check=False, **kwargs)


def deploy_tool(args, name):
    path = os.path.join(args.deploy_venv, "bin", name)
    if not os.access(path, os.X_OK):
        raise Skipped(f"{path} is missing: tools/setup.sh installs tools/requirements-deploy.txt "
                      f"into {args.deploy_venv}")
    return path


def kubectl(args):
    path = shutil.which(args.kubectl) if args.kubectl else None
    if not path:
        raise Skipped("no kubectl on PATH (no registry this project reaches has a kubectl whose "
                      "kustomize knows components; see tools/setup.sh)")
    return path


def render(args, overlay):
    """The overlay's objects, as a list of dicts, and its YAML text."""
    r = run([kubectl(args), "kustomize", os.path.join(DEPLOY, "k8s", "overlays", overlay)])
    if r.returncode != 0:
        raise CheckFailed(f"kubectl kustomize overlays/{overlay} failed:\n{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d], r.stdout


# ---- manifests ---------------------------------------------------------------


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def one(objects, kind):
    found = by_kind(objects, kind)
    if len(found) != 1:
        raise CheckFailed(f"expected one {kind}, found {len(found)}")
    return found[0]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def named(objects, kind, name):
    found = [o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise CheckFailed(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def own(objects, kind):
    """relayoutd's own objects of a kind (the base labels them
    app.kubernetes.io/name: relayoutd), not a component's helpers."""
    return [o for o in by_kind(objects, kind)
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "relayoutd"]


def check_links(overlay, objects):
    """What the schemas cannot see: selectors, port names, probes, security."""
    errors = []
    deployment = named(objects, "Deployment", "relayoutd")
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    pod_spec = pod["spec"]
    container = pod_spec["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for name in ("grpc", "metrics"):
        if name not in port_names:
            errors.append(f"container port {name!r} missing")
    if not matches(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("the Deployment's selector does not match its pod template")
    for service in own(objects, "Service"):
        if not matches(service["spec"]["selector"], pod_labels):
            errors.append(f"Service {service['metadata']['name']} selects no relayoutd pod")
        for p in service["spec"]["ports"]:
            if p["targetPort"] not in port_names:
                errors.append(f"Service {service['metadata']['name']} targets unknown port "
                              f"{p['targetPort']!r}")
    if not any(s["spec"].get("clusterIP") == "None" for s in own(objects, "Service")):
        errors.append("no headless Service for client-side gRPC balancing")
    pdb = one(objects, "PodDisruptionBudget")
    if not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("the PodDisruptionBudget selects no relayoutd pod")
    for policy in own(objects, "NetworkPolicy"):
        if not matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels):
            errors.append("the NetworkPolicy selects no relayoutd pod")
    monitor = one(objects, "PodMonitor")
    if not matches(monitor["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("the PodMonitor selects no relayoutd pod")
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        if endpoint.get("port") != "metrics" or endpoint.get("path") != "/metrics":
            errors.append(f"PodMonitor endpoint {endpoint} is not port metrics, path /metrics")
    rules = one(objects, "PrometheusRule")
    if not rules["spec"].get("groups"):
        errors.append("the PrometheusRule has no groups")

    # Flags: the ConfigMap must name the ports and the cache the pod mounts.
    flags = {}
    for ref in container.get("envFrom", []):
        name = ref["configMapRef"]["name"]
        cms = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == name]
        if not cms:
            errors.append(f"envFrom names a missing ConfigMap {name}")
        for cm in cms:
            flags.update(cm.get("data", {}))
    if flags.get("RELAYOUTD_LISTEN", "").rsplit(":", 1)[-1] != str(port_names.get("grpc")):
        errors.append("RELAYOUTD_LISTEN's port is not the container's grpc port")
    if flags.get("RELAYOUTD_METRICS_LISTEN", "").rsplit(":", 1)[-1] != str(
            port_names.get("metrics")):
        errors.append("RELAYOUTD_METRICS_LISTEN's port is not the container's metrics port")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    for path in (flags.get("RELAYOUTD_CACHE_DIR"), "/tmp"):
        if path not in mounts:
            errors.append(f"{path} is not a mounted volume (the root file system is read-only)")

    # Probes: native gRPC against grpc.health.v1 on the grpc port.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container.get(probe)
        if not spec or spec.get("grpc", {}).get("port") != port_names.get("grpc"):
            errors.append(f"{probe} is not a gRPC probe on the grpc port")
    startup = container["startupProbe"]
    if startup["failureThreshold"] * startup["periodSeconds"] < 120:
        errors.append("the startup probe allows less than 120 s (deploy/README.md, 'Start-up')")
    if container["livenessProbe"]["failureThreshold"] * container["livenessProbe"][
            "periodSeconds"] <= float(flags.get("RELAYOUTD_DRAIN_GRACE", 30)):
        errors.append("liveness would kill a draining pod before its grace period ends")
    if pod_spec.get("terminationGracePeriodSeconds", 30) <= float(
            flags.get("RELAYOUTD_DRAIN_GRACE", 30)):
        errors.append("terminationGracePeriodSeconds is not above RELAYOUTD_DRAIN_GRACE")

    # Security context.
    pod_sc = pod_spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    want = [(pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot"), "runAsNonRoot"),
            (sc.get("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
            (sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"),
            (sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL"),
            ((pod_sc.get("seccompProfile") or sc.get("seccompProfile") or {}).get("type")
             == "RuntimeDefault", "seccomp RuntimeDefault"),
            (pod_spec.get("automountServiceAccountToken") is False,
             "automountServiceAccountToken: false")]
    errors += [f"missing {what}" for ok, what in want if not ok]

    # Resources: memory requested as limited; one GPU on the gpu overlay.
    resources = container.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    if not limits.get("memory") or requests.get("memory") != limits.get("memory"):
        errors.append("memory request and limit must be set and equal (deploy/README.md)")
    if overlay.startswith("gpu"):
        if str(limits.get("nvidia.com/gpu")) != "1":
            errors.append("the gpu overlay must limit nvidia.com/gpu to 1")
        if not any(t.get("key") == "nvidia.com/gpu" for t in pod_spec.get("tolerations", [])):
            errors.append("the gpu overlay must tolerate the nvidia.com/gpu taint")
        if not pod_spec.get("nodeSelector"):
            errors.append("the gpu overlay must select GPU nodes")
    if overlay.endswith("autoscaled"):
        hpa = one(objects, "HorizontalPodAutoscaler")
        if "replicas" in deployment["spec"]:
            errors.append("with the autoscaler, the Deployment must not set replicas")
        names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
        if names != ["relayout_queue_depth"]:
            errors.append(f"the autoscaler scales on {names}, not relayout_queue_depth")
    if by_kind(objects, "InferencePool") or overlay.endswith("inference-gateway"):
        errors += check_inference_gateway(objects, exported_gauges())
    return [f"overlays/{overlay}: {e}" for e in errors]


def exported_gauges():
    """{name: type} of the families server/observe/server_metrics.* define,
    read from the source: Build<Type>().Name("...") and the vLLM aliases
    (which take their source's type)."""
    text = ""
    for path in SERVER_METRICS:
        with open(path, encoding="utf-8") as f:
            text += f.read()
    families = {name: kind.lower() for kind, name in re.findall(
        r'Build(Gauge|Counter|Histogram)\(\)\s*\.Name\("([^"]+)"\)', text)}
    # The device-labelled conversion gauges come from a helper.
    families.update({name: "gauge" for name in re.findall(r'gauge\("(relayout_[a-z0-9_]+)"', text)})
    for alias, source in re.findall(r'\{"(vllm:[a-z0-9_:]+)",\s*"(relayout_[a-z0-9_]+)"', text):
        if source in families:
            families[alias] = families[source]
    return families


def flag_values(args):
    """--name=value and --name value pairs of a container's args."""
    values, i = {}, 0
    while i < len(args):
        arg = str(args[i])
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                value, i = str(args[i + 1]), i + 1
            values[name] = value
        i += 1
    return values


def metric_name(spec):
    """The metric of an endpoint picker metric spec: name{label=value,...}."""
    return spec.split("{", 1)[0].strip()


def check_inference_gateway(objects, exported):
    """The InferencePool, its endpoint picker and relayoutd agree: the pool
    selects relayoutd's pods on their http port, the picker is reachable
    where the pool says, watches this pool with the rights to, and reads
    gauges relayoutd exports (`exported`: {name: type})."""
    errors = []
    pools = by_kind(objects, "InferencePool")
    if len(pools) != 1:
        return [f"expected one InferencePool, found {len(pools)}"]
    pool = pools[0]
    spec = pool.get("spec", {})
    if pool.get("apiVersion") != "inference.networking.k8s.io/v1":
        errors.append(f"InferencePool apiVersion {pool.get('apiVersion')}, not "
                      f"inference.networking.k8s.io/v1 (the GA API)")
    server = named(objects, "Deployment", "relayoutd")
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    container = server["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    selector = spec.get("selector", {}).get("matchLabels") or {}
    if not selector or not matches(selector, pod_labels):
        errors.append(f"the InferencePool's selector {selector} does not match relayoutd's pod "
                      f"labels {pod_labels}")
    for other in by_kind(objects, "Deployment"):
        if other is not server and selector and matches(
                selector, other["spec"]["template"]["metadata"]["labels"]):
            errors.append(f"the InferencePool's selector also selects "
                          f"{other['metadata']['name']}'s pods")
    targets = [t.get("number") for t in spec.get("targetPorts", [])]
    if "http" not in ports:
        errors.append("relayoutd's container has no port named http (the OpenAI API)")
    elif targets != [ports["http"]]:
        errors.append(f"the InferencePool's targetPorts {targets} are not relayoutd's http "
                      f"port {ports['http']}")
    flags = {}
    for ref in container.get("envFrom", []):
        for cm in by_kind(objects, "ConfigMap"):
            if cm["metadata"]["name"] == ref["configMapRef"]["name"]:
                flags.update(cm.get("data", {}))
    if flags.get("RELAYOUTD_HTTP_LISTEN", "").rsplit(":", 1)[-1] != str(ports.get("http")):
        errors.append("RELAYOUTD_HTTP_LISTEN's port is not relayoutd's http port")
    for policy in own(objects, "NetworkPolicy"):
        allowed = {p.get("port") for rule in policy["spec"].get("ingress", [])
                   for p in rule.get("ports", [])}
        if allowed and not allowed & {"http", ports.get("http")}:
            errors.append(f"NetworkPolicy {policy['metadata']['name']} does not admit the http "
                          f"port the gateway sends to")

    # The endpoint picker: the Service the pool names, and the pods behind it.
    ref = spec.get("endpointPickerRef") or {}
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
        errors.append(f"endpointPickerRef {ref} is not a core Service")
    services = [s for s in by_kind(objects, "Service")
                if s["metadata"]["name"] == ref.get("name")]
    if len(services) != 1:
        return errors + [f"endpointPickerRef names Service {ref.get('name')!r}, which is not "
                         f"in the manifests"]
    service = services[0]
    pickers = [d for d in by_kind(objects, "Deployment")
               if matches(service["spec"].get("selector") or {"": None},
                          d["spec"]["template"]["metadata"]["labels"])]
    if len(pickers) != 1 or pickers[0] is server:
        return errors + [f"Service {service['metadata']['name']} selects no endpoint picker "
                         f"Deployment"]
    picker = pickers[0]
    epp_pod = picker["spec"]["template"]["spec"]
    epp = epp_pod["containers"][0]
    epp_ports = {p["name"]: p["containerPort"] for p in epp.get("ports", [])}
    service_ports = [p for p in service["spec"]["ports"]
                     if p["port"] == (ref.get("port") or {}).get("number")]
    if not service_ports:
        errors.append(f"Service {service['metadata']['name']} has no port "
                      f"{(ref.get('port') or {}).get('number')} (endpointPickerRef.port)")
    for p in service_ports:
        target = p.get("targetPort", p["port"])
        if target not in epp_ports and target not in epp_ports.values():
            errors.append(f"Service {service['metadata']['name']} targets {target!r}, not a port "
                          f"of the endpoint picker")
    if not re.search(r"(:v\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})$", epp.get("image", "")):
        errors.append(f"the endpoint picker's image {epp.get('image')!r} is not pinned to a "
                      f"version tag or digest")
    args = flag_values(epp.get("args", []))
    if args.get("pool-name") != pool["metadata"]["name"]:
        errors.append(f"--pool-name {args.get('pool-name')!r} is not the InferencePool "
                      f"{pool['metadata']['name']!r}")
    namespace = args.get("pool-namespace", "")
    env = {e["name"]: e for e in epp.get("env", [])}
    if namespace.startswith("$(") and namespace.endswith(")"):
        source = env.get(namespace[2:-1], {}).get("valueFrom", {}).get("fieldRef", {})
        if source.get("fieldPath") != "metadata.namespace":
            errors.append(f"--pool-namespace={namespace} is not the pod's namespace")
    elif namespace != pool["metadata"].get("namespace"):
        errors.append(f"--pool-namespace {namespace!r} is not the InferencePool's namespace")
    if args.get("model-server-metrics-port", str(targets[0] if targets else "")) != str(
            ports.get("metrics")):
        errors.append("the endpoint picker scrapes a port other than relayoutd's metrics port "
                      "(--model-server-metrics-port)")
    for flag in EPP_METRIC_FLAGS:
        if flag not in args:
            errors.append(f"--{flag} is not set: the picker would read vLLM's default name")
            continue
        name = metric_name(args[flag])
        if exported.get(name) != "gauge":
            errors.append(f"--{flag}={args[flag]}: {name} is not a gauge relayoutd exports "
                          f"(server/observe/server_metrics.*: "
                          f"{exported.get(name, 'not defined')})")
    # Its configuration: the file --config-file names, from a mounted ConfigMap.
    config_path = args.get("config-file", "")
    mounts = {m["mountPath"].rstrip("/"): m["name"] for m in epp.get("volumeMounts", [])}
    volume = mounts.get(os.path.dirname(config_path))
    cm_name = next((v.get("configMap", {}).get("name") for v in epp_pod.get("volumes", [])
                    if v["name"] == volume), None)
    config_maps = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == cm_name]
    key = os.path.basename(config_path)
    if not config_maps or key not in config_maps[0].get("data", {}):
        errors.append(f"--config-file {config_path!r} is not a key of a mounted ConfigMap")
    else:
        errors += check_picker_config(yaml.safe_load(config_maps[0]["data"][key]))
    # Its rights: the service account it runs as may watch pods and the pool.
    account = epp_pod.get("serviceAccountName")
    if not any(a["metadata"]["name"] == account for a in by_kind(objects, "ServiceAccount")):
        errors.append(f"the endpoint picker's ServiceAccount {account!r} is not in the manifests")
    granted = set()
    for binding in by_kind(objects, "RoleBinding"):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                   for s in binding.get("subjects", [])):
            continue
        for role in by_kind(objects, "Role"):
            if role["metadata"]["name"] != binding["roleRef"]["name"]:
                continue
            for rule in role.get("rules", []):
                if {"get", "list", "watch"} <= set(rule.get("verbs", [])):
                    granted |= {(g, r) for g in rule.get("apiGroups", [])
                                for r in rule.get("resources", [])}
    for need in (("", "pods"), ("inference.networking.k8s.io", "inferencepools")):
        if need not in granted:
            errors.append(f"the endpoint picker may not get/list/watch {need[1]} "
                          f"(apiGroup {need[0]!r})")
    # An HTTPRoute that sends to a pool sends to this one.
    for route in by_kind(objects, "HTTPRoute"):
        for rule in route["spec"].get("rules", []):
            for backend in rule.get("backendRefs", []):
                if backend.get("kind") == "InferencePool" and (
                        backend.get("name") != pool["metadata"]["name"]
                        or backend.get("group") != "inference.networking.k8s.io"):
                    errors.append(f"HTTPRoute {route['metadata']['name']} sends to InferencePool "
                                  f"{backend.get('group')}/{backend.get('name')}, not this one")
    return errors


EPP_PLUGINS = {"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer",
               "max-score-picker"}


def check_picker_config(config):
    """The EndpointPickerConfig: the scorers relayoutd's metrics feed, a
    picker, and profiles that refer only to plugins it defines."""
    errors = []
    if (config or {}).get("kind") != "EndpointPickerConfig":
        return ["the endpoint picker's config is not an EndpointPickerConfig"]
    defined = {p.get("name", p.get("type")) for p in config.get("plugins", [])}
    types = {p.get("type") for p in config.get("plugins", [])}
    if EPP_PLUGINS - types:
        errors.append(f"the endpoint picker's config lacks {sorted(EPP_PLUGINS - types)}")
    profiles = config.get("schedulingProfiles", [])
    if not profiles:
        errors.append("the endpoint picker's config has no scheduling profile")
    for profile in profiles:
        refs = {p.get("pluginRef") for p in profile.get("plugins", [])}
        if refs - defined:
            errors.append(f"scheduling profile {profile.get('name')} refers to undefined plugins "
                          f"{sorted(refs - defined)}")
        if not refs & {"max-score-picker"}:
            errors.append(f"scheduling profile {profile.get('name')} has no picker")
    return errors


def validate_strict(args, path, version):
    """kubernetes-validate --strict on a file; returns the failure lines."""
    r = run([deploy_tool(args, "kubernetes-validate"), "--strict", "--quiet",
             "-k", version, path])
    # Objects without a schema (the CRDs) are warnings; anything else is not.
    bad = []
    for line in (r.stdout + r.stderr).splitlines():
        if not line.strip() or line.startswith("INFO"):
            continue
        if line.startswith("WARN") and re.search(r"Couldn't find schema for kind (\w+)", line) \
                and re.search(r"kind (\w+)", line).group(1) in CRD_KINDS:
            continue
        bad.append(line)
    if r.returncode != 0 and not bad:
        bad.append(f"kubernetes-validate exited {r.returncode}")
    return bad


def check_manifests(args):
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for overlay in OVERLAYS:
            objects, text = render(args, overlay)
            path = os.path.join(tmp, f"{overlay}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            kinds = sorted({o["kind"] for o in objects})
            for version in KUBERNETES_VERSIONS:
                bad = validate_strict(args, path, version)
                failures += [f"overlays/{overlay} @ {version}: {b}" for b in bad]
            failures += check_links(overlay, objects)
            print(f"overlays/{overlay}: {len(objects)} objects ({', '.join(kinds)}) rendered and "
                  f"validated strictly against Kubernetes {', '.join(KUBERNETES_VERSIONS)}")
        # Strict mode must be strict: an unknown field in a container fails.
        objects, _ = render(args, "cpu")
        one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] \
            = "Always"
        probe = os.path.join(tmp, "misspelt.yaml")
        with open(probe, "w", encoding="utf-8") as f:
            yaml.safe_dump_all([o for o in objects if o["kind"] not in CRD_KINDS], f)
        if not validate_strict(args, probe, KUBERNETES_VERSIONS[-1]):
            failures.append("kubernetes-validate --strict accepted a misspelt field "
                            "(imagePullPolcy): the validation proves nothing")
        else:
            print("strict mode rejects a misspelt field (imagePullPolcy), as it should")
    print("PodMonitor, PrometheusRule, InferencePool and HTTPRoute (no schema in the core set) "
          "checked here: selectors and ports above, the endpoint picker's flags against "
          "server/observe/server_metrics.*; the rules by promtool (check 'rules')")
    if failures:
        raise CheckFailed("\n".join(failures))


# ---- yamllint ----------------------------------------------------------------


def check_yamllint(args):
    r = run([deploy_tool(args, "yamllint"), "--strict", "-c", os.path.join(ROOT, ".yamllint"),
             os.path.join(ROOT, ".yamllint"), DEPLOY], cwd=ROOT)
    if r.returncode != 0:
        raise CheckFailed("yamllint:\n" + r.stdout + r.stderr)
    files = glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True)
    print(f"yamllint --strict: {len(files) + 1} files clean")


# ---- dockerfiles ---------------------------------------------------------------


def dockerfile_instructions(path):
    """(instruction, arguments, line number) with continuations joined;
    comments dropped."""
    out, buf, start = [], "", 0
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if buf and line.lstrip().startswith("#"):
                continue
            if not buf:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip(), start))
            buf = ""
    return out


def stages(instructions):
    """[(image, alias, [instructions])] per FROM."""
    result = []
    for ins in instructions:
        if ins[0] == "FROM":
            words = ins[1].split()
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append((words[0], alias, []))
        elif result:
            result[-1][2].append(ins)
    return result


def apt_packages(run_args):
    """Packages named by `apt-get install` in one RUN."""
    packages = []
    for part in re.split(r"&&|;", run_args):
        words = part.split()
        if "apt-get" in words and "install" in words:
            packages += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return packages


def check_dockerfile_rules(path):
    errors = []
    raw = open(path, encoding="utf-8").read()
    all_stages = stages(dockerfile_instructions(path))
    aliases = {alias for _, alias, _ in all_stages if alias}
    for image, _, _ in all_stages:
        if image in aliases:
            continue
        name, _, tag = image.partition("@")[0].rpartition(":")
        if "@sha256:" not in image and (not name or not tag or tag == "latest"):
            errors.append(f"base image {image} is not pinned by tag")
    for _, alias, body in all_stages:
        for word, rest, line in body:
            if word == "RUN" and "apt-get install" in rest:
                if "--no-install-recommends" not in rest:
                    errors.append(f"line {line}: apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists/*" not in rest:
                    errors.append(f"line {line}: apt lists not removed in the installing RUN")
                if "apt-get update" not in rest:
                    errors.append(f"line {line}: apt-get install without apt-get update first")
            # A build command in command position (not a package name).
            if word == "RUN" and re.search(r"(^|&&|;|\|\|)\s*(\S+=\S+\s+)*(cmake|ninja|make)\b",
                                           rest):
                errors.append(f"line {line}: builds outside tools/setup.sh (one build script)")
    build_stages = all_stages[:-1]
    if not any(word == "RUN" and "tools/setup.sh" in rest
               for _, _, body in build_stages for word, rest, _ in body):
        errors.append("no build stage runs tools/setup.sh")
    final_image, final_alias, final = all_stages[-1]
    users = [rest for word, rest, _ in final if word == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append("the final stage does not end as a non-root USER")
    for word, rest, line in final:
        if word == "RUN":
            tools = [p for p in apt_packages(rest) if BUILD_TOOLS.match(p)]
            if tools:
                errors.append(f"line {line}: build tools in the final stage: {' '.join(tools)}")
        if word in ("COPY", "ADD"):
            m = re.match(r"--from=(\S+)\s+(\S+)\s+(\S+)$", rest)
            if not m:
                errors.append(f"line {line}: the final stage copies from the build context "
                              f"({word} {rest}); only build outputs belong there")
            elif not RUNTIME_ARTIFACTS.match(m.group(2)):
                errors.append(f"line {line}: COPY --from of {m.group(2)}, not the binary or "
                              f"its plugin")
    if not any(word == "HEALTHCHECK" for word, _, _ in final) and \
            not re.search(r"^# no HEALTHCHECK: \S", raw, re.M):
        errors.append("no HEALTHCHECK in the final stage and no '# no HEALTHCHECK: <reason>'")
    return errors, [p for word, rest, _ in final if word == "RUN" for p in apt_packages(rest)]


def needed_packages(binary):
    """Debian packages owning the binary's direct shared-library dependencies,
    or None when that cannot be found out here."""
    if not (os.path.isfile(binary) and shutil.which("readelf") and shutil.which("ldd")
            and shutil.which("dpkg")):
        return None
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        run(["readelf", "-d", binary]).stdout)
    if not needed:
        return None
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", run(["ldd", binary]).stdout, re.M))
    packages = {}
    for lib in needed:
        path = paths.get(lib)
        if not path:
            if lib.startswith("ld-linux"):
                continue  # the dynamic loader, libc6's
            return None
        # dpkg knows a file by the path its package ships, which after the
        # /usr merge may differ from the path ldd found.
        for candidate in (os.path.realpath(path), path, "/usr" + path):
            r = run(["dpkg", "-S", candidate])
            if r.returncode == 0:
                packages[lib] = r.stdout.split(":")[0]
                break
        else:
            return None
    return packages


def check_dockerfiles(args):
    failures = []
    if not DOCKERFILES:
        raise CheckFailed("no deploy/docker/Dockerfile.*")
    r = run([deploy_tool(args, "hadolint"), "--no-color", *DOCKERFILES])
    if r.returncode != 0:
        failures.append("hadolint:\n" + r.stdout + r.stderr)
    else:
        print(f"hadolint: {len(DOCKERFILES)} Dockerfiles clean")
    needed = needed_packages(args.relayoutd) if args.relayoutd else None
    for path in DOCKERFILES:
        rel = os.path.relpath(path, ROOT)
        errors, runtime_packages = check_dockerfile_rules(path)
        failures += [f"{rel}: {e}" for e in errors]
        if needed is not None:
            missing = sorted({p for p in needed.values()
                              if p not in runtime_packages and p not in BASE_PACKAGES})
            if missing:
                failures.append(f"{rel}: the runtime stage lacks {' '.join(missing)}, which "
                                f"{os.path.basename(args.relayoutd)} links")
        print(f"{rel}: pinned bases, one build script, non-root final USER, no build tools, apt "
              f"lists cleaned, HEALTHCHECK, COPY --from only of build outputs"
              + ("" if needed is None else
                 f"; runtime packages cover the binary's {len(needed)} direct libraries"))
    if needed is None:
        print("(runtime packages not compared with the binary's libraries: no binary, readelf "
              "or dpkg here)")
    if failures:
        raise CheckFailed("\n".join(failures))


# ---- rules ---------------------------------------------------------------------


def check_rules(args):
    promtool = shutil.which(args.promtool) if args.promtool else None
    if not promtool:
        raise Skipped("no promtool: Debian's package prometheus has it (tools/setup.sh)")
    sys.path.insert(0, os.path.join(DEPLOY, "prometheus"))
    import extract_rules  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "relayout-rules.yaml")
        with open(rules, "w", encoding="utf-8") as f:
            yaml.safe_dump(extract_rules.extract(extract_rules.DEFAULT_SOURCE), f,
                           sort_keys=False)
        shutil.copy(os.path.join(DEPLOY, "prometheus", "rules_test.yaml"), tmp)
        for cmd in (["check", "rules", rules], ["test", "rules", "rules_test.yaml"]):
            r = run([promtool, *cmd], cwd=tmp)
            print(f"promtool {' '.join(cmd[:2])}: {r.stdout.strip()}")
            if r.returncode != 0:
                raise CheckFailed(f"promtool {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
        with open(os.path.join(DEPLOY, "prometheus", "rules_test.yaml"), encoding="utf-8") as f:
            tested = {t["alertname"] for test in yaml.safe_load(f)["tests"]
                      for t in test.get("alert_rule_test", []) if t.get("exp_alerts")}
        alerts = {r["alert"] for g in extract_rules.extract(extract_rules.DEFAULT_SOURCE)["groups"]
                  for r in g["rules"] if "alert" in r}
        if alerts - tested:
            raise CheckFailed(f"alerts never fired by rules_test.yaml: {sorted(alerts - tested)}")
        print(f"every alert ({len(alerts)}) fires in rules_test.yaml")


# ---- metrics -------------------------------------------------------------------


METRIC = re.compile(r"\b(?:relayout_[a-z0-9_]*[a-z0-9]|vllm:[a-z0-9_:]*[a-z0-9])\b")


def used_metric_names():
    """{name: [where]} for every relayout_* name in the rules, the dashboard
    and the autoscaling component."""
    used = {}

    def add(text, where):
        for name in METRIC.findall(text):
            used.setdefault(name, set()).add(where)

    with open(os.path.join(DEPLOY, "k8s", "base", "prometheusrule.yaml"), encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    add(rule["expr"], f"alert {rule.get('alert', rule.get('record'))}")
    with open(os.path.join(DEPLOY, "grafana", "dashboard.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            add(target["expr"], f"panel '{panel['title']}'")
    for var in dashboard["templating"]["list"]:
        add(json.dumps(var.get("query", "")), f"variable ${var['name']}")
    for component in ("autoscaling", "inference-gateway"):
        for path in glob.glob(os.path.join(DEPLOY, "k8s", "components", component, "*.yaml")):
            with open(path, encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    add(json.dumps(doc), os.path.relpath(path, DEPLOY))
    # Template text in annotations is prose, not queries.
    return used


def exported_metric_names(exposition):
    """Families (from # TYPE) and sample names of a text exposition."""
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M))
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M))
    return families, samples


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def call_model_info(port):
    try:
        import grpc  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise Skipped(f"no grpcio in this Python ({e}): tools/requirements.txt has it")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/relayout.v1.Model/GetModelInfo",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        call(b"", timeout=10)


def overlay_flags(overlay, components=()):
    """The RELAYOUTD_* (and PIP_*) variables the overlay's ConfigMap holds:
    the base's configMapGenerator literals merged with the overlay's (and
    the components')."""
    flags = {}
    for path in (os.path.join(DEPLOY, "k8s", "base", "kustomization.yaml"),
                 os.path.join(DEPLOY, "k8s", "overlays", overlay, "kustomization.yaml"),
                 *(os.path.join(DEPLOY, "k8s", "components", c, "kustomization.yaml")
                   for c in components)):
        with open(path, encoding="utf-8") as f:
            for generator in yaml.safe_load(f).get("configMapGenerator", []):
                if generator["name"] == "relayoutd-flags":
                    flags.update(kv.split("=", 1) for kv in generator.get("literals", []))
    return flags


def check_metrics(args):
    model = os.path.join(args.shared_dir or "", "models", "stories260K", "model.safetensors")
    if not args.relayoutd or not os.access(args.relayoutd, os.X_OK):
        raise Skipped(f"no relayoutd binary at {args.relayoutd}")
    if not os.path.isfile(model):
        raise Skipped(f"no shared model at {model}")
    # Every RELAYOUTD_* variable of the ConfigMaps is a serve flag (a misspelt
    # one would be ignored silently), or the default model's cache.
    known = set(re.findall(r"\[env (RELAYOUTD_\w+)\]",
                           run([args.relayoutd, "serve", "--help"]).stdout))
    known.add("RELAYOUTD_CACHE_DIR")  # server/daemon/default_model.h
    for overlay, components in (("cpu", ()), ("gpu", ()),
                                ("cpu-inference-gateway", ("inference-gateway",))):
        unknown = sorted(k for k in overlay_flags(overlay, components)
                         if k.startswith("RELAYOUTD_") and k not in known)
        pending = [k for k in unknown if k in PENDING_FLAGS]
        for k in pending:
            print(f"overlays/{overlay}: {k} ({PENDING_FLAGS[k]}) is not yet a flag of "
                  f"relayoutd serve: pending")
        unknown = [k for k in unknown if k not in PENDING_FLAGS]
        if len(known) < 10 or unknown:
            raise CheckFailed(f"overlays/{overlay}: not flags of relayoutd serve: {unknown} "
                              f"(serve --help lists {sorted(known)})")
    landed = sorted(k for k in PENDING_FLAGS if k in known)
    if landed:
        raise CheckFailed(f"{landed} are flags of relayoutd serve now: remove them from "
                          f"PENDING_FLAGS in {os.path.relpath(__file__, ROOT)}")
    for path in DOCKERFILES:
        unknown = sorted(set(re.findall(r"\b(RELAYOUTD_\w+)=", open(path, encoding="utf-8").read()))
                         - known)
        if unknown:
            raise CheckFailed(f"{os.path.relpath(path, ROOT)}: not flags of relayoutd serve: "
                              f"{unknown}")
    used = used_metric_names()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "serve.log")
        # The flags the cpu overlay deploys, so a flag the daemon does not
        # know, or a value it refuses, fails here rather than in a cluster;
        # only the addresses (free loopback ports) and the cache differ.
        flags = overlay_flags("cpu")
        flags.update(RELAYOUTD_LISTEN="127.0.0.1:0", RELAYOUTD_METRICS_LISTEN="127.0.0.1:0",
                     RELAYOUTD_HTTP_LISTEN="127.0.0.1:0", RELAYOUTD_CACHE_DIR=tmp,
                     RELAYOUTD_MODEL=model)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYOUTD_")}
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen([args.relayoutd, "serve"], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env={**env, **flags})
        try:
            port, deadline = None, time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                text = open(log_path, encoding="utf-8").read()
                m = re.search(r"metrics_port\W+(\d+)", text)
                if m:
                    port = int(m.group(1))
                    if http_get(port, "/readyz")[0] == 200:
                        break
                time.sleep(0.1)
            else:
                raise CheckFailed("relayoutd serve did not reach SERVING in 60 s:\n"
                                  + open(log_path, encoding="utf-8").read())
            # Families labelled per call (relayout_requests_total, the request
            # durations) show in the exposition once a call was counted: one
            # Model.GetModelInfo (an empty request is a valid one).
            grpc_port = int(re.search(r"grpc_port\W+(\d+)", text).group(1))
            call_model_info(grpc_port)
            status, exposition = http_get(port, "/metrics")
            if status != 200:
                raise CheckFailed(f"GET /metrics answered {status}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                if code != 0:
                    print(f"warning: relayoutd exited {code} after SIGTERM")
    families, samples = exported_metric_names(exposition)
    missing = []
    for name, where in sorted(used.items()):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        ok = name in families or name in samples or (
            base != name and families.get(base) == "histogram")
        if not ok:
            missing.append(f"{name} (used by {', '.join(sorted(where))})")
    relayout_families = sorted(f for f in families if f.startswith("relayout_"))
    print(f"relayoutd serve ran with the cpu overlay's {len(flags)} ConfigMap variables")
    print(f"relayoutd serve exports {len(relayout_families)} relayout_* families; the rules, "
          f"the dashboard, the autoscaler and the inference gateway use {len(used)} names")
    unused = [f for f in relayout_families
              if not any(re.sub(r"_(bucket|sum|count)$", "", n) == f for n in used)]
    if unused:
        print(f"exported but not on the dashboard or in a rule: {', '.join(unused)}")
    if missing:
        raise CheckFailed("names not exported by relayoutd serve:\n  " + "\n  ".join(missing))
    print("every metric name used is exported")
    # What the endpoint picker reads it reads as a gauge, by its flags or by
    # the vLLM names it defaults to.
    with open(os.path.join(INFERENCE_GATEWAY, "epp-deployment.yaml"), encoding="utf-8") as f:
        epp_args = flag_values(yaml.safe_load(f)["spec"]["template"]["spec"]["containers"][0]
                               ["args"])
    read = {metric_name(epp_args[flag]) for flag in EPP_METRIC_FLAGS if flag in epp_args}
    read |= {"vllm:num_requests_waiting", "vllm:num_requests_running",
             "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}
    not_gauges = sorted(f"{n} ({families.get(n, 'absent')})" for n in read
                        if families.get(n) != "gauge")
    if not_gauges:
        raise CheckFailed(f"the endpoint picker reads these as gauges: {not_gauges}")
    print(f"the endpoint picker's {len(read)} metrics are gauges of relayoutd serve")


# ---- checkov -------------------------------------------------------------------


def check_checkov(args):
    checkov = deploy_tool(args, "checkov")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        manifests = os.path.join(tmp, "manifests")
        os.mkdir(manifests)
        for overlay in OVERLAYS:
            objects, text = render(args, overlay)
            with open(os.path.join(manifests, f"{overlay}.yaml"), "w", encoding="utf-8") as f:
                f.write(text)
            for o in objects:
                for key, value in (o["metadata"].get("annotations") or {}).items():
                    if key.startswith("checkov.io/skip") and not re.match(
                            r"^CKV2?_[A-Z0-9_]+=\s*\S.{10,}", str(value)):
                        failures.append(f"overlays/{overlay}: {o['kind']} annotation {key} "
                                        f"skips without a reason: {value!r}")
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
               "HOME": tmp, "LOG_LEVEL": "WARNING"}
        for what, cmd in (
                ("manifests", ["-d", manifests, "--framework", "kubernetes"]),
                ("Dockerfiles", ["-f", *DOCKERFILES, "--framework", "dockerfile"])):
            r = run([checkov, *cmd, "--skip-download", "--output", "json"], env=env, cwd=tmp,
                    timeout=600)
            try:
                reports = json.loads(r.stdout)
            except json.JSONDecodeError:
                raise CheckFailed(f"checkov on the {what} printed no JSON (exit "
                                  f"{r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
            if isinstance(reports, dict):
                reports = [reports]
            passed = failed = skipped = 0
            for report in reports:
                results = report.get("results", {})
                passed += len(results.get("passed_checks", []))
                skipped += len(results.get("skipped_checks", []))
                for c in results.get("failed_checks", []):
                    failed += 1
                    failures.append(f"{what}: {c['check_id']} {c['check_name']} "
                                    f"({c.get('resource')}, {c.get('file_path')})")
                for c in results.get("skipped_checks", []):
                    if not (c.get("check_result", {}).get("suppress_comment") or "").strip():
                        failures.append(f"{what}: {c['check_id']} skipped without a reason")
            if passed == 0:
                failures.append(f"checkov ran no check on the {what}")
            print(f"checkov {what}: {passed} passed, {failed} failed, {skipped} skipped "
                  f"(each with its reason)")
    if failures:
        raise CheckFailed("\n".join(failures))


CHECKS = {"manifests": check_manifests, "yamllint": check_yamllint,
          "dockerfiles": check_dockerfiles, "rules": check_rules, "metrics": check_metrics,
          "checkov": check_checkov}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--deploy-venv", default=os.path.join(ROOT, ".venv-deploy"))
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--promtool", default="promtool")
    parser.add_argument("--relayoutd", default=os.path.join(ROOT, "build", "server", "relayoutd"))
    parser.add_argument("--shared-dir", default=os.path.join(ROOT, "..", "shared"))
    args = parser.parse_args()
    try:
        CHECKS[args.check](args)
    except Skipped as e:
        print(f"check_deploy {args.check}: SKIPPED: {e}")
        return SKIP
    except CheckFailed as e:
        print(f"check_deploy {args.check}: FAILED\n{e}")
        return 1
    print(f"check_deploy {args.check}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
