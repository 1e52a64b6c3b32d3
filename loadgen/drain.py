"""A `kubectl drain --ignore-daemonsets --delete-emptydir-data` of one node, through the API:
cordon, then every pod on the node evicted through the Eviction API (so PodDisruptionBudgets
are honoured: a 429 means "not now", tried again), then wait until the evicted pods are gone.
Bounded by one deadline; the caller uncordons (nodedrill.py does it in a finally).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loadgen import kube, nodeapi
from loadgen.kube import KubeClient, KubeError, KubeStatusError

RETRY_EVERY = 1.0  # seconds between evictions a PDB refused (kubectl drain: 5 s)
MIRROR = "kubernetes.io/config.mirror"


def _key(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def plan(pods: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(pods to evict as (namespace, name), skipped, refused) as kubectl drain sorts them:
    DaemonSet pods and static (mirror) pods are skipped, they would come straight back;
    pods no controller manages are refused (an eviction would lose them for good: kubectl
    wants --force)."""
    evict: list[tuple[str, str]] = []
    skipped: list[str] = []
    refused: list[str] = []
    for p in pods:
        meta = p.get("metadata") or {}
        ident = f"{meta.get('namespace')}/{meta.get('name')}"
        owners = [r.get("kind") for r in meta.get("ownerReferences") or []]
        if MIRROR in (meta.get("annotations") or {}) or "DaemonSet" in owners:
            skipped.append(ident)
        elif kube.is_terminating(dict(p)):
            skipped.append(ident)  # already on its way out
        elif not owners and kube.phase(dict(p)) not in ("Succeeded", "Failed"):
            refused.append(ident)
        else:
            evict.append((str(meta.get("namespace")), str(meta.get("name"))))
    return sorted(evict), sorted(skipped), sorted(refused)


def drain(
    client: KubeClient,
    node: str,
    *,
    timeout: float,
    note: Callable[[str], None],
    tick: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Cordon and evict; returns the figures. `tick` runs before each wait (the caller looks
    at the pods meanwhile). Raises KubeError when the node has pods a drain would lose (before
    cordoning) or the drain does not finish within `timeout`."""
    on_node = nodeapi.pods_on_node(client, node)
    to_evict, skipped, refused = plan(on_node)
    # Which pods we evict, by uid: a replacement may come back under the same name (StatefulSet).
    uids = {_key(p): (p.get("metadata") or {}).get("uid") for p in on_node}
    uids = {k: v for k, v in uids.items() if k in set(to_evict)}
    if refused:
        raise KubeError(
            f"{node} has pods no controller manages ({', '.join(refused)}): a drain would "
            "delete them for good; not drained"
        )
    t0 = time.monotonic()
    deadline = t0 + timeout
    nodeapi.set_unschedulable(client, node, True)
    note(f"{node} cordoned; evicting {len(to_evict)} pods ({len(skipped)} DaemonSet/static kept)")
    pending = list(to_evict)
    refusals = 0
    while pending:
        if time.monotonic() > deadline:
            raise KubeError(
                f"drain of {node} not done within {timeout:g}s: the disruption budget still "
                f"refuses evicting {', '.join(f'{n}/{p}' for n, p in pending)}"
            )
        still: list[tuple[str, str]] = []
        for ns, name in pending:
            try:
                nodeapi.evict(client, ns, name)
                note(f"evicted {ns}/{name}")
            except KubeStatusError as exc:
                if exc.status != 429:
                    raise
                refusals += 1
                still.append((ns, name))
        pending = still
        tick()
        if pending:
            time.sleep(min(RETRY_EVERY, max(0.0, deadline - time.monotonic())))
    evicted_at = time.monotonic() - t0
    # kubectl drain returns when the evicted pods are gone (their graceful exit included).
    while True:
        left = [
            "/".join(_key(p))
            for p in nodeapi.pods_on_node(client, node)
            if (p.get("metadata") or {}).get("uid") == uids.get(_key(p), "-")
        ]
        if not left:
            break
        if time.monotonic() > deadline:
            raise KubeError(f"drain of {node}: {', '.join(left)} still there after {timeout:g}s")
        tick()
        time.sleep(0.25)
    done = time.monotonic() - t0
    note(f"{node} drained: every evicted pod gone")
    return {
        "node": node,
        "evicted": [f"{ns}/{name}" for ns, name in to_evict],
        "skipped": skipped,
        "pdb_refusals": refusals,
        "evictions_admitted_s": round(evicted_at, 2),
        "drain_seconds": round(done, 2),
    }
