"""The check for sticky sessions (Service `sessionAffinity: ClientIP`).

With ClientIP affinity kube-proxy sends every connection of one client IP to the pod it picked
for that client's first connection, so a uniformity test over connections or requests does not
apply: 3 clients over 3 pods give splits such as 2000/1000/0, which are fine. What sticky
sessions promise, and what this checks instead:

1. each client is served by one pod: the per-pod request counts must be made of whole
   clients, i.e. the clients (each with its own request total, from fortio's result per
   load-generator pod) can be assigned to pods so that every pod's count is the sum of its
   clients' totals (within the requests that failed);
2. the clients are spread over the pods as far as their number allows: the number of clients
   per pod is tested for uniform random assignment with the same rules as connections (an
   empty pod counts only when that is unlikely by chance), so with 3 clients nothing about
   the spread can fail, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loadgen.verdict import Verdict, decide

# The assignment search is a bounded backtracking: with equal client totals it never
# backtracks; unequal ones are rare (a failed fortio pod) and small.
MAX_STEPS = 200_000


def assign_clients(
    served: Mapping[str, float], clients: Sequence[tuple[str, float]], slack: float
) -> dict[str, list[str]] | None:
    """Pod -> the clients it served, if the counts can be made of whole clients; else None.

    slack: how far a pod's count may fall short of its clients' totals (requests that failed
    never reached a pod's counter)."""
    order = sorted(clients, key=lambda c: -c[1])
    pods = sorted(served)
    left = {p: float(served[p]) for p in pods}
    plan: dict[str, list[str]] = {p: [] for p in pods}
    steps = 0

    def place(i: int) -> bool:
        nonlocal steps
        if i == len(order):
            return all(-slack <= v <= slack for v in left.values())
        name, size = order[i]
        tried: set[float] = set()
        for p in pods:
            steps += 1
            if steps > MAX_STEPS:
                raise TimeoutError
            if left[p] + slack < size or left[p] in tried:
                continue  # too small, or the same remainder as a pod already tried
            tried.add(left[p])
            left[p] -= size
            plan[p].append(name)
            if place(i + 1):
                return True
            left[p] += size
            plan[p].pop()
        return False

    try:
        return plan if place(0) else None
    except TimeoutError:
        return None


def decide_sticky(
    served: Mapping[str, float],
    clients: Sequence[tuple[str, float]],
    *,
    alpha: float,
    expected_pods: int | None,
    errors: int = 0,
) -> Verdict:
    """`sticky` when every client was served by one pod and the clients' spread over the
    pods is consistent with random assignment; `not-sticky` when the counts cannot be made of
    whole clients; `imbalanced` when the spread is too uneven; `unverifiable` without data."""
    pods = dict(served)
    k = max(expected_pods or 0, len(pods))
    for i in range(k - len(pods)):
        pods[f"<missing-{i + 1}>"] = 0.0
    if not clients:
        return _unverifiable(pods, alpha, "no client totals (fortio results) to check stickiness")
    slack = float(errors) + 0.5
    plan = assign_clients(pods, clients, slack)
    totals = ", ".join(f"{n}={v:.0f}" for n, v in clients)
    counts = ", ".join(f"{p}={v:.0f}" for p, v in sorted(pods.items()))
    if plan is None:
        v = _unverifiable(pods, alpha, "")
        v.outcome = "not-sticky"
        v.method = "sticky sessions: per-pod counts made of whole clients"
        v.reason = (
            f"sessionAffinity ClientIP: the per-pod requests ({counts}) cannot be made of whole "
            f"clients ({totals}): some client's requests were served by more than one pod"
        )
        return v
    per_pod = {p: float(len(cs)) for p, cs in plan.items()}
    spread = decide(per_pod, keepalive=False, alpha=alpha, expected_pods=k, unit_name="client")
    spread.requests = {p: float(pods[p]) for p in spread.pods}
    total = sum(spread.requests.values())
    spread.shares = {p: (spread.requests[p] / total if total else 0.0) for p in spread.pods}
    who = "; ".join(f"{p}: {', '.join(cs) or 'no client'}" for p, cs in sorted(plan.items()))
    spread.notes.insert(0, f"clients per pod: {who}")
    spread.method = "sticky sessions: whole clients per pod, then " + (spread.method or "")
    sticky = f"each of {len(clients)} clients was served by one pod ({who})"
    if spread.outcome == "balanced":
        spread.outcome = "sticky"
        spread.reason = f"sessionAffinity ClientIP: {sticky}; their spread: {spread.reason}"
    elif spread.outcome == "imbalanced":
        spread.reason = (
            f"sessionAffinity ClientIP: {sticky}, but the clients' spread is too uneven: "
            f"{spread.reason}"
        )
    return spread


def _unverifiable(pods: Mapping[str, float], alpha: float, reason: str) -> Verdict:
    k = len(pods)
    total = float(sum(pods.values()))
    return Verdict(
        "unverifiable",
        reason,
        unit="client",
        alpha=alpha,
        pods=sorted(pods),
        requests={p: float(v) for p, v in pods.items()},
        units={p: 0.0 for p in pods},
        units_total=0.0,
        expected_pods=k,
        shares={p: (float(v) / total if total else 0.0) for p, v in pods.items()},
        expected_share=1.0 / k if k else 0.0,
    )
