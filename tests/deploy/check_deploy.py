#!/usr/bin/env python3
"""Offline checks of deploy/: images, Kubernetes manifests, alerts, dashboard.

One check per run, each a CTest test (label deploy, tests/deploy/CMakeLists.txt):

  manifests   kubectl kustomize renders every overlay; the output validates
              against the Kubernetes schemas in strict mode (kubernetes-validate,
              schemas bundled, at the oldest and newest versions we support);
              the objects the schemas do not know (PodMonitor, PrometheusRule)
              and the links between objects are checked here.
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
OVERLAYS = ["cpu", "gpu", "cpu-autoscaled"]
# The oldest Kubernetes the manifests target (native gRPC probes are GA since
# 1.27) and kubernetes-validate's newest bundled schemas.
KUBERNETES_VERSIONS = ["1.28.0", "1.37.0"]
CRD_KINDS = {"PodMonitor", "PrometheusRule"}
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


def check_links(overlay, objects):
    """What the schemas cannot see: selectors, port names, probes, security."""
    errors = []
    deployment = one(objects, "Deployment")
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
    for service in by_kind(objects, "Service"):
        if not matches(service["spec"]["selector"], pod_labels):
            errors.append(f"Service {service['metadata']['name']} selects no relayoutd pod")
        for p in service["spec"]["ports"]:
            if p["targetPort"] not in port_names:
                errors.append(f"Service {service['metadata']['name']} targets unknown port "
                              f"{p['targetPort']!r}")
    if not any(s["spec"].get("clusterIP") == "None" for s in by_kind(objects, "Service")):
        errors.append("no headless Service for client-side gRPC balancing")
    pdb = one(objects, "PodDisruptionBudget")
    if not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("the PodDisruptionBudget selects no relayoutd pod")
    for policy in by_kind(objects, "NetworkPolicy"):
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
    return [f"overlays/{overlay}: {e}" for e in errors]


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
    print("PodMonitor and PrometheusRule (no schema in the core set) checked here: selectors "
          "and ports above; the rules by promtool (check 'rules')")
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


METRIC = re.compile(r"\brelayout_[a-z0-9_]*[a-z0-9]\b")


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
    autoscaling = os.path.join(DEPLOY, "k8s", "components", "autoscaling")
    for path in glob.glob(os.path.join(autoscaling, "*.yaml")):
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


def overlay_flags(overlay):
    """The RELAYOUTD_* (and PIP_*) variables the overlay's ConfigMap holds:
    the base's configMapGenerator literals merged with the overlay's."""
    flags = {}
    for path in (os.path.join(DEPLOY, "k8s", "base", "kustomization.yaml"),
                 os.path.join(DEPLOY, "k8s", "overlays", overlay, "kustomization.yaml")):
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
    for overlay in ("cpu", "gpu"):
        unknown = sorted(k for k in overlay_flags(overlay)
                         if k.startswith("RELAYOUTD_") and k not in known)
        if len(known) < 10 or unknown:
            raise CheckFailed(f"overlays/{overlay}: not flags of relayoutd serve: {unknown} "
                              f"(serve --help lists {sorted(known)})")
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
                     RELAYOUTD_CACHE_DIR=tmp, RELAYOUTD_MODEL=model)
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
          f"the dashboard and the autoscaler use {len(used)} names")
    unused = [f for f in relayout_families
              if not any(re.sub(r"_(bucket|sum|count)$", "", n) == f for n in used)]
    if unused:
        print(f"exported but not on the dashboard or in a rule: {', '.join(unused)}")
    if missing:
        raise CheckFailed("names not exported by relayoutd serve:\n  " + "\n  ".join(missing))
    print("every metric name used is exported")


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
