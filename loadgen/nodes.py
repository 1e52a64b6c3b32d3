"""Where the load was served: each app pod's node (spec.nodeName, read with its counters) and
how many nodes the requests reached. On a cluster of several nodes this shows whether the
topology spread put the pods apart; on one node it says 1. Pure functions (no API access)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadgen.baseline import Counters


def pod_nodes(after: Counters, baseline: dict | None) -> dict[str, str]:
    """pod -> node, as read after the load; for a pod gone since, as the baseline saw it."""
    before = (baseline or {}).get("pods") or {}
    nodes = {name: str(info.get("node") or "") for name, info in before.items()}
    nodes.update({name: node for name, node in after.nodes.items() if node})
    return {name: node for name, node in nodes.items() if node}


def served_by_node(served: Mapping[str, float], nodes: Mapping[str, str]) -> dict[str, Any]:
    """The report's `nodes_served` (how many nodes' pods served at least one request) and
    `nodes` (per node: its pods that served, and their requests), over every pod counted in
    the run, those kept out of the test (joined or leaving) included: they served too."""
    by_node: dict[str, dict[str, Any]] = {}
    for pod, requests in sorted(served.items()):
        node = nodes.get(pod)
        if not node or requests <= 0:
            continue
        entry = by_node.setdefault(node, {"name": node, "pods": [], "requests": 0})
        entry["pods"].append(pod)
        entry["requests"] += round(requests)
    return {"nodes_served": len(by_node), "nodes": [by_node[n] for n in sorted(by_node)]}


def text_line(report: Mapping[str, Any]) -> str | None:
    """The human line, e.g. `nodes: 2 served traffic: node-a (2 pods, 667 requests), ...`;
    None for a report without node figures (verify --url: no API to ask)."""
    if "nodes_served" not in report:
        return None
    count = report["nodes_served"]
    parts = []
    for n in report.get("nodes") or []:
        pods = len(n["pods"])
        parts.append(f"{n['name']} ({pods} pod{'s' * (pods != 1)}, {n['requests']} requests)")
    line = f"nodes: {count} served traffic"
    return f"{line}: {', '.join(parts)}" if parts else line
