"""Decided once, kept: what `auto` chose (monitoring, metrics-server) is recorded in the stack's
config by `make up` (scripts/stack.sh), and later runs follow it whatever the probe says.

Why stack config: it is kept with the stack, shown by `pulumi config`, changed only by the user
(or `make up REDECIDE=1`), and read by the program like any other key, under the engine and the
mocks alike; the decision itself is read from the stack's outputs (`monitoring`,
`metricsServer.installedByThisStack`), i.e. from what was really deployed.

    pulumi stack output --json | python -m components.decisions STACK
prints `KEY VALUE` for each decision to record (auto in use, nothing recorded yet, deployed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from components.settings import ConfigError, Settings

KEYS = ("monitoringDecision", "metricsServerDecision")


def to_record(s: Settings, outputs: Mapping[str, Any]) -> dict[str, str]:
    """The decisions the deployed stack (its outputs) shows and its config does not hold yet."""
    found: dict[str, str] = {}
    monitoring = outputs.get("monitoring")
    if (
        s.monitoring.mode == "auto"
        and not s.monitoring.decision
        and monitoring in ("podMonitor", "annotations")
    ):
        found["monitoringDecision"] = monitoring
    metrics = outputs.get("metricsServer")
    if isinstance(metrics, str):  # an output may come back as a JSON string
        try:
            metrics = json.loads(metrics)
        except ValueError:
            metrics = None
    if (
        s.metrics_server.mode == "auto"
        and not s.metrics_server.decision
        and isinstance(metrics, Mapping)
        and isinstance(metrics.get("installedByThisStack"), bool)
    ):
        found["metricsServerDecision"] = (
            "install" if metrics["installedByThisStack"] else "cluster"
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    from components import offline

    parser = argparse.ArgumentParser(prog="python -m components.decisions")
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    text = sys.stdin.read().strip()
    try:
        outputs = json.loads(text) if text else {}
        s = offline.settings_for(args.stack)
    except (ValueError, ConfigError, FileNotFoundError) as err:
        print(f"cannot read the stack's decisions: {err}", file=sys.stderr)
        return 1
    if not isinstance(outputs, dict):
        outputs = {}
    for key, value in to_record(s, outputs).items():
        print(key, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
