"""NetworkPolicy pieces more than one component uses."""

from __future__ import annotations

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
