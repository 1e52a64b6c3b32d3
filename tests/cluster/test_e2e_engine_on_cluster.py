"""make e2e's executor replaces a Job as pulumi-kubernetes does, on the real cluster.

Recorded under a real engine (Kubernetes 1.35, pulumi-kubernetes 4.32): the landed fortio Job
(fixed name, pulumi.com/skipAwait, deleteBeforeReplace) was deleted without waiting and
created again at once, and `pulumi up` failed with `object is being deleted: jobs.batch
"fortio" already exists`. The executor must fail the same way for that Job, and the stack's
Job (auto-named, created first) must pass."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import inline_program
import pytest
from inline_program import write_project

from cluster.e2e import stack
from cluster.paths import CONTEXT, KUBECONFIG, KUBECTL
from components import offline

FORTIO_IMAGE = offline.stack_config("local")["selfheal-lb:loadgenImage"]


@pytest.fixture
def deployer() -> stack.Deployer:
    if not KUBECONFIG.exists() or not KUBECTL.exists():
        pytest.skip(f"no real cluster: {KUBECONFIG} does not exist (make cluster)")
    d = stack.Deployer(kubectl=str(KUBECTL), kubeconfig=str(KUBECONFIG), context=CONTEXT,
                       timeout=120, log=lambda _: None)  # fmt: skip
    if d.kc("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        pytest.skip("the real cluster does not answer /readyz")
    return d


@pytest.fixture
def namespace(deployer: stack.Deployer):
    name = f"t-engine-{uuid.uuid4().hex[:6]}"
    deployer.kc("create", "namespace", name)
    yield name
    deployer.kc("delete", "namespace", name, "--wait=false", check=False)


def job_program(tmp_path: Path, namespace: str, *, named: bool):
    """A fortio Job like the stack's: skipAwait, a run stamp in its pod template; the landed
    one also with a fixed name and deleteBeforeReplace."""
    name = '"name": "fortio", ' if named else ""
    project = write_project(
        tmp_path,
        f"""
        import pulumi
        import pulumi_kubernetes as k8s
        stamp = pulumi.Config().require("stamp")
        job = k8s.batch.v1.Job(
            "loadgen-job",
            metadata={{{name}"namespace": "{namespace}",
                      "annotations": {{"pulumi.com/skipAwait": "true"}}}},
            spec={{"parallelism": 2, "completions": 2, "backoff_limit": 0,
                  "template": {{
                      "metadata": {{"annotations": {{"run": stamp}}}},
                      "spec": {{"restart_policy": "Never",
                               "containers": [{{"name": "fortio", "image": "{FORTIO_IMAGE}",
                                               "image_pull_policy": "Never",
                                               "args": ["version"]}}]}}}}}},
            opts=pulumi.ResourceOptions(delete_before_replace={named}),
        )
        pulumi.export("jobName", job.metadata.apply(lambda m: m["name"]))
        """,
    )

    def evaluate(stamp: str):
        def run(stdout, names):
            return inline_program.evaluate(project, {"selfheal-lb:stamp": stamp}, stdout, names)

        return run

    return evaluate


def complete(d: stack.Deployer, namespace: str, job: str) -> None:
    d.kc("wait", f"job/{job}", "-n", namespace, "--for=condition=Complete", "--timeout=90s",
         timeout=100)  # fmt: skip


def jobs(d: stack.Deployer, namespace: str) -> list[str]:
    doc = json.loads(d.kc("get", "jobs", "-n", namespace, "-o", "json").stdout)
    return sorted(j["metadata"]["name"] for j in doc["items"])


@pytest.mark.slow
def test_the_landed_fixed_name_job_fails_its_replacement_as_under_the_engine(
    deployer: stack.Deployer, namespace: str, tmp_path: Path
):
    evaluate = job_program(tmp_path, namespace, named=True)
    first, _ = deployer.up(evaluate("one"))
    complete(deployer, namespace, "fortio")
    with pytest.raises(stack.DeployError, match=r"being deleted|AlreadyExists|already exists"):
        deployer.up(evaluate("two"), previous={r.urn: r for r in first.resources})


@pytest.mark.slow
def test_the_stacks_auto_named_job_is_replaced_by_a_new_one(
    deployer: stack.Deployer, namespace: str, tmp_path: Path
):
    evaluate = job_program(tmp_path, namespace, named=False)
    first, _ = deployer.up(evaluate("one"))
    old = first.outputs["jobName"]
    assert old.startswith("loadgen-job-") and jobs(deployer, namespace) == [old]
    complete(deployer, namespace, old)
    second, acted = deployer.up(evaluate("two"), previous={r.urn: r for r in first.resources})
    new = second.outputs["jobName"]
    assert acted == ["loadgen-job"] and new != old and new.startswith("loadgen-job-")
    # The old run's Job is deleted at the end (not awaited: skipAwait), the new one remains.
    remaining = jobs(deployer, namespace)
    assert new in remaining
    deployer.kc("wait", f"job/{old}", "-n", namespace, "--for=delete", "--timeout=60s",
                timeout=70)  # fmt: skip
    assert jobs(deployer, namespace) == [new]


@pytest.mark.slow
def test_an_update_keeps_the_replicas_an_autoscaler_set(
    deployer: stack.Deployer, namespace: str, tmp_path: Path
):
    """Under ignoreChanges on spec.replicas an update re-sends the live count (as
    pulumi-kubernetes does with server-side apply): a scale-out by the HPA survives a deploy."""
    project = write_project(
        tmp_path,
        f"""
        import pulumi
        import pulumi_kubernetes as k8s
        note = pulumi.Config().require("note")
        labels = {{"app": "keep-replicas"}}
        k8s.apps.v1.Deployment(
            "app-deployment",
            metadata={{"name": "keep", "namespace": "{namespace}",
                      "annotations": {{"note": note}}}},
            spec={{"replicas": 1, "selector": {{"match_labels": labels}},
                  "template": {{"metadata": {{"labels": labels}},
                               "spec": {{"containers": [{{"name": "c", "image": "{FORTIO_IMAGE}",
                                                         "image_pull_policy": "Never",
                                                         "args": ["server"]}}]}}}}}},
            opts=pulumi.ResourceOptions(ignore_changes=["spec.replicas"]),
        )
        """,
    )

    def evaluate(note: str):
        return lambda stdout, names: inline_program.evaluate(
            project, {"selfheal-lb:note": note}, stdout, names
        )

    first, _ = deployer.up(evaluate("one"))
    deployer.kc("scale", "deployment/keep", "-n", namespace, "--replicas=2")  # the HPA's move
    _, acted = deployer.up(evaluate("two"), previous={r.urn: r for r in first.resources})
    assert acted == ["app-deployment"]  # the annotation changed: an update
    live = json.loads(deployer.kc("get", "deployment/keep", "-n", namespace, "-o", "json").stdout)
    assert live["metadata"]["annotations"]["note"] == "two"
    assert live["spec"]["replicas"] == 2
