"""LoadGenerator: fortio pods that load the article Service through its in-cluster DNS name.

Replaces the seed walkthrough's load-generator.yml, a Deployment running
`fortio load -c 100 -n 1000 http://10.110.107.181:8080/article1`: a hard-coded Service IP, and
a command that exits after 1000 calls so the Deployment restarted it forever (the "self-healing"
the walkthrough observed was that crash loop). Here:

- mode `job`: a Job of `pods` parallel pods that each run the load once and complete, with
  fortio's JSON result in their logs for the verification; the Job's pod template carries the
  verification's run stamp (the baseline's digest), so each new baseline brings a new load;
- mode `continuous`: a Deployment (with a PDB) whose fortio runs until stopped (`-t 0`) at a
  bounded qps, ready while it reaches the app;
- mode `off`: nothing.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pulumi
import pulumi_kubernetes as k8s

from components import labels, network
from components.app import CONTAINER_PORT as APP_PORT
from components.pod_security import container_security_context, pod_security_context
from components.settings import LoadSettings

TYPE_TOKEN = "selfheal-lb:loadgen:LoadGenerator"

# Keep in step with FORTIO_VERSION in scripts/install-tools.sh (the binary the tests run).
# Docker Hub tags carry no "v".
FORTIO_BINARY = "/usr/bin/fortio"  # the image's ENTRYPOINT; named so `args` stay readable
RUN_AS_ID = 10001  # the image is FROM scratch: any numeric non-root id works
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "32Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}
# Pod scheduling and the image pull count against activeDeadlineSeconds too.
JOB_START_ALLOWANCE_SECONDS = 180
# Before a Job pod's load starts, wait (bounded) until the target answers once: a NetworkPolicy
# engine may admit a new pod's address only some time after the pod starts (kube-router's sync
# on the local cluster took about a second: the first calls were refused), and those calls
# would count as errors of the load. Found on the real cluster (make e2e).
WAIT_FOR_TARGET_SECONDS = 30
HEALTH_PATH = "/healthz"  # the app's liveness route (components/app.py), not counted as load
# A failed fortio pod (e.g. the first request hit a DNS hiccup) may be retried this often.
JOB_BACKOFF_LIMIT = 2
RUN_ANNOTATION = "selfheal-lb/verification-run"  # carries LoadGeneratorArgs.run_stamp
# pulumi-kubernetes' annotation to not await an object: the verified Job is not awaited, so
# that verify runs *during* the load and samples the pods' CPU/memory under it; verify itself
# waits for the fortio pods to finish (and reports a failed one).
SKIP_AWAIT = "pulumi.com/skipAwait"


@dataclass(frozen=True)
class LoadGeneratorArgs:
    load: LoadSettings
    namespace: pulumi.Input[str]
    # The Service's in-cluster URL, http://<svc>.<ns>.svc.cluster.local:<port>; with no path
    # (or "/"), load.path is appended; a URL that already ends in load.path is used as is.
    target_url: pulumi.Input[str]
    instance: str
    app_pod_labels: dict[str, str]
    # Created before the load starts (the verification's baseline snapshot).
    depends_on: Sequence[pulumi.Resource] = ()
    # A value that, when it changes, makes the Job run again (the verification's run stamp):
    # it is an annotation on the Job's immutable pod template, so a new one replaces the Job.
    run_stamp: pulumi.Input[str] | None = None
    network_policy: bool = True


def job_deadline_seconds(load: LoadSettings) -> int:
    """activeDeadlineSeconds for one fortio run: start-up plus the slowest possible run.

    Each connection sends requests/connections calls one after another; if every call timed
    out that takes ceil(n/c) * timeout. A qps cap adds n/qps on top (fortio's -qps is per
    run, i.e. per pod).
    """
    per_connection = math.ceil(load.requests / load.connections)
    paced = math.ceil(load.requests / load.qps) if load.qps > 0 else 0
    return (
        JOB_START_ALLOWANCE_SECONDS
        + WAIT_FOR_TARGET_SECONDS
        + per_connection * load.timeout_seconds
        + paced
    )


def load_url(base_url: str, path: str) -> str:
    """The URL fortio loads: the Service's DNS URL plus the article path. Never an IP."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"fortio target must be an http(s) URL, got {base_url!r}")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        pass
    else:
        raise ValueError(f"fortio target must use the Service's DNS name, not an IP: {base_url!r}")
    if parts.path in ("", "/"):
        return base_url.rstrip("/") + path
    if parts.path == path:
        return base_url
    raise ValueError(f"fortio target {base_url!r} has a path other than loadgenPath {path!r}")


