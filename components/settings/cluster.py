"""The cluster the stack targets: its kubeconfig context, namespace and identifier."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.settings.schema import DNS_LABEL, Reader


@dataclass(frozen=True)
class ClusterSettings:
    kube_context: str  # "" = the kubeconfig's current context
    namespace: str  # resolved: config value or "selfheal-lb-<stack>"
    # The provider's clusterIdentifier (resolved: config value or "<project>-<stack>"): with it
    # set, pulumi-kubernetes replaces the provider (and every object) only when it changes.
    cluster_identifier: str = ""


def parse_namespace(r: Reader, stack: str) -> str:
    given = r.string("namespace")
    if given:
        if len(given) > 63 or not DNS_LABEL.match(given):
            r.fail("namespace", given, "must be a DNS-1123 label (a-z, 0-9, '-', at most 63)")
        return given
    # Derived from the stack name, made a valid label whatever the stack is called.
    derived = re.sub(r"[^a-z0-9-]+", "-", f"selfheal-lb-{stack.lower()}")[:63].strip("-")
    return derived
