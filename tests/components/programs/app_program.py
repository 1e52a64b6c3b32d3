"""Builds one ArticleApp in its StackNamespace from the JSON in config `selfheal-lb:testApp`
(see ../conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _recorder

from components.app import ArticleApp, ArticleAppArgs
from components.namespace import StackNamespace, StackNamespaceArgs
from components.settings import AppSettings, AutoscalingSettings, Resources

recorded = _recorder.install()
case = pulumi.Config("selfheal-lb").require_object("testApp")
app_fields = dict(case["settings"])
app_fields["resources"] = Resources(**app_fields["resources"])
app_fields["ingress_cidrs"] = tuple(app_fields["ingress_cidrs"])
app_fields["pod_cidrs"] = tuple(app_fields.get("pod_cidrs", ()))

settings = AppSettings(**app_fields)
namespace = StackNamespace(
    "stack-namespace",
    StackNamespaceArgs(
        name=case["namespace"], instance=case["instance"], default_deny=settings.network_policy
    ),
)
app = ArticleApp(
    "app",
    ArticleAppArgs(
        settings=settings,
        autoscaling=AutoscalingSettings(**case["autoscaling"]),
        metrics_available=case["metrics_available"],
        namespace=namespace.name,
        before_pods=namespace.gates,
        image_ref=case["image_ref"],
        pull_policy=case["pull_policy"],
        instance=case["instance"],
    ),
)

pulumi.export("namespace", namespace.name)
pulumi.export("serviceName", app.service_name)
pulumi.export("externalAddress", app.external_address)
pulumi.export("serviceDns", app.service_dns)
pulumi.export("selector", app.selector)
pulumi.export("podLabels", app.pod_labels)
pulumi.export("hasDeployment", app.deployment is not None and app.service is not None)
pulumi.export("options", dict(recorded))
