"""The whole program under mocks: wiring between the components, outputs, parenting, the
explicit provider, config mistakes, and how long an evaluation takes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from stack_fixtures import dev_config

from components import offline
from components.settings import CONFIG_SPEC

OUR_TYPES = "selfheal-lb:"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
JOB = "kubernetes:batch/v1:Job"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
COMMAND = "command:local:Command"
OUTPUTS = {
    "namespace",
    "serviceName",
    "externalIp",
    "externalIpNote",
    "url",
    "imageRef",
    "appReplicas",
    "loadTest",
    "loadDistribution",
    "metricsServer",
    "monitoring",  # components/monitoring.py: what `auto` resolved to
    "namespaceQuota",  # components/quota.py
}


@pytest.fixture(scope="module")
def dev_run() -> offline.ProgramRun:
    return offline.run_program(dev_config(), stack="dev")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def app_pod_labels(run: offline.ProgramRun) -> dict[str, str]:
    return run.one(DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]


def fortio_pod_labels(run: offline.ProgramRun) -> dict[str, str]:
    return run.one(JOB).inputs["spec"]["template"]["metadata"]["labels"]


def test_service_selects_the_app_pods_and_only_them(dev_run):
    selector = dev_run.one(SERVICE).inputs["spec"]["selector"]
    assert selects(selector, app_pod_labels(dev_run))
    assert not selects(selector, fortio_pod_labels(dev_run))
    deployment = dev_run.one(DEPLOYMENT).inputs["spec"]
    assert selects(deployment["selector"]["matchLabels"], app_pod_labels(dev_run))


@pytest.mark.parametrize(("config", "seconds"), [({}, 5), ({"nodeLossTolerationSeconds": 42}, 42)])
def test_the_app_pods_tolerate_a_lost_node_for_node_loss_toleration_seconds(config, seconds):
    run = offline.run_program(dev_config(**config), stack="dev")
    pod = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert {(t["key"], t["effect"], t["tolerationSeconds"]) for t in pod["tolerations"]} == {
        ("node.kubernetes.io/not-ready", "NoExecute", seconds),
        ("node.kubernetes.io/unreachable", "NoExecute", seconds),
    }


def test_fortio_targets_the_service_by_its_dns_name(dev_run):
    service = dev_run.one(SERVICE).inputs
    url = dev_run.one(JOB).inputs["spec"]["template"]["spec"]["containers"][0]["args"][-1]
    name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
    port = int(service["spec"]["ports"][0]["port"])
    assert url == f"http://{name}.{ns}.svc.cluster.local:{port}/article1"
    assert dev_run.one(JOB).inputs["metadata"]["namespace"] == ns


def test_hpa_targets_the_deployment_and_pdb_selects_the_pods(dev_run):
    target = dev_run.one(HPA).inputs["spec"]["scaleTargetRef"]
    deployment = dev_run.one(DEPLOYMENT).inputs
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert target["apiVersion"] == "apps/v1"
    pdb = dev_run.one(PDB).inputs
    assert selects(pdb["spec"]["selector"]["matchLabels"], app_pod_labels(dev_run))
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def _ingress_rules_for(run: offline.ProgramRun, pod_labels: dict[str, str]) -> list[dict]:
    rules = []
    for policy in run.of_type(POLICY):
        spec = policy.inputs["spec"]
        if selects(spec["podSelector"].get("matchLabels", {}), pod_labels):
            rules += spec.get("ingress") or []
    return rules


def test_network_policy_admits_fortio_and_the_verification(dev_run):
    container_port = 8080
    rules = _ingress_rules_for(dev_run, app_pod_labels(dev_run))
    admitted = [
        peer
        for rule in rules
        if any(int(p["port"]) == container_port for p in rule.get("ports", []))
        for peer in rule.get("from", [])
    ]
    fortio = fortio_pod_labels(dev_run)
    assert any(selects(p.get("podSelector", {}).get("matchLabels", {}), fortio) for p in admitted)
    # Clients through the load balancer arrive from node addresses: admitted; the stack's pod
    # range is carved out, so other namespaces' pods are not (on Calico and kube-router).
    outside = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}}
    assert outside in admitted
    # The verification reads each pod's /metrics on the metrics port through the API server's
    # pod proxy, which connects from the node/API-server address: admitted there, fortio not.
    metrics = [
        peer
        for rule in rules
        if any(int(p["port"]) == 9090 for p in rule.get("ports", []))
        for peer in rule.get("from", [])
    ]
    assert outside in metrics
    assert not any("podSelector" in p for p in metrics)
    # fortio itself may send to the app pods (its egress policy).
    egress = [
        peer
        for policy in dev_run.of_type(POLICY)
        if selects(policy.inputs["spec"]["podSelector"].get("matchLabels", {}), fortio)
        for rule in policy.inputs["spec"].get("egress") or []
        for peer in rule.get("to", [])
    ]
    assert any(
        selects(p.get("podSelector", {}).get("matchLabels", {}), app_pod_labels(dev_run))
        for p in egress
    )


def test_verification_brackets_the_load(dev_run):
    snapshot = dev_run.named("verification-snapshot")
    check = dev_run.named("verification-verify")
    job = dev_run.one(JOB)
    app = dev_run.one("selfheal-lb:app:ArticleApp")
    # The snapshot's own depends_on (reads=[app]) expands to the app's resources: the
    # Deployment among them (the component's depends_on would not reach the snapshot).
    deployment = dev_run.one(DEPLOYMENT)
    assert deployment.parent_urn == app.urn
    assert deployment.urn in snapshot.dependencies, "the baseline waits for the app's pods"
    assert snapshot.urn in job.dependencies, "fortio starts after the baseline"
    assert job.urn in check.dependencies, "the check runs after the completed Job"
    name = f"loadgen-job-{offline.fake_suffix(job.urn)}"  # auto-named, as the mocks name it
    assert f"--loadgen-selector batch.kubernetes.io/job-name={name}" in check.inputs["create"]
    selector = ",".join(
        f"{k}={v}" for k, v in dev_run.one(SERVICE).inputs["spec"]["selector"].items()
    )
    for command in (snapshot, check):
        assert "--namespace selfheal-lb-dev" in command.inputs["create"]
        words = command.inputs["create"].split()
        assert set(words[words.index("--selector") + 1].split(",")) == set(selector.split(","))


def test_every_resource_belongs_to_a_component_and_uses_the_explicit_provider(dev_run):
    provider = dev_run.one("pulumi:providers:kubernetes")
    assert provider.inputs.get("enableServerSideApply") == "true"  # provider config: strings
    assert "context" not in provider.inputs  # "" = the kubeconfig's current context
    for rec in dev_run.resources:
        if rec.type.startswith("pulumi:providers:"):
            assert rec.parent_type == "pulumi:pulumi:Stack", rec.name
            continue
        if rec.type.startswith(OUR_TYPES):  # at the top, or one of ours inside another
            assert rec.parent_type == "pulumi:pulumi:Stack" or rec.parent_type.startswith(
                OUR_TYPES
            ), rec.name
            continue
        assert rec.parent_type.startswith(OUR_TYPES), f"{rec.type} {rec.name} has no component"
        if rec.type.startswith("kubernetes:"):
            assert rec.provider.startswith(provider.urn), f"{rec.name} not on the explicit provider"


def test_outputs(dev_run):
    out = dev_run.outputs
    assert set(out) == OUTPUTS
    assert out["namespace"] == "selfheal-lb-dev" and out["serviceName"] == "articles"
    assert out["externalIp"] == "" and out["url"] == ""
    assert out["externalIpNote"].startswith("pending: run `minikube tunnel`")
    assert out["imageRef"].startswith("selfheal-lb/articles:") and "latest" not in out["imageRef"]
    assert out["appReplicas"] == 3


def test_outputs_once_the_load_balancer_has_an_address():
    def with_address(rec: offline.RecordedResource) -> dict[str, Any]:
        fake = offline.realistic_outputs(rec, preview=False)
        if rec.type == SERVICE:
            fake["status"] = {"loadBalancer": {"ingress": [{"ip": "10.96.0.50"}]}}
        return fake

    run = offline.run_program(dev_config(), stack="dev", fake_outputs=with_address)
    assert run.outputs["externalIp"] == "10.96.0.50"
    assert run.outputs["url"] == "http://10.96.0.50:8080/"
    assert run.outputs["externalIpNote"] == ""


def test_preview_leaves_the_verification_outputs_unknown():
    run = offline.run_program(dev_config(), stack="dev", preview=True)
    assert run.outputs["loadDistribution"] == offline.UNKNOWN
    assert run.outputs["loadTest"] == offline.UNKNOWN
    assert run.outputs["namespace"] == "selfheal-lb-dev"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"verifyEnabled": False}, "verifyEnabled is false"),
        (
            {"verifyEnabled": False, "loadgenMode": "off"},
            "loadgenMode is off: no load, nothing to verify",
        ),
        (
            {"verifyEnabled": False, "loadgenMode": "continuous", "loadgenQps": 50},
            "verifyEnabled is false",
        ),
    ],
)
def test_without_verification_no_command_runs(overrides, reason):
    run = offline.run_program(dev_config(**overrides), stack="dev")
    assert run.of_type(COMMAND) == []
    assert run.outputs["loadDistribution"] == {"verdict": "skipped", "reason": reason}
    assert run.outputs["loadTest"] == {}


def test_kube_context_reaches_the_provider_and_the_commands():
    run = offline.run_program(dev_config(kubeContext="kind-selfheal"), stack="dev")
    assert run.one("pulumi:providers:kubernetes").inputs["context"] == "kind-selfheal"
    for command in run.of_type(COMMAND):
        assert "--context kind-selfheal" in command.inputs["create"]


def test_the_provider_carries_a_cluster_identifier_a_context_change_keeps(dev_run):
    """pulumi-kubernetes replaces its provider (and every object under it) on a context change
    unless clusterIdentifier is set and unchanged: setting or renaming kubeContext must keep it.
    (The engine's diff itself is not run here: see docs/verified.md.)"""
    provider = dev_run.one("pulumi:providers:kubernetes")
    assert provider.inputs["clusterIdentifier"] == "selfheal-lb-dev"
    for context in ("minikube", "kind-selfheal"):
        run = offline.run_program(dev_config(kubeContext=context), stack="dev")
        moved = run.one("pulumi:providers:kubernetes")
        assert moved.inputs["clusterIdentifier"] == "selfheal-lb-dev", context
        assert moved.urn == provider.urn  # the same provider resource, updated in place
    chosen = offline.run_program(dev_config(clusterIdentifier="staging-eu"), stack="dev")
    assert chosen.one("pulumi:providers:kubernetes").inputs["clusterIdentifier"] == "staging-eu"


def test_the_provider_never_drops_objects_of_an_unreachable_cluster_by_itself(dev_run):
    """deleteUnreachable only for a destroy of a gone cluster (scripts/stack.sh sets it then):
    set on the provider, a refresh during an outage would forget live objects."""
    assert "deleteUnreachable" not in dev_run.one("pulumi:providers:kubernetes").inputs


def test_config_mistake_stops_the_program_with_one_line_before_any_resource():
    with pytest.raises(offline.ProgramFailed) as failed:
        offline.run_program(dev_config(appReplicas=0), stack="dev")
    assert failed.value.code == 32  # the language host's "error already shown"
    assert failed.value.errors == [
        "config 'selfheal-lb:appReplicas' is '0': must be an integer from 1 to 50"
    ]


def test_config_mistake_registers_nothing():
    recorded: list[str] = []

    def spy(rec: offline.RecordedResource) -> dict[str, Any]:
        recorded.append(rec.type)
        return {}

    with pytest.raises(offline.ProgramFailed):
        offline.run_program(dev_config(loadgenPath="article1"), stack="dev", fake_outputs=spy)
    assert recorded == []


def test_every_key_set_by_the_dev_stack_is_a_known_key():
    keys = {k.split(":", 1)[1] for k in offline.stack_config("dev")}
    assert keys <= set(CONFIG_SPEC)


def test_whole_stack_evaluates_in_under_two_seconds(dev_run):
    """dev_run has paid the one-off imports; this times evaluations of the program itself.

    Best of three wall-clock runs, so a busy machine (parallel test suites) does not decide.
    """
    for preview in (True, False):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            offline.run_program(dev_config(), stack="dev", preview=preview)
            times.append(time.perf_counter() - start)
        assert min(times) < 2.0, f"evaluation took {min(times):.2f} s (preview={preview})"


def test_a_stack_that_does_not_say_awaits_the_load_balancer_address():
    """serviceAwaitLoadBalancer defaults to true: `up` waits for the address, so externalIp and
    url are filled in; only the minikube stack (dev) opts out, and its note says what to run."""
    config = {k: v for k, v in dev_config().items() if not k.endswith(":serviceAwaitLoadBalancer")}
    run = offline.run_program(config, stack="staging")
    annotations = run.one(SERVICE).inputs["metadata"].get("annotations") or {}
    assert "pulumi.com/skipAwait" not in annotations
    dev = offline.run_program(dev_config(), stack="dev")
    assert dev.one(SERVICE).inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert "`pulumi up --refresh`" in dev.outputs["externalIpNote"]