def fortio_args(load: LoadSettings, url: str) -> list[str]:
    """fortio's arguments for the mode: flag spellings as `fortio help` 1.68.2 prints them."""
    keepalive = [] if load.keepalive else ["-keepalive=false"]
    timeout = ["-timeout", f"{load.timeout_seconds}s"]
    if load.mode == "job":
        # -json -: the result document on stdout, i.e. in the pod log the verification reads.
        return [
            "load", "-json", "-", "-quiet",
            "-c", str(load.connections), "-n", str(load.requests), "-qps", str(load.qps),
            *keepalive, *timeout, url,
        ]  # fmt: skip
    if load.mode == "continuous":
        if load.qps < 1:
            raise ValueError("continuous load needs loadgenQps >= 1 (0 would be unbounded)")
        # -t 0: run until the pod is stopped, so the Deployment never restarts a finished
        # run. -allow-initial-errors: keep going if the first calls fail (app still rolling
        # out) instead of exiting, which would be the seed's crash loop again.
        return [
            "load", "-quiet", "-allow-initial-errors",
            "-c", str(load.connections), "-qps", str(load.qps), "-t", "0",
            *keepalive, *timeout, url,
        ]  # fmt: skip
    raise ValueError(f"no fortio command for load mode {load.mode!r}")


def wait_for_target_command(url: str) -> list[str]:
    """Up to WAIT_FOR_TARGET_SECONDS of 4 calls a second, ending at the first 200 (-abort-on).

    It asks the Service's /healthz, not the loaded page: the same way in (Service, port,
    policies), but a probe route the verification does not count (loadgen/prom.py), so the
    wait adds nothing to the split, to a sticky client's requests or to the view counters.
    Exits 0 either way: if the target never answers, the load itself reports the errors.
    """
    health = urlunsplit(urlsplit(url)._replace(path=HEALTH_PATH, query=""))
    return [
        FORTIO_BINARY, "load", "-quiet", "-c", "1", "-qps", "4",
        "-t", f"{WAIT_FOR_TARGET_SECONDS}s", "-allow-initial-errors", "-abort-on", "200",
        "-timeout", "2s", health,
    ]  # fmt: skip


def readiness_command(url: str) -> list[str]:
    """One request to the target: exit 0 on a 2xx, non-zero on an error or any other status."""
    return [FORTIO_BINARY, "curl", "-quiet", "-timeout", "2s", url]


def continuous_probes(url: pulumi.Input[str]) -> dict[str, Any]:
    """Probes for the continuous loader (the image is FROM scratch: exec the fortio binary).

    Readiness: one `fortio curl` of the target, so READY says whether this loader reaches the
    app (it exits non-zero on a connection error or a non-2xx). Liveness stays local on
    purpose: the binary still executes in the container. Tying liveness to the app would
    restart every loader during an app outage, which heals nothing.
    """
    return {
        "readiness_probe": {
            "exec": {"command": pulumi.Output.from_input(url).apply(readiness_command)},
            "period_seconds": 10,
            "timeout_seconds": 5,
            "failure_threshold": 3,
        },
        "liveness_probe": {
            "exec": {"command": [FORTIO_BINARY, "version"]},
            "period_seconds": 30,
            "timeout_seconds": 5,
            "failure_threshold": 3,
        },
    }


