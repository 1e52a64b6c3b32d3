"""ArticleApp: the article service's Deployment, Service, PDB, HPA and its NetworkPolicy.

Replaces the seed walkthrough's `kubectl create deployment myapp --replicas=3` and
`kubectl expose deployment myapp --type=LoadBalancer --port=8080`, plus the production
settings the walkthrough never had (probes, limits, drain, Pod Security, policies). It lives in
the StackNamespace (components/namespace.py), which holds the namespace-wide rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import labels, network
from components.pod_security import container_security_context, pod_security_context
from components.settings import AppSettings, AutoscalingSettings
from components.state_store import APP_SECRET_DIR

TYPE_TOKEN = "selfheal-lb:app:ArticleApp"

CONTAINER_NAME = "articles"
CONTAINER_PORT = 8080
PORT_NAME = "http"
# /metrics is served on this port only (app/articles/metrics_port.py), which is in no Service:
# Prometheus and the verification's pod-proxy reads reach it by pod, nobody through the LB.
METRICS_PORT = 9090
METRICS_PORT_NAME = "metrics"
# Matches the app image's non-root numeric user; > 10000 so it never maps onto a host account.
RUN_AS_ID = 10001
# ClientIP stickiness lasts as long as a typical web session, not Kubernetes' default 3 hours.
SESSION_AFFINITY_TIMEOUT_SECONDS = 1800
SKIP_AWAIT = "pulumi.com/skipAwait"
PATCH_FORCE = "pulumi.com/patchForce"
# What the app accepts (app/articles/config.py): DRAIN_SECONDS 0..20 and GRACEFUL_TIMEOUT
# 1..25 - DRAIN_SECONDS. drainSeconds may be up to 60: the preStop sleep takes all of it, the
# app's own drain after SIGTERM at most 20 (it would refuse to start above that).
APP_MAX_DRAIN_SECONDS = 20
APP_GRACE_BUDGET_SECONDS = 25
# RollingUpdate: never below the serving count, one extra pod at a time (the quota counts it).
ROLLOUT_MAX_SURGE = 1
# The taints the node lifecycle controller puts on a node it has lost (NotReady: the kubelet
# says so; unreachable: it stopped reporting). Without tolerations of our own, the API server's
# DefaultTolerationSeconds plugin gives every pod 300 s of both: five minutes before the pods of
# a lost node are replaced elsewhere.
NODE_LOSS_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


@dataclass(frozen=True)
class ArticleAppArgs:
    settings: AppSettings
    autoscaling: AutoscalingSettings
    metrics_available: bool  # metrics-server deployed by the stack or declared present
    namespace: pulumi.Input[str]  # the StackNamespace's name
    image_ref: pulumi.Input[str]
    pull_policy: str
    instance: str  # app.kubernetes.io/instance, normally the stack name
    # Annotations on the pod template (the Prometheus scrape annotations, components/monitoring).
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    # What must exist before any pod starts: the StackNamespace's gates (default-deny, quota).
    before_pods: Sequence[pulumi.Resource] = ()
    # The StateStore's Secret (address, password) mounted as files; None = no shared store.
    state_store_secret: pulumi.Input[str] | None = None


def hpa_manages_replicas(args: ArticleAppArgs) -> bool:
    """The HPA exists only when autoscaling is on and something serves the metrics API."""
    return args.autoscaling.enabled and args.metrics_available


def app_drain_seconds(settings: AppSettings) -> int:
    """DRAIN_SECONDS for the app: the configured drain, within what the app accepts."""
    return min(settings.drain_seconds, APP_MAX_DRAIN_SECONDS)


def graceful_timeout_seconds(settings: AppSettings) -> int:
    """Seconds the app may wait for in-flight requests after its own drain.

    Kubernetes counts terminationGracePeriodSeconds from the start of the preStop hook, so
    after SIGTERM the app has grace - drain left, of which it spends its own drain first.
    Keep 2 s for the process to exit, and stay inside what the app accepts.
    """
    app_drain = app_drain_seconds(settings)
    room = settings.termination_grace_seconds - settings.drain_seconds - app_drain - 2
    limit = APP_GRACE_BUDGET_SECONDS - 1
    app_max = APP_GRACE_BUDGET_SECONDS - app_drain if app_drain < limit else 1
    return max(1, min(room, app_max))


def _field(obj: Any, *names: str) -> Any:
    """A field of a provider output: a dict under mocks/older SDKs, an object otherwise."""
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def load_balancer_address(status: Any) -> str:
    """IP or hostname from status.loadBalancer.ingress; "" while the LoadBalancer is pending."""
    lb = _field(status, "load_balancer", "loadBalancer")
    for entry in _field(lb, "ingress") or []:
        address = _field(entry, "ip") or _field(entry, "hostname")
        if address:
            return str(address)
    return ""


class ArticleApp(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    external_address: pulumi.Output[str]
    service_dns: pulumi.Output[str]

    def __init__(
        self, name: str, args: ArticleAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        s = args.settings
        self.autoscaled = hpa_manages_replicas(args)
        self.selector_labels = labels.selector_labels(labels.APP_NAME, args.instance)
        self.pod_labels = labels.pod_labels(labels.APP_NAME, args.instance, "web")
        self.selector = labels.selector_string(self.selector_labels)
        object_labels = labels.object_labels(labels.APP_NAME, args.instance, "web")
        child = pulumi.ResourceOptions(parent=self)

        ns = args.namespace

        self.network_policies = self._network_policies(name, args, ns, object_labels)
        gates = list(args.before_pods)

        deployment_annotations: dict[str, str] = {}
        if not self.autoscaled:
            # Without an HPA the config owns spec.replicas. If an HPA scaled the Deployment
            # before (autoscaling just turned off), kube-controller-manager still owns the
            # field and a plain server-side apply would fail with a conflict; forcing takes
            # it back. Pulumi is the only intended writer of every field it declares here.
            deployment_annotations[PATCH_FORCE] = "true"
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={
                "name": labels.APP_NAME,
                "namespace": ns,
                "labels": object_labels,
                "annotations": deployment_annotations,
            },
            spec=self._deployment_spec(args),
            opts=pulumi.ResourceOptions(
                parent=self,
                # Fixed names (`kubectl -n <ns> get deploy articles`): a replacement (selector
                # change) must delete first, or the new object's create hits "already exists".
                delete_before_replace=True,
                # The policies first: with a default-deny in place, pods must never start
                # before the rule that lets traffic reach them exists.
                # The namespace's quota and limits too, so a grown quota is in place before
                # the rollout that needs it.
                depends_on=[*self.network_policies, *gates],
                # Replicas and the HPA: the first `up` creates the Deployment with
                # settings.replicas, so the verification sees every pod at once (omitting the
                # field would start at 1 until the HPA reacts). From then on the HPA owns the
                # count. With server-side apply, pulumi-kubernetes v4 honours ignoreChanges by
                # dropping spec.replicas from the apply when another manager (the HPA's
                # kube-controller-manager via /scale) owns it, or by re-sending the live value
                # when it still owns it: never a conflict, never a reset to the declared count.
                ignore_changes=["spec.replicas"] if self.autoscaled else None,
            ),
        )

        service_annotations: dict[str, str] = {}
        if s.service_type == "LoadBalancer" and not s.await_load_balancer:
            # pulumi-kubernetes waits for status.loadBalancer.ingress on a LoadBalancer
            # Service (10 min timeout). Minikube assigns one only while `minikube tunnel`
            # runs, so by default `up` does not wait: externalIp stays "" until a refresh.
            # ClusterIP/NodePort keep the await, which only waits for ready endpoints.
            service_annotations[SKIP_AWAIT] = "true"
        service_spec: dict[str, Any] = {
            "type": s.service_type,
            "selector": self.selector_labels,
            "ports": [
                {
                    "name": PORT_NAME,
                    "protocol": "TCP",
                    "port": s.service_port,
                    "target_port": PORT_NAME,
                }
            ],
            "session_affinity": s.session_affinity,
        }
        if s.session_affinity == "ClientIP":
            service_spec["session_affinity_config"] = {
                "client_ip": {"timeout_seconds": SESSION_AFFINITY_TIMEOUT_SECONDS}
            }
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={
                "name": labels.APP_NAME,
                "namespace": ns,
                "labels": object_labels,
                "annotations": service_annotations,
            },
            spec=service_spec,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.service_name = self.service.metadata.apply(lambda m: m.name)
        self.external_address = self.service.status.apply(load_balancer_address)
        self.service_dns = pulumi.Output.concat(self.service_name, ".", ns, ".svc.cluster.local")

        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": labels.APP_NAME, "namespace": ns, "labels": object_labels},
            spec={
                "max_unavailable": s.pdb_max_unavailable,
                "selector": {"match_labels": self.selector_labels},
                # A crash-looping pod must stay evictable, or it blocks node drains forever.
                "unhealthy_pod_eviction_policy": "AlwaysAllow",
            },
            # pulumi-kubernetes replaces a PDB on any spec change; its name is fixed.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        self.hpa: k8s.autoscaling.v2.HorizontalPodAutoscaler | None = None
        if self.autoscaled:
            a = args.autoscaling
            self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata={"name": labels.APP_NAME, "namespace": ns, "labels": object_labels},
                spec={
                    "scale_target_ref": {
                        "api_version": "apps/v1",
                        "kind": "Deployment",
                        "name": self.deployment.metadata.apply(lambda m: m.name),
                    },
                    "min_replicas": a.min_replicas or s.replicas,
                    "max_replicas": a.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "average_utilization": a.cpu_utilization,
                                },
                            },
                        }
                    ],
                },
                opts=child,
            )

        self.register_outputs(
            {
                "serviceName": self.service_name,
                "externalAddress": self.external_address,
                "serviceDns": self.service_dns,
                "selector": self.selector,
                "autoscaled": self.autoscaled,
            }
        )

    def _deployment_spec(self, args: ArticleAppArgs) -> dict[str, Any]:
        s = args.settings
        r = s.resources
        # The app's only writable directory (read-only root filesystem).
        volumes: list[dict[str, Any]] = [{"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}]
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": args.image_ref,
            "image_pull_policy": args.pull_policy,
            "ports": [
                {"name": PORT_NAME, "container_port": CONTAINER_PORT, "protocol": "TCP"},
                {"name": METRICS_PORT_NAME, "container_port": METRICS_PORT, "protocol": "TCP"},
            ],
            "env": [
                _field_env("POD_NAME", "metadata.name"),
                _field_env("POD_NAMESPACE", "metadata.namespace"),
                _field_env("POD_IP", "status.podIP"),
                _field_env("NODE_NAME", "spec.nodeName"),
                {"name": "PORT", "value": str(CONTAINER_PORT)},
                {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
                {"name": "WEB_CONCURRENCY", "value": str(s.workers)},
                {"name": "DRAIN_SECONDS", "value": str(app_drain_seconds(s))},
                {"name": "GRACEFUL_TIMEOUT", "value": str(graceful_timeout_seconds(s))},
            ],
            "resources": {
                "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
                "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
            },
            # Startup: up to 60 s to boot before liveness may restart the container.
            "startup_probe": _http_probe("/healthz", period=2, timeout=2, failures=30),
            "liveness_probe": _http_probe("/healthz", period=10, timeout=2, failures=3),
            # /readyz turns false as soon as the app starts draining on SIGTERM.
            "readiness_probe": _http_probe("/readyz", period=3, timeout=2, failures=2),
            "security_context": container_security_context(RUN_AS_ID),
            "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
        }
        if args.state_store_secret is not None:
            _mount_state_store(container, volumes, args.state_store_secret)
        if s.drain_seconds > 0:
            # preStop drain: endpoint removal reaches every kube-proxy/LB a moment after the
            # pod starts terminating; the app keeps serving meanwhile and gets SIGTERM only
            # after the sleep. An exec `sleep` (coreutils in the python slim image) rather
            # than the native `lifecycle.preStop.sleep` action: that one is beta in 1.30 and
            # absent before 1.29, while exec works on every cluster `up` may target.
            container["lifecycle"] = {
                "pre_stop": {"exec": {"command": ["sleep", str(s.drain_seconds)]}}
            }
        return {
            "replicas": s.replicas,
            "revision_history_limit": 5,
            "selector": {"match_labels": self.selector_labels},
            "strategy": {
                "type": "RollingUpdate",
                # Never below the serving count during a rollout; one extra pod at a time.
                "rolling_update": {"max_unavailable": 0, "max_surge": ROLLOUT_MAX_SURGE},
            },
            "template": {
                "metadata": {
                    "labels": self.pod_labels,
                    **({"annotations": dict(args.pod_annotations)} if args.pod_annotations else {}),
                },
                "spec": {
                    "automount_service_account_token": False,
                    "enable_service_links": False,
                    "termination_grace_period_seconds": s.termination_grace_seconds,
                    "security_context": pod_security_context(RUN_AS_ID, fs_group=True),
                    "topology_spread_constraints": [
                        {
                            "max_skew": 1,
                            "topology_key": "kubernetes.io/hostname",
                            # Spread when there are nodes to spread over; single-node minikube
                            # still schedules every replica. Not DoNotSchedule: a lost node
                            # stays a domain with 0 pods (nodeTaintsPolicy Ignore, terminating
                            # pods not counted), so the replacements of its pods would stay
                            # Pending until it came back; a full node would block a rollout.
                            "when_unsatisfiable": "ScheduleAnyway",
                            "label_selector": {"match_labels": self.selector_labels},
                            "match_label_keys": ["pod-template-hash"],
                        }
                    ],
                    "tolerations": node_loss_tolerations(s.node_loss_toleration_seconds),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        }

    def _network_policies(
        self,
        name: str,
        args: ArticleAppArgs,
        ns: pulumi.Input[str],
        object_labels: dict[str, str],
    ) -> list[k8s.networking.v1.NetworkPolicy]:
        """The one way in to the app pods (the namespace-wide default-deny is the
        StackNamespace's: any pod the stack adds gets nothing until its own policy allows it).

        Ingress to the app:
        TCP 8080 from this instance's fortio pods (a podSelector, because whether ipBlock
        matches pod IPs is CNI-specific) and from ingress_cidrs (clients through the
        LoadBalancer/NodePort arrive SNATed from node IPs, the API server's pod proxy used by
        the verification and kubelet probes come from node IPs). No egress: the app calls
        nothing, not even DNS. Enforced by kind's kindnet (v0.24+), Calico, Cilium; minikube's
        default bridge CNI accepts but ignores them (`minikube start --cni=calico` enforces).

        The ipBlocks carve the cluster's pod ranges out (network.ip_blocks): on Calico and
        kube-router 0.0.0.0/0 would otherwise admit every pod of every namespace. The metrics
        port admits the same addresses (the API server's pod proxy comes from them) but not
        fortio; Prometheus gets its own rule (components/monitoring).
        """
        s = args.settings
        if not s.network_policy:
            return []
        child = pulumi.ResourceOptions(parent=self)
        sources: list[dict[str, Any]] = [
            {
                "pod_selector": {
                    "match_labels": labels.selector_labels(labels.LOADGEN_NAME, args.instance)
                }
            }
        ]
        outside = network.ip_blocks(s.ingress_cidrs, s.pod_cidrs)
        sources += outside
        if network.admits_pods(s.ingress_cidrs, s.pod_cidrs):
            pulumi.log.warn(
                "ingressAllowedCidrs is wider than one address and clusterPodCidrs is unset: on "
                "Calico and kube-router pods of other namespaces can reach the app pods directly; "
                "set clusterPodCidrs to the cluster's pod range (docs/security.md)",
                resource=self,
            )
        allow_http = k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-http",
            metadata={
                "name": f"{labels.APP_NAME}-ingress",
                "namespace": ns,
                "labels": object_labels,
            },
            spec={
                "pod_selector": {"match_labels": self.selector_labels},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [
                    {"from": sources, "ports": [{"protocol": "TCP", "port": CONTAINER_PORT}]},
                    *(
                        [{"from": outside, "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}]
                        if outside
                        else []
                    ),
                ],
                "egress": [],
            },
            opts=child,
        )
        return [allow_http]


def _mount_state_store(
    container: dict[str, Any], volumes: list[dict[str, Any]], secret: pulumi.Input[str]
) -> None:
    """The shared store's address and password as files (not env: no secret in the pod spec or
    the process environment); the app reads REDIS_URL_FILE and REDIS_PASSWORD_FILE."""
    container["env"] += [
        {"name": "REDIS_URL_FILE", "value": f"{APP_SECRET_DIR}/url"},
        {"name": "REDIS_PASSWORD_FILE", "value": f"{APP_SECRET_DIR}/password"},
    ]
    container["volume_mounts"].append(
        {"name": "state-store", "mount_path": APP_SECRET_DIR, "read_only": True}
    )
    volumes.append(
        {
            "name": "state-store",
            "secret": {
                "secret_name": secret,
                "items": [{"key": "url", "path": "url"}, {"key": "password", "path": "password"}],
                "default_mode": 0o440,  # group-readable: fsGroup is the app's group
            },
        }
    )


def node_loss_tolerations(seconds: int) -> list[dict[str, Any]]:
    """Stay on a lost node `seconds` after its taint appears, then be evicted (and replaced on
    the nodes left): nodeLossTolerationSeconds instead of the admission plugin's 300 s."""
    return [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "toleration_seconds": seconds}
        for key in NODE_LOSS_TAINTS
    ]


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "value_from": {"field_ref": {"field_path": field_path}}}


def _http_probe(path: str, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "http_get": {"path": path, "port": PORT_NAME},
        "period_seconds": period,
        "timeout_seconds": timeout,
        "failure_threshold": failures,
    }
