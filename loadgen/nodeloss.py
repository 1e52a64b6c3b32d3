"""The node drill's judgement, without API access: which node to lose, what bounds the failed
requests during a hard node loss, whether the split over the surviving pods is balanced, and
the goals. loadgen/nodedrill.py gathers the figures; everything here is a pure function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loadgen import kube
from loadgen.nodeapi import CONTROL_PLANE_LABEL

# The chance that a healthy run exceeds the failures bound by bad luck alone: the bound is the
# binomial quantile at 1 - BOUND_ALPHA of "each request in the window picked a lost endpoint
# with the lost pods' share".
BOUND_ALPHA = 0.001
RECOVERY_GOAL_S = 60.0  # issue 22: full replicas Ready again within 60 s of a node loss


class Refusal(ValueError):
    """The drill cannot run as asked; str() is the one line the user reads."""


def node_name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def is_control_plane(node: Mapping[str, Any]) -> bool:
    return CONTROL_PLANE_LABEL in ((node.get("metadata") or {}).get("labels") or {})


def ready_status(node: Mapping[str, Any]) -> str:
    """The node's Ready condition: "True", "False", "Unknown" (kubelet silent), "" if none."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", ""))
    return ""


def ready_pods_per_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pods:
        if kube.is_ready(dict(p)) and kube.node_name(dict(p)):
            out[kube.node_name(dict(p))] = out.get(kube.node_name(dict(p)), 0) + 1
    return out


def pick_node(requested: str, nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping]) -> str:
    """The node to lose: `requested`, or for "auto" the node without the control-plane label
    hosting the most ready app pods (ties: by name). Refuses in one line when there is no such
    node, or the named one is missing, is the control plane, or is the cluster's only node."""
    names = sorted(node_name(n) for n in nodes)
    per_node = ready_pods_per_node(pods)
    if len(nodes) < 2:
        raise Refusal(
            f"a one-node cluster ({', '.join(names) or 'no nodes'}): losing its only node "
            "leaves nowhere to recover to; start more nodes (make cluster NODES=3)"
        )
    if requested == "auto":
        workers = [n for n in nodes if not is_control_plane(n)]
        if not workers:
            raise Refusal(f"every node ({', '.join(names)}) is a control-plane node: none to lose")
        best = max(
            workers, key=lambda n: (per_node.get(node_name(n), 0), -names.index(node_name(n)))
        )
        if per_node.get(node_name(best), 0) == 0:
            raise Refusal(
                "no node outside the control plane hosts a ready app pod: losing one would "
                f"test nothing (ready app pods per node: {per_node or 'none'})"
            )
        return node_name(best)
    match = [n for n in nodes if node_name(n) == requested]
    if not match:
        raise Refusal(f"no node {requested!r} in the cluster (nodes: {', '.join(names)})")
    if is_control_plane(match[0]):
        raise Refusal(
            f"{requested} is the control-plane node ({CONTROL_PLANE_LABEL}): losing it stops "
            "the cluster, not a node; pick another or --node auto"
        )
    return requested


def _scaled(value: int | str, desired: int) -> int:
    """An IntOrString of a PDB: a percentage of the desired count rounds up, as the disruption
    controller computes it."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * desired / 100)
    return int(value)


def pdb_floor(
    pdbs: Iterable[Mapping[str, Any]], labels: Mapping[str, str], desired: int
) -> tuple[str, int] | None:
    """(name, fewest healthy pods it allows) of the PodDisruptionBudget whose matchLabels
    select pods with `labels`; None when none does (matchExpressions are not evaluated)."""
    for pdb in pdbs:
        spec = pdb.get("spec") or {}
        selector = spec.get("selector") or {}
        wanted = selector.get("matchLabels") or {}
        if selector.get("matchExpressions") or not wanted:
            continue
        if any(labels.get(k) != v for k, v in wanted.items()):
            continue
        name = str((pdb.get("metadata") or {}).get("name", ""))
        if spec.get("minAvailable") is not None:
            return name, _scaled(spec["minAvailable"], desired)
        if spec.get("maxUnavailable") is not None:
            return name, desired - _scaled(spec["maxUnavailable"], desired)
    return None


def pods_table(pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each app pod with its node and state, as the report shows it before and after."""
    rows = []
    for p in pods:
        pod = dict(p)
        state = (
            "terminating"
            if kube.is_terminating(pod)
            else ("ready" if kube.is_ready(pod) else kube.phase(pod).lower())
        )
        rows.append(
            {"name": kube.pod_name(pod), "node": kube.node_name(pod) or None, "state": state}
        )
    return sorted(rows, key=lambda r: r["name"])


