"""Builds one LoadGenerator from the JSON in config `selfheal-lb:testLoad` (see ../conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _recorder

from components.loadgen import LoadGenerator, LoadGeneratorArgs
from components.settings import LoadSettings

recorded = _recorder.install()
case = pulumi.Config("selfheal-lb").require_object("testLoad")

# Stand-in for the verification's baseline snapshot, which must exist before the load runs.
baseline = k8s.core.v1.ConfigMap("baseline", metadata={"namespace": case["namespace"]})
# The URL arrives as an Output, as it does from ArticleApp.service_dns in the real stack.
url = pulumi.Output.from_input(case["service_dns"]).apply(
    lambda dns: case.get("target_url") or f"http://{dns}:{case['service_port']}"
)

loadgen = LoadGenerator(
    "loadgen",
    LoadGeneratorArgs(
        load=LoadSettings(**case["load"]),
        namespace=case["namespace"],
        target_url=url,
        instance=case["instance"],
        app_pod_labels=case["app_pod_labels"],
        depends_on=[baseline] if case["with_baseline"] else [],
        network_policy=case["network_policy"],
    ),
)

pulumi.export("jobName", loadgen.job_name)
pulumi.export("hasJob", loadgen.job is not None)
pulumi.export("hasDeployment", loadgen.deployment is not None)
pulumi.export("podLabels", loadgen.pod_labels)
pulumi.export("selector", loadgen.selector)
pulumi.export("options", dict(recorded))
