"""The baseline and what changed since it: the `snapshot` document, per-pod deltas, pods whose
counts cannot be known, and pods that joined or left during the run. Pure functions over what
incluster.py read from the cluster (no API access here)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SNAPSHOT_KIND = "loadgen-snapshot"


@dataclass
class Counters:
    served: dict[str, float] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    ready: dict[str, bool] = field(default_factory=dict)
    # Running pods whose /metrics could not be read (403 from the pod proxy, a CNI that
    # does not admit the API server, a broken exporter): they may have served traffic.
    unreadable: dict[str, str] = field(default_factory=dict)
    # Pods that are not running (Pending, Succeeded, Failed): they served nothing now.
    not_running: dict[str, str] = field(default_factory=dict)
    # Running pods being deleted (scale-down, rollout): out of the Service's endpoints.
    terminating: set[str] = field(default_factory=set)
    # When each pod last became Ready (the Ready condition's lastTransitionTime, ISO UTC).
    ready_since: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # each pod's /metrics, for consistency
    nodes: dict[str, str] = field(default_factory=dict)  # each running pod's spec.nodeName


def load_baseline(source: str) -> dict[str, Any]:
    """A snapshot document from a file, or from stdin when source is '-'."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read baseline {source}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"baseline {source} is not JSON (expected `loadgen snapshot` output)"
        ) from exc
    if not isinstance(doc, dict) or doc.get("kind") != SNAPSHOT_KIND:
        raise ValueError(f"baseline {source} is not a `loadgen snapshot` document")
    return doc


def unknown_counts(baseline: dict | None, after: Counters) -> list[str]:
    """Running pods whose requests since the baseline cannot be known, each with the reason.

    Any of them makes the verdict `unverifiable`: a pod whose counter cannot be read may
    have served its full share, so calling it "no traffic" (imbalanced) would be a guess."""
    problems = [
        f"{name}: counters not readable ({why})" for name, why in sorted(after.unreadable.items())
    ]
    before_unreadable = (baseline or {}).get("unreadable") or {}
    before_pods = (baseline or {}).get("pods") or {}
    for name in sorted(after.served):
        if name in before_unreadable and name not in before_pods:
            problems.append(
                f"{name}: counters not readable at the baseline ({before_unreadable[name]})"
            )
    return problems


def deltas(baseline: dict | None, after: Counters) -> tuple[dict[str, float], list[str]]:
    """Requests served since the baseline, per pod, with notes on what could not be known."""
    notes: list[str] = []
    before = (baseline or {}).get("pods") or {}
    before_unreadable = (baseline or {}).get("unreadable") or {}
    out: dict[str, float] = {}
    for name, value in after.served.items():
        prev = before.get(name)
        if prev is None and name in before_unreadable:
            continue  # unknown_counts() makes this unverifiable
        if prev is None:
            # Joined after the baseline (the HPA scaled up, a pod was replaced): counted from
            # zero, reported and kept out of the test by split_by_membership().
            out[name] = value
        elif prev.get("uid") and after.uids.get(name) and prev["uid"] != after.uids[name]:
            notes.append(f"{name} was replaced since the baseline: counted from zero")
            out[name] = value
        elif value < float(prev.get("served", 0)):
            notes.append(f"{name}'s counter went down (container restart): counted from zero")
            out[name] = value
        else:
            out[name] = value - float(prev.get("served", 0))
    gone = sorted(set(before) - set(after.served) - set(after.unreadable))
    if gone:
        notes.append(f"pods gone since the baseline, their requests are unknown: {', '.join(gone)}")
    for name, why in sorted(after.not_running.items()):
        notes.append(f"{name}: not counted ({why})")
    if baseline is None:
        notes.append("no --baseline: counters count from the pods' start")
    return out, notes


def split_by_membership(
    served: dict[str, float], baseline: dict | None, after: Counters
) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """(tested, left out, notes): only pods that were in the baseline and still serve are
    tested. A pod that joined during the run could take connections only for part of it and
    one leaving stops taking them; either would skew a fair split. Connections assigned while
    they were there went to one of the tested pods with equal chance, so leaving them out
    keeps the test valid (the unit count is scaled to the requests kept)."""
    if baseline is None:
        return dict(served), {}, []
    before = baseline.get("pods") or {}
    tested: dict[str, float] = {}
    left_out: dict[str, float] = {}
    notes: list[str] = []
    for name, value in served.items():
        if name not in before:
            left_out[name] = value
            notes.append(f"{name} joined during the run ({value:.0f} requests): not in the test")
        elif name in after.terminating:
            left_out[name] = value
            notes.append(f"{name} was leaving (terminating, {value:.0f} requests): not in the test")
        else:
            tested[name] = value
    return tested, left_out, notes
