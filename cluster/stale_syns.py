"""Stale SYN entries to the load-balancer addresses, found and deleted (run by lb_status.py).

kube-proxy deletes stale conntrack entries for UDP only (kubernetes/kubernetes#101607): when a
pod is lost with its node, every connection attempt to it leaves a SYN_SENT entry that maps
the client's (address, port) to the lost pod, and a new connection from the same port is
a retransmission to conntrack: it goes to the lost pod again and fails, and each such attempt
keeps the entry alive. The load tools on node 1 open hundreds of connections a second from one
address, so they reuse ports within seconds. This deletes, on node 1, SYN_SENT entries to a
load-balancer address whose pod is no longer a serving endpoint of any Service: the fix
upstream proposed (kubernetes/kubernetes#102669), for the addresses this cluster's LB owns.
The conntrack CLI is used because no maintained Python binding of libnetfilter_conntrack is
among the project's dependencies.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("lb-status")
CONNTRACK_TIMEOUT = 5.0  # seconds for one conntrack command


@dataclass(frozen=True)
class SynEntry:
    """One SYN_SENT entry: the client's 4-tuple as sent and the address it was DNATed to."""

    src: str
    dst: str
    sport: str
    dport: str
    reply_src: str


def parse(lines: Iterable[str]) -> list[SynEntry]:
    """`conntrack -L -p tcp --state SYN_SENT` output: the first src/dst/sport/dport are the
    original direction, the second src is where the reply comes from (the DNAT target)."""
    out: list[SynEntry] = []
    for line in lines:
        fields = line.split()
        if "SYN_SENT" not in fields:
            continue
        pairs = [f.split("=", 1) for f in fields if "=" in f]
        srcs = [v for k, v in pairs if k == "src"]
        dsts = [v for k, v in pairs if k == "dst"]
        sports = [v for k, v in pairs if k == "sport"]
        dports = [v for k, v in pairs if k == "dport"]
        if len(srcs) >= 2 and dsts and sports and dports:
            out.append(SynEntry(srcs[0], dsts[0], sports[0], dports[0], srcs[1]))
    return out


def stale(entries: Iterable[SynEntry], serving: dict[str, set[str]]) -> list[SynEntry]:
    """Entries to a load-balancer address (a key of `serving`) whose DNAT target is not one of
    that address's serving endpoints. Entries to other addresses are never touched."""
    return [e for e in entries if e.dst in serving and e.reply_src not in serving[e.dst]]


def serving_endpoints(core, discovery, pool: set[str]) -> dict[str, set[str]]:
    """Each load-balancer address of the pool -> the addresses of its Service's endpoints that
    serve (ready, or terminating and still serving: kube-proxy may still send to those)."""
    by_service: dict[tuple[str, str], str] = {}
    for svc in core.list_service_for_all_namespaces().items:
        ingress = (svc.status.load_balancer.ingress or []) if svc.status.load_balancer else []
        for ing in ingress:
            if ing.ip in pool:
                by_service[(svc.metadata.namespace, svc.metadata.name)] = ing.ip
    out: dict[str, set[str]] = {ip: set() for ip in by_service.values()}
    for sl in discovery.list_endpoint_slice_for_all_namespaces().items:
        owner = (sl.metadata.labels or {}).get("kubernetes.io/service-name")
        ip = by_service.get((sl.metadata.namespace, owner))
        if ip is None:
            continue
        for ep in sl.endpoints or []:
            cond = ep.conditions
            if cond is None or cond.serving is not False:
                out[ip].update(ep.addresses or [])
    return out


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=CONNTRACK_TIMEOUT)


class Pruner:
    """One pass: list SYN_SENT entries to the pool first, then the endpoints (so an entry to a
    pod that was serving when listed is never taken for stale), delete the stale ones."""

    def __init__(self, core, discovery, pool: Iterable[str], run: Runner = _run) -> None:
        self.core, self.discovery, self.pool, self.run = core, discovery, set(pool), run
        self.binary = shutil.which("conntrack") or shutil.which("conntrack", path="/usr/sbin")
        if self.binary is None:
            log.warning("no conntrack command: stale SYN entries are left to time out")

    def once(self) -> int:
        if self.binary is None:
            return 0
        listed = self.run([self.binary, "-L", "-p", "tcp", "--state", "SYN_SENT"])
        candidates = [e for e in parse(listed.stdout.splitlines()) if e.dst in self.pool]
        if not candidates:
            return 0
        gone = stale(candidates, serving_endpoints(self.core, self.discovery, self.pool))
        for e in gone:
            tuple_ = ["-s", e.src, "-d", e.dst, "--sport", e.sport, "--dport", e.dport]
            self.run([self.binary, "-D", "-p", "tcp", "--state", "SYN_SENT", *tuple_])
        if gone:
            targets = sorted({e.reply_src for e in gone})
            log.info("deleted %d stale SYN entries to %s", len(gone), ", ".join(targets))
        return len(gone)
