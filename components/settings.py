"""Typed stack settings: the one place where `pulumi.Config` is read and validated.

The config keys (CONFIG_KEYS) are listed in docs/CONFIG_KEYS.md; the team's working rules
(COMMON_RULES) in docs/COMMON_RULES.md.

Components receive these frozen dataclasses and never read config themselves.
`load_settings()` turns the stack's config into a `Settings`, or raises `ConfigError`
with one line naming the key, the value given and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ServiceType = Literal["LoadBalancer", "NodePort", "ClusterIP"]
SessionAffinity = Literal["None", "ClientIP"]
PullPolicy = Literal["IfNotPresent", "Never", "Always"]
LoadMode = Literal["job", "continuous", "off"]


class ConfigError(ValueError):
    """A stack config value is wrong. str() is the one line shown to the user."""


@dataclass(frozen=True)
class ClusterSettings:
    kube_context: str  # "" = the kubeconfig's current context
    namespace: str  # resolved: config value or "selfheal-lb-<stack>"


@dataclass(frozen=True)
class ImageSettings:
    prebuilt_ref: str  # "" = build app/ ; otherwise used as is (must be pinned)
    repository: str  # e.g. "selfheal-lb/articles" or "ghcr.io/me/articles"
    push: bool  # False for local clusters (minikube docker-env, kind load)
    registry_server: str
    registry_username: str
    registry_password_set: bool  # the secret itself stays a pulumi secret Output
    pull_policy: PullPolicy
    context_dir: str  # absolute path of app/


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


@dataclass(frozen=True)
class AppSettings:
    replicas: int
    workers: int  # production server worker processes per pod
    resources: Resources
    drain_seconds: int  # preStop sleep + app drain after SIGTERM
    termination_grace_seconds: int  # > drain_seconds
    service_type: ServiceType
    service_port: int
    session_affinity: SessionAffinity
    pdb_max_unavailable: int
    network_policy: bool
    ingress_cidrs: tuple[str, ...]
    # serviceAwaitLoadBalancer: False = Service annotated pulumi.com/skipAwait so `up` does not
    # block until a LoadBalancer IP exists (minikube without `minikube tunnel`).
    await_load_balancer: bool = False


@dataclass(frozen=True)
class AutoscalingSettings:
    enabled: bool  # effective only when metrics are available
    min_replicas: int
    max_replicas: int
    cpu_utilization: int  # percent of the CPU request


@dataclass(frozen=True)
class MetricsServerSettings:
    enabled: bool  # deploy the chart
    kubelet_insecure_tls: bool
    already_present: bool  # the cluster runs one already (e.g. minikube addon)

    @property
    def available(self) -> bool:
        return self.enabled or self.already_present


@dataclass(frozen=True)
class LoadSettings:
    mode: LoadMode
    pods: int
    connections: int  # per pod (fortio -c)
    requests: int  # per pod (fortio -n)
    qps: int  # per pod, 0 = as fast as possible (fortio -qps 0)
    path: str  # e.g. "/article1"
    keepalive: bool
    timeout_seconds: int  # per-request timeout


@dataclass(frozen=True)
class VerifySettings:
    enabled: bool  # needs LoadSettings.mode == "job"
    significance: float  # alpha of the distribution test, 0 < a < 0.5
    timeout_seconds: int  # whole verification
    fail_on_imbalance: bool  # make `pulumi up` fail on an imbalanced verdict


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    cluster: ClusterSettings
    image: ImageSettings
    app: AppSettings
    autoscaling: AutoscalingSettings
    metrics_server: MetricsServerSettings
    load: LoadSettings
    verify: VerifySettings
