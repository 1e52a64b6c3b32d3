"""StackNamespace: the stack's namespace and what holds for every pod in it.

The namespace with its Pod Security labels, the namespace-wide default-deny NetworkPolicy and
the ResourceQuota/LimitRange. Created first and passed to every other component, so none of
them owns a namespace another one's objects live in, and no pod can start before the rules
that hold for it (`gates`).

These objects moved here from ArticleApp (the namespace, the default-deny) and from the top
level (the quota component). `aliases` give them their old URNs, so an upgrade of a deployed
stack updates nothing and replaces nothing (tests/components/test_namespace.py, and the
upgrade step of make e2e).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.quota import NamespaceQuota, NamespaceQuotaArgs, QuotaPlan

TYPE_TOKEN = "selfheal-lb:namespace:StackNamespace"
# Pod Security Standards: enforce a pinned version (a cluster upgrade cannot start rejecting the
# pods), audit/warn against the newest rules so future tightening shows up as warnings first.
POD_SECURITY_VERSION = "v1.30"
# Where these objects lived before (their URNs are kept through aliases).
FORMER_PARENT_TYPE = "selfheal-lb:app:ArticleApp"
FORMER_PARENT_NAME = "app"


@dataclass(frozen=True)
class StackNamespaceArgs:
    name: str  # resolved by the settings ("" -> selfheal-lb-<stack>)
    instance: str  # app.kubernetes.io/instance, normally the stack name
    default_deny: bool  # appNetworkPolicy: deny every pod's traffic unless a policy allows it
    quota: QuotaPlan | None = None  # None = quotaEnabled false


def pod_security_labels() -> dict[str, str]:
    return {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": POD_SECURITY_VERSION,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
    }


def _formerly_under_app(name: str) -> pulumi.ResourceOptions:
    """Options for an object that ArticleApp `app` created under the resource name `name`."""
    former_parent = pulumi.create_urn(FORMER_PARENT_NAME, FORMER_PARENT_TYPE)
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=name, parent=former_parent)])


class StackNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]
    gates: list[pulumi.Resource]  # what must exist before any pod of the stack starts

    def __init__(
        self, name: str, args: StackNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": args.name,
                "labels": {
                    labels.PART_OF_KEY: labels.PART_OF,
                    labels.INSTANCE_KEY: args.instance,
                    labels.MANAGED_BY_KEY: "pulumi",
                    **pod_security_labels(),
                },
            },
            opts=pulumi.ResourceOptions.merge(child, _formerly_under_app("app-namespace")),
        )
        self.name = self.namespace.metadata.apply(lambda m: m.name)
        self.gates = []
        if args.default_deny:
            # Any pod the stack adds gets no traffic in or out until its own policy allows it.
            # Labelled as the app's objects were when ArticleApp created it (no diff on upgrade).
            self.default_deny = k8s.networking.v1.NetworkPolicy(
                "default-deny",
                metadata={
                    "name": "default-deny",
                    "namespace": self.name,
                    "labels": labels.object_labels(labels.APP_NAME, args.instance, "web"),
                },
                spec={"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
                opts=pulumi.ResourceOptions.merge(child, _formerly_under_app("app-default-deny")),
            )
            self.gates.append(self.default_deny)
        if args.quota is not None:
            # Was a top-level component: the alias keeps its URN, and with it its children's.
            self.quota = NamespaceQuota(
                "quota",
                NamespaceQuotaArgs(plan=args.quota, namespace=self.name, instance=args.instance),
                pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=None)]),
            )
            self.gates.append(self.quota)
        self.register_outputs({"name": self.name})
