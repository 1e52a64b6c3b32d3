"""The distribution verdict: is the per-pod split consistent with uniform random assignment
of the unit the load balancer actually balances?

A Kubernetes Service (kube-proxy) picks a backend per *connection*. With keep-alive every
connection carries many requests to one pod, so request counts are lumpy: testing them as
if each request were independent would flag normal splits. We therefore test the balanced
unit: connections with keep-alive, requests without. When only per-pod request counts are
known (in-cluster), requests are converted to effective connection counts, see docs/verification.md.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from loadgen import stats

# sticky / not-sticky: the verdicts of the sticky-sessions check (loadgen/affinity.py).
Outcome = Literal["balanced", "imbalanced", "unverifiable", "sticky", "not-sticky"]
EXIT_CODES: dict[str, int] = {
    "balanced": 0,
    "sticky": 0,
    "imbalanced": 1,
    "not-sticky": 1,
    "unverifiable": 2,
}
DEFAULT_ALPHA = 0.005
# Skew the report states the test's power against: one pod getting twice the others' share.
REFERENCE_SKEW = (2.0, 1.0, 1.0)
# The empty-pod rule is "live" (splits alpha with the split test) when an empty pod has at
# least this fraction of alpha's probability by chance; below it its false alarms are nil.
EMPTY_RULE_LIVE = 0.001


@dataclass
class Verdict:
    outcome: Outcome
    reason: str
    unit: str  # "connection" or "request"
    alpha: float
    pods: list[str]
    requests: dict[str, float]
    units: dict[str, float]  # per pod, possibly effective (non-integer)
    units_total: float
    expected_pods: int
    shares: dict[str, float]
    expected_share: float
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    method: str = ""
    power_vs_2_1_1: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1024)
def power_against_skew(units: float, k: int, alpha: float) -> float | None:
    """Probability the test flags a 2:1:1... skew (one pod at double weight) with this many
    units, from the noncentral chi-square approximation of Pearson's statistic."""
    if k < 2 or units <= 0:
        return None
    weights = [2.0] + [1.0] * (k - 1)
    total = sum(weights)
    p = [w / total for w in weights]
    nc = units * k * sum((pi - 1.0 / k) ** 2 for pi in p)
    critical = stats.chi2_isf(alpha, k - 1)
    return stats.ncx2_sf(critical, k - 1, nc)


def effective_units(
    requests: Mapping[str, float], connections: float
) -> tuple[dict[str, float], float]:
    """Requests -> effective connections per pod: R_i * C / N.

    If each of C connections carries r = N/C requests and lands on a pod at random, then
    R_i = r * M_i with M ~ Multinomial(C, 1/k): Pearson's statistic on the requests is r times
    the statistic on M. Dividing by r (i.e. scaling counts by C/N) recovers the connection-level
    test. fortio -n N -c C gives every connection N/C requests (+-1), so r is constant."""
    total = float(sum(requests.values()))
    if total <= 0 or connections <= 0:
        return {k: 0.0 for k in requests}, 0.0
    scale = connections / total
    return {k: v * scale for k, v in requests.items()}, float(connections)


