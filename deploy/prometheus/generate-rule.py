#!/usr/bin/env python3
"""Writes deploy/prometheus/prometheus-rule.yaml, the PrometheusRule
(prometheus-operator, monitoring.coreos.com/v1) that carries the groups of
deploy/prometheus/alerts.yml unchanged. alerts.yml is the one source: edit
it, then run

    .venv/bin/python deploy/prometheus/generate-rule.py

`cargo xtask check-deploy alerts` regenerates the file and fails when the
committed one differs, so the two cannot drift. `--out PATH` writes
elsewhere (the check uses it).
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


class Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    # Multi-line PromQL stays a readable block, as in alerts.yml.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)


def render():
    with open(os.path.join(HERE, "alerts.yml")) as f:
        rules = yaml.safe_load(f)
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "borrow-rate-alerts",
            "namespace": "monitoring",
            "labels": {
                "app.kubernetes.io/name": "borrow-rate-alerts",
                "app.kubernetes.io/part-of": "borrow-rate-gateway",
            },
        },
        "spec": {"groups": rules["groups"]},
    }
    head = ("# GENERATED from alerts.yml by generate-rule.py: do not edit, edit alerts.yml\n"
            "# and run `.venv/bin/python deploy/prometheus/generate-rule.py`.\n"
            "# cargo xtask check-deploy alerts fails when this file differs from a fresh\n"
            "# generation.\n")
    return head + yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=1000, allow_unicode=True)


def main():
    out = os.path.join(HERE, "prometheus-rule.yaml")
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        out = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit("usage: generate-rule.py [--out PATH]")
    with open(out, "w") as f:
        f.write(render())


if __name__ == "__main__":
    main()
