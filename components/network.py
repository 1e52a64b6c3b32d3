"""NetworkPolicy pieces more than one component uses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

KUBE_DNS_NAMESPACE = "kube-system"


def dns_egress() -> dict[str, Any]:
    """An egress rule: DNS (UDP and TCP 53) to the cluster's DNS in kube-system."""
    return {
        "to": [
            {
                "namespace_selector": {
                    "match_labels": {"kubernetes.io/metadata.name": KUBE_DNS_NAMESPACE}
                }
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def ip_blocks(cidrs: Sequence[str], pod_cidrs: Sequence[str]) -> list[dict[str, Any]]:
    """NetworkPolicy peers for `cidrs` that never match the cluster's pod addresses.

    What an ipBlock matches is up to the policy engine: Calico and kube-router match any source
    address in it, pods' own included, so 0.0.0.0/0 there admits every pod of every namespace;
    Cilium matches only addresses outside the cluster (pods are identities, not CIDRs). Each
    pod range strictly inside a CIDR is therefore carved out with `except`, so the rule means
    "clients outside the pod network" on every engine. A CIDR inside (or equal to) a pod range
    was written on purpose (e.g. the node's bridge address that SNATed traffic comes from) and
    is kept as given.
    """
    pods = [ipaddress.ip_network(p) for p in pod_cidrs]
    peers: list[dict[str, Any]] = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        carved = [
            str(p)
            for p in pods
            if p.version == net.version and p != net and p.subnet_of(net)  # type: ignore[arg-type]
        ]
        block: dict[str, Any] = {"cidr": cidr}
        if carved:
            block["except"] = carved
        peers.append({"ip_block": block})
    return peers


def admits_pods(cidrs: Sequence[str], pod_cidrs: Sequence[str]) -> bool:
    """Whether `cidrs` may still match pod addresses on Calico/kube-router: some CIDR contains
    more than one address and no pod range is known to carve out of it."""
    return not pod_cidrs and any(ipaddress.ip_network(c).num_addresses > 1 for c in cidrs)