def decide(
    requests: Mapping[str, float],
    *,
    keepalive: bool,
    alpha: float = DEFAULT_ALPHA,
    expected_pods: int | None = None,
    connection_counts: Mapping[str, int] | None = None,
    connections: float | None = None,
    unit_name: str | None = None,
) -> Verdict:
    """Decide from per-pod served request counts.

    connection_counts: exact per-pod connection counts (URL mode counts them itself).
    connections: total connections, when only request counts per pod are known (in-cluster).
    Pods listed with 0 requests count as pods that got nothing; pods missing to reach
    expected_pods are added as empty placeholders.
    """
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    req = {k: float(v) for k, v in sorted(requests.items())}
    notes: list[str] = []
    k_expected = expected_pods if expected_pods is not None else len(req)
    missing = max(0, k_expected - len(req))
    for i in range(missing):
        req[f"<missing-{i + 1}>"] = 0.0
    if expected_pods is not None and len(req) > expected_pods:
        notes.append(
            f"{len(req)} pods served traffic but {expected_pods} were expected; "
            "testing uniformity over all of them"
        )
    pods = list(req)
    k = len(pods)
    total_requests = sum(req.values())

    unit = unit_name or ("connection" if keepalive else "request")
    exact_ok = False
    if not keepalive:
        units = dict(req)
        exact_ok = all(float(v).is_integer() for v in units.values())
    elif connection_counts is not None:
        units = {p: float(connection_counts.get(p, 0)) for p in pods}
        exact_ok = True
    elif connections:
        units, _ = effective_units(req, connections)
        notes.append(
            f"keep-alive: {total_requests:.0f} requests over {connections:g} connections "
            f"({total_requests / connections:.2f} per connection); request counts were "
            "scaled to effective connection counts"
        )
    else:
        raise ValueError("keep-alive verdict needs connection_counts or connections")
    units_total = float(sum(units.values()))
    shares = {p: (req[p] / total_requests if total_requests else 0.0) for p in pods}
    base = dict(
        unit=unit,
        alpha=alpha,
        pods=pods,
        requests=req,
        units=units,
        units_total=units_total,
        expected_pods=k,
        shares=shares,
        expected_share=1.0 / k if k else 0.0,
        notes=notes,
    )
    if k == 0 or total_requests <= 0 or units_total <= 0:
        return Verdict("unverifiable", "no request was served by any pod", **base)
    # Two rules share the one significance. When an empty pod is possible by chance at all
    # (few units over many pods), each gets alpha/2 (Bonferroni), so together they false-alarm
    # at most alpha; otherwise the empty-pod rule cannot fire by chance and the split test
    # keeps the whole alpha.
    rule_alpha = alpha
    if k >= 2 and stats.prob_at_least_empty(round(units_total), k, 1) >= alpha * EMPTY_RULE_LIVE:
        rule_alpha = alpha / 2
        notes.append(
            f"with {units_total:.0f} {unit}s over {k} pods a pod could get nothing by chance: "
            f"the empty-pod rule and the split test each use alpha/2={rule_alpha:g}"
        )
    power = power_against_skew(units_total, k, rule_alpha) if k >= 2 else None
    base["power_vs_2_1_1"] = power
    if k >= 2 and power is not None and power < 0.9:
        notes.append(
            f"only {units_total:.0f} {unit}s: a 2:1 skew would be detected with probability "
            f"{power:.2f}; use more {unit}s for a sharper test"
        )
    empty = [p for p in pods if req[p] <= 0]
    if empty and k >= 2:
        # A pod with nothing counts against the deployment only when that is unlikely by
        # chance: with few units over many pods some pod is left empty by luck alone.
        chance = stats.prob_at_least_empty(round(units_total), k, len(empty))
        named = f"{len(empty)} of {k} expected pods got no traffic ({', '.join(empty)})"
        if chance < rule_alpha:
            return Verdict(
                "imbalanced",
                f"{named}: with {units_total:.0f} {unit}s assigned at random that happens with "
                f"probability {chance:.3g} < {rule_alpha:g}",
                **base,
                method="empty pods: exact occupancy probability under uniform assignment",
                p_value=chance,
            )
        notes.append(
            f"{named}; with only {units_total:.0f} {unit}s over {k} pods that happens by "
            f"chance with probability {chance:.3g} >= {rule_alpha:g}, so it is not counted "
            "against the deployment by itself (the split test below includes it)"
        )
    if k == 1:
        return Verdict("balanced", "a single pod served everything (1 pod expected)", **base)

    counts = list(units.values())
    stat, df = stats.chi_square_uniform(counts)
    if exact_ok and stats.n_compositions(int(units_total), k) <= stats.EXACT_MAX_OUTCOMES:
        p_value = stats.exact_uniform_sf([int(c) for c in counts])
        method = "exact multinomial test (ordered by Pearson's X2), uniform over pods"
    else:
        p_value = stats.chi2_sf(stat, df)
        method = "Pearson chi-square test, uniform over pods"
    base.update(statistic=stat, df=df, p_value=p_value, method=method)
    spread = ", ".join(f"{p}={units[p]:.1f}" for p in pods)
    if p_value < rule_alpha:
        return Verdict(
            "imbalanced",
            f"split of {units_total:.0f} {unit}s ({spread}) is too uneven for uniform "
            f"random assignment: p={p_value:.3g} < alpha={rule_alpha:g}",
            **base,
        )
    served_by = f"all {k} pods" if not empty else f"{k - len(empty)} of {k} pods"
    reason = (
        f"{served_by} served traffic and the split of {units_total:.0f} {unit}s is "
        f"consistent with uniform assignment: p={p_value:.3g} >= alpha={rule_alpha:g}"
    )
    if power is not None and power < 0.9:
        # Say so in the one line people read: "balanced" from a test that could hardly fail.
        reason += f" (weak test: a 2:1 skew would be caught with probability {power:.2f})"
    return Verdict("balanced", reason, **base)


def smallest_verifiable_units(k: int, alpha: float) -> int:
    """The fewest balanced units with which `decide` tells a pod that got nothing from chance.

    At that load an empty pod is still possible by chance, so the empty-pod rule runs at
    alpha/2 (see `decide`): a pod that really got nothing is then flagged every time."""
    return stats.smallest_units_to_see_an_empty_pod(k, alpha / 2)