class LoadGenerator(pulumi.ComponentResource):
    job: k8s.batch.v1.Job | None
    deployment: k8s.apps.v1.Deployment | None
    job_name: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: LoadGeneratorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        load = args.load
        self.selector_labels = labels.selector_labels(labels.LOADGEN_NAME, args.instance)
        self.pod_labels = labels.pod_labels(labels.LOADGEN_NAME, args.instance, "loadgen")
        self.selector = labels.selector_string(self.selector_labels)
        self.job = None
        self.deployment = None
        self.job_name = None
        self.network_policy: k8s.networking.v1.NetworkPolicy | None = None
        self.pdb: k8s.policy.v1.PodDisruptionBudget | None = None
        self.url: pulumi.Output[str] | None = None

        if load.mode != "off":
            fortio_args(load, "http://check.invalid")  # a mode/qps mistake fails right here
            object_labels = labels.object_labels(labels.LOADGEN_NAME, args.instance, "loadgen")
            self.url = pulumi.Output.from_input(args.target_url).apply(
                lambda base: load_url(base, load.path)
            )
            if args.network_policy:
                self.network_policy = self._egress_policy(name, args, object_labels)
            # Policies before pods: under the namespace's default-deny a fortio pod without
            # its egress rule cannot even resolve the Service name.
            depends_on = [*args.depends_on, *([self.network_policy] if self.network_policy else [])]
            pod_template = self._pod_template(load, self.url)
            if args.run_stamp is not None:
                pod_template["metadata"]["annotations"] = {RUN_ANNOTATION: args.run_stamp}
            if load.mode == "job":
                self.job = self._job(name, args, object_labels, pod_template, depends_on)
                self.job_name = self.job.metadata.apply(lambda m: m.name)
            else:
                self.deployment = self._deployment(
                    name, args, object_labels, pod_template, depends_on
                )
                # A replicated Deployment gets a PDB like any other (the policy pack's rule):
                # a node drain takes the loaders down one at a time.
                self.pdb = k8s.policy.v1.PodDisruptionBudget(
                    f"{name}-pdb",
                    metadata={
                        "name": labels.LOADGEN_NAME,
                        "namespace": args.namespace,
                        "labels": object_labels,
                    },
                    spec={
                        "max_unavailable": 1,
                        "selector": {"match_labels": self.selector_labels},
                        "unhealthy_pod_eviction_policy": "AlwaysAllow",
                    },
                    opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
                )

        self.register_outputs(
            {
                "mode": load.mode,
                "jobName": self.job_name,
                "selector": self.selector,
                "url": self.url,
            }
        )

    def _pod_template(self, load: LoadSettings, url: pulumi.Output[str]) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "fortio",
            "image": load.image,
            "image_pull_policy": "IfNotPresent",
            "command": [FORTIO_BINARY],
            "args": url.apply(lambda u: fortio_args(load, u)),
            "resources": RESOURCES,
            "security_context": container_security_context(RUN_AS_ID),
            "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        }
        init_containers = []
        if load.mode == "continuous":
            container.update(continuous_probes(url))
        else:
            # Job pods get no probes: they run to completion and nothing routes traffic to them.
            init_containers.append(
                {
                    **container,
                    "name": "wait-for-target",
                    "command": url.apply(wait_for_target_command),
                    "args": [],
                }
            )
        return {
            "metadata": {"labels": self.pod_labels},
            "spec": {
                # Job pods must not restart in place: a failed run is a new pod (backoffLimit).
                "restart_policy": "Never" if load.mode == "job" else "Always",
                "automount_service_account_token": False,
                "enable_service_links": False,
                "termination_grace_period_seconds": 5,
                "security_context": pod_security_context(RUN_AS_ID),
                "init_containers": init_containers,
                "containers": [container],
                "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "16Mi"}}],
            },
        }

    def _job(
        self,
        name: str,
        args: LoadGeneratorArgs,
        object_labels: dict[str, str],
        pod_template: dict[str, Any],
        depends_on: list[pulumi.Resource],
    ) -> k8s.batch.v1.Job:
        load = args.load
        deadline = job_deadline_seconds(load)
        # Without verification pulumi-kubernetes v4 awaits the Job until its Complete condition
        # (fails at once on Failed, e.g. DeadlineExceeded/BackoffLimitExceeded); its default
        # 10 min timeout is raised past the deadline so Kubernetes' own verdict is the one
        # reported. With verification the Job is not awaited (SKIP_AWAIT): verify waits for
        # the fortio pods itself, sampling CPU/memory while they run, and reports a failure.
        timeout = f"{deadline + 60}s"
        # No name: pulumi-kubernetes names the Job <resource name>-<random>, and a new run's Job
        # (a replacement) gets a new name. A fixed name forces delete-before-replace, and with
        # skipAwait nothing waits for the old Job to be gone: the create then fails with
        # "object is being deleted: jobs.batch ... already exists" (seen under a real engine).
        # The verification selects the run's pods by the Job's real name (job_name).
        metadata: dict[str, Any] = {"namespace": args.namespace, "labels": object_labels}
        if args.run_stamp is not None:
            metadata["annotations"] = {SKIP_AWAIT: "true"}
        return k8s.batch.v1.Job(
            f"{name}-job",
            metadata=metadata,
            spec={
                "parallelism": load.pods,
                "completions": load.pods,
                "backoff_limit": JOB_BACKOFF_LIMIT,
                "active_deadline_seconds": deadline,
                # No ttlSecondsAfterFinished: the finished pods keep fortio's JSON in their
                # logs for the verification, and a TTL-deleted Job would only reappear as
                # drift on the next refresh. `pulumi destroy` removes it.
                "template": pod_template,
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                # A Job's template, parallelism and completions are immutable, so
                # pulumi-kubernetes replaces it when the load changes: the new Job is created
                # first (under a new name) and the old one deleted at the end of the update.
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            ),
        )

    def _deployment(
        self,
        name: str,
        args: LoadGeneratorArgs,
        object_labels: dict[str, str],
        pod_template: dict[str, Any],
        depends_on: list[pulumi.Resource],
    ) -> k8s.apps.v1.Deployment:
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={
                "name": labels.LOADGEN_NAME,
                "namespace": args.namespace,
                "labels": object_labels,
            },
            spec={
                "replicas": args.load.pods,
                "selector": {"match_labels": self.selector_labels},
                "template": pod_template,
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=depends_on, delete_before_replace=True
            ),
        )

    def _egress_policy(
        self, name: str, args: LoadGeneratorArgs, object_labels: dict[str, str]
    ) -> k8s.networking.v1.NetworkPolicy:
        """fortio may reach the app pods on their container port and DNS; nothing reaches it.

        The app port, not the Service port: policies see the pod IP after kube-proxy's DNAT.
        DNS: any pod in kube-system on 53 (CoreDNS on minikube and kind; kept to the namespace
        rather than CoreDNS's labels, which distributions name differently).
        """
        return k8s.networking.v1.NetworkPolicy(
            f"{name}-egress",
            metadata={
                "name": labels.LOADGEN_NAME,
                "namespace": args.namespace,
                "labels": object_labels,
            },
            spec={
                "pod_selector": {"match_labels": self.selector_labels},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [],
                "egress": [
                    {
                        "to": [{"pod_selector": {"match_labels": dict(args.app_pod_labels)}}],
                        "ports": [{"protocol": "TCP", "port": APP_PORT}],
                    },
                    network.dns_egress(),
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