def binomial_upper(n: int, p: float, alpha: float = BOUND_ALPHA) -> int:
    """The smallest b with P(X > b) <= alpha for X ~ Binomial(n, p) (exact, in logs)."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    log_p, log_q = math.log(p), math.log1p(-p)
    cdf = 0.0
    for k in range(n + 1):
        log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        cdf += math.exp(log_pmf + k * log_p + (n - k) * log_q)
        if 1.0 - cdf <= alpha:
            return k
    return n


def failure_bound(
    *,
    starts: Sequence[float],
    failure_starts: Sequence[float],
    fault_t: float,
    removed_t: float | None,
    request_timeout: float,
    proxy_lag: float,
    lost_share: float,
    alpha: float = BOUND_ALPHA,
) -> dict[str, Any]:
    """What bounds the failed requests of a hard node loss, from measured figures.

    Until the node is marked NotReady and the endpoints controller takes the lost pods out of
    the Service (`removed_t`, plus `proxy_lag` for kube-proxy to reprogram the data plane),
    every fresh connection picks a lost endpoint with the lost pods' share of the endpoints;
    after it, none does. Our load is closed-loop (each client waits for its answer, up to
    `request_timeout`), so its rate in the window is whatever it measured, not a set figure:
    the requests counted are those started from `request_timeout` before the fault (in flight
    when it hit) to the end of the window. Their expected failures are N x share (the window
    x the load's rate x the share); the bound adds the binomial tail at `alpha`, so a healthy
    run exceeds it by chance once in 1/alpha runs. Times are seconds on one clock."""
    if removed_t is None:
        return {
            "model": "binomial",
            "bound": None,
            "reason": "the lost pods' endpoints were never seen removed: no window to bound",
        }
    window = max(0.0, removed_t - fault_t)
    lo, hi = fault_t - request_timeout, removed_t + proxy_lag
    started = sum(1 for s in starts if lo <= s <= hi)
    during = sum(1 for s in failure_starts if lo <= s <= hi)
    after = sum(1 for s in failure_starts if s > hi)
    before = sum(1 for s in failure_starts if s < lo)
    span = hi - lo
    return {
        "model": "binomial",
        "detection_window_s": round(window, 3),
        "counted_from_s": round(lo - fault_t, 3),
        "counted_to_s": round(hi - fault_t, 3),
        "requests_in_window": started,
        "rate_rps": round(started / span, 1) if span > 0 else None,
        "lost_share": round(lost_share, 4),
        "expected_failures": round(started * lost_share, 1),
        "bound": binomial_upper(started, lost_share, alpha),
        "alpha": alpha,
        "failed_during": during,
        "failed_after": after,
        "failed_before_fault": before,
        "request_timeout_s": request_timeout,
        "proxy_lag_s": proxy_lag,
    }


def survivor_balance(
    verify_report: Mapping[str, Any],
    pods_after: Sequence[Mapping[str, Any]],
    lost: str,
    desired: int,
) -> dict[str, Any]:
    """The post-recovery load's verdict (verdict.decide through verify --url), held to the
    surviving pods: balanced only if the test says so, every pod that served is a ready pod
    off the lost node, and as many served as the Deployment wants."""
    served = {row["name"]: row.get("requests", 0) for row in verify_report.get("pods") or []}
    served = {name: n for name, n in served.items() if n and not name.startswith("<missing")}
    where = {row["name"]: row["node"] for row in pods_after}
    survivors = {r["name"] for r in pods_after if r["state"] == "ready" and r["node"] != lost}
    strays = sorted(set(served) - survivors)
    verdict = str(verify_report.get("verdict"))
    if verdict == "balanced" and strays:
        verdict = "imbalanced"
        reason = f"pods not among the ready survivors served: {', '.join(strays)}"
    elif verdict == "balanced" and len(served) < desired:
        verdict = "imbalanced"
        reason = f"only {len(served)} of {desired} pods served the post-recovery load"
    else:
        reason = str(verify_report.get("reason", ""))
    return {
        "verdict": verdict,
        "reason": reason,
        "served": {
            name: {"requests": n, "node": where.get(name)} for name, n in sorted(served.items())
        },
        "nodes_served": len({where.get(n) for n in served if where.get(n)}),
        "p_value": (verify_report.get("distribution") or {}).get("p_value"),
        "total": verify_report.get("total"),
        "errors": verify_report.get("errors"),
    }


def goal(name: str, target: str, measured: Any, met: bool | None) -> dict[str, Any]:
    """One goal of the drill; met None: could not be measured (counts as not met)."""
    return {"goal": name, "target": target, "measured": measured, "met": met}


def outcome(goals: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    missed = [g["goal"] for g in goals if g["met"] is not True]
    return ("goals-met", 0) if not missed else ("goals-missed", 1)
