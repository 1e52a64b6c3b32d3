"""The node drill's report (JSON) and its human rendering, from the figures nodedrill.py
gathered. Pure: the goals and the failures bound are decided here and in nodeloss.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadgen import nodeloss

if TYPE_CHECKING:
    from loadgen.nodedrill import Settings


@dataclass
class Figures:
    """What one run measured; times are seconds from the tracker's start (one clock)."""

    mode: str  # "loss" or "drain"
    namespace: str
    deployment: str
    desired: int
    node: str
    lost_share: float
    fault_t: float
    not_ready_t: float | None
    removed_t: float | None
    recovered_t: float | None
    timeline: list[dict[str, Any]]
    traffic: dict[str, Any]  # steady.Recorder.summary()
    starts: Sequence[float]
    failure_starts: Sequence[float]
    pods_before: list[dict[str, Any]]
    pods_after: list[dict[str, Any]]
    balance: dict[str, Any] | None
    restored: dict[str, Any]
    fault: dict[str, Any] | None
    drain: dict[str, Any] | None
    notes: list[str]
    min_ready: int | None = None  # fewest Ready app pods at any look from the fault on
    pdb: tuple[str, int] | None = None  # (name, fewest healthy pods it allows); drain only


def _since(f: Figures, t: float | None) -> float | None:
    return round(t - f.fault_t, 2) if t is not None else None


def goals(f: Figures, s: Settings) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The goals of issue 22 for this mode, and (hard loss) the failures bound."""
    out: list[dict[str, Any]] = []
    bound = None
    failed = f.traffic["failed"]
    if f.mode == "drain":
        out.append(nodeloss.goal("failed requests during the drain", "0", failed, failed == 0))
        took = (f.drain or {}).get("drain_seconds")
        out.append(nodeloss.goal("drain completed", f"<= {s.command_timeout:g} s", took, True))
        if f.pdb is not None:  # sampled every look (0.25 s and more): a dip between is unseen
            name, floor = f.pdb
            held = f.min_ready is not None and f.min_ready >= floor
            target = f">= {floor} (PodDisruptionBudget {name})"
            out.append(nodeloss.goal("fewest Ready app pods", target, f.min_ready, held))
    else:
        bound = nodeloss.failure_bound(
            starts=f.starts,
            failure_starts=f.failure_starts,
            fault_t=f.fault_t,
            removed_t=f.removed_t,
            request_timeout=s.request_timeout,
            proxy_lag=s.proxy_lag,
            lost_share=f.lost_share,
        )
        b = bound["bound"]
        # Every failure from the fault on counts (those after the window too): the bound is
        # on what a node loss may cost, not only on the window.
        since_fault = sum(1 for t in f.failure_starts if t >= f.fault_t - s.request_timeout)
        bound["failed_since_fault"] = since_fault
        met = None if b is None else since_fault <= b
        out.append(nodeloss.goal("failed requests <= bound", f"<= {b}", since_fault, met))
    rec = _since(f, f.recovered_t)
    limit = s.timeout if f.mode == "drain" else nodeloss.RECOVERY_GOAL_S
    out.append(
        nodeloss.goal(
            f"{f.desired} replicas Ready, none on {f.node}",
            f"<= {limit:g} s",
            rec,
            rec is not None and rec <= limit,
        )
    )
    verdict = f.balance["verdict"] if f.balance else None
    out.append(
        nodeloss.goal(
            "split over the surviving pods balanced", "balanced", verdict, verdict == "balanced"
        )
    )
    back = f.restored.get("node_ready_after_s")
    out.append(
        nodeloss.goal(
            f"{f.node} {'uncordoned' if f.mode == 'drain' else 'restored'} and Ready",
            f"<= {s.restore_timeout:g} s",
            back,
            bool(f.restored.get("ok")) and back is not None,
        )
    )
    return out, bound


def build(f: Figures, s: Settings) -> dict[str, Any]:
    gs, bound = goals(f, s)
    verdict, code = nodeloss.outcome(gs)
    rec = _since(f, f.recovered_t)
    tr = f.traffic
    if rec is not None:
        reason = f"{f.mode} of {f.node}: {f.desired}/{f.desired} Ready off it {rec:.1f}s after"
    else:
        reason = f"{f.mode} of {f.node}: not back to {f.desired} Ready within {s.timeout:g}s"
    reason += f"; {tr['failed']} of {tr['total']} requests failed"
    if bound and bound.get("bound") is not None:
        reason += f" (bound {bound['bound']})"
    missed = [g["goal"] for g in gs if g["met"] is not True]
    reason += ("; missed: " + ", ".join(missed)) if missed else "; every goal met"
    traffic = {k: v for k, v in tr.items() if k != "failures"}
    traffic.update(failures=tr["failures"][:50], url=s.url, clients=s.clients)
    return {
        "verdict": verdict,
        "reason": reason,
        "exit_code": code,
        "mode": f.mode,
        "namespace": f.namespace,
        "deployment": f.deployment,
        "desired_replicas": f.desired,
        "node": f.node,
        "lost_share": round(f.lost_share, 4),
        "node_not_ready_s": _since(f, f.not_ready_t),
        "endpoints_removed_s": _since(f, f.removed_t),
        "recovery_seconds": rec,
        "min_ready": f.min_ready,
        "pdb": {"name": f.pdb[0], "min_healthy": f.pdb[1]} if f.pdb else None,
        "failures": bound,
        "drain": f.drain,
        "fault": f.fault,
        "restore": f.restored,
        "pods_before": f.pods_before,
        "pods_after": f.pods_after,
        "balance": f.balance,
        "goals": gs,
        "traffic": traffic,
        "timeline": [{**e, "t": round(e["t"] - f.fault_t, 2)} for e in f.timeline],
        "notes": f.notes,
    }


def render(rep: dict[str, Any]) -> str:
    """The timeline (seconds from the fault), the pods' nodes before and after, the figures."""
    lines = [f"{e['t']:>8.2f}s  {e['event']}" for e in rep["timeline"]]
    for title, rows in (("before", rep["pods_before"]), ("after", rep["pods_after"])):
        pods = ", ".join(f"{r['name']}@{r['node']} ({r['state']})" for r in rows)
        lines.append(f"pods {title}: {pods}")
    tr = rep["traffic"]
    lines.append(f"requests: {tr['total']}, failed {tr['failed']} {tr['by_reason'] or ''}")
    b = rep.get("failures")
    if b and b.get("bound") is not None:
        lines.append(
            f"detection window {b['detection_window_s']} s, {b['requests_in_window']} requests "
            f"in it ({b['rate_rps']}/s), lost share {b['lost_share']}: expected "
            f"{b['expected_failures']} failures, bound {b['bound']}; failed during "
            f"{b['failed_during']}, after {b['failed_after']}"
        )
    if rep.get("drain"):
        d = rep["drain"]
        lines.append(
            f"drain: {len(d['evicted'])} evicted in {d['drain_seconds']} s "
            f"({d['pdb_refusals']} refused by a disruption budget first)"
        )
    if rep.get("balance"):
        lines.append(f"balance after: {rep['balance']['verdict']}: {rep['balance']['reason']}")
    for g in rep["goals"]:
        mark = "ok  " if g["met"] is True else "MISS"
        lines.append(f"{mark} {g['goal']}: {g['measured']} (goal {g['target']})")
    lines.extend(f"note: {n}" for n in rep.get("notes") or [])
    return "\n".join(lines)
