#!/usr/bin/env python3
"""Writes the rule groups of the PrometheusRule as a plain Prometheus rules file.

deploy/k8s/base/prometheusrule.yaml is the one source of relayoutd's alerts.
With the Prometheus Operator it is applied as is; for a Prometheus without the
Operator, and for `promtool check rules` / `promtool test rules` in CI, this
script extracts its .spec (the `groups:` list, which is exactly a rules file):

  python3 deploy/prometheus/extract_rules.py > relayout-rules.yaml
  python3 deploy/prometheus/extract_rules.py --out /etc/prometheus/relayout-rules.yaml

Needs PyYAML. Exits 1 naming the problem when the file is not one
PrometheusRule with a non-empty spec.groups.
"""
import argparse
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(HERE, "..", "k8s", "base", "prometheusrule.yaml")
HEADER = ("# Generated from deploy/k8s/base/prometheusrule.yaml by "
          "deploy/prometheus/extract_rules.py: edit that file, not this one.\n")


def extract(source_path):
    """The PrometheusRule's spec (a dict with `groups`), or raises ValueError."""
    with open(source_path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        raise ValueError(f"{source_path}: expected one PrometheusRule, found {len(rules)}")
    spec = rules[0].get("spec") or {}
    if not spec.get("groups"):
        raise ValueError(f"{source_path}: the PrometheusRule has no spec.groups")
    return {"groups": spec["groups"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="the PrometheusRule manifest")
    parser.add_argument("--out", help="the rules file to write (default: stdout)")
    args = parser.parse_args()
    try:
        spec = extract(args.source)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"extract_rules: {e}", file=sys.stderr)
        return 1
    text = HEADER + yaml.safe_dump(spec, sort_keys=False, width=100)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
