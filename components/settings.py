"""Typed stack settings: the one place where `pulumi.Config` is read and validated.

Every key is declared in Pulumi.yaml (and tabled in the README); tests keep the three in step.

Components receive these frozen dataclasses and never read config themselves.
`load_settings()` turns the stack's config into a `Settings`, or raises `ConfigError`
with one line naming the key, the value given and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

import pulumi
import yaml

from loadgen.verdict import smallest_verifiable_units

ServiceType = Literal["LoadBalancer", "NodePort", "ClusterIP"]
SessionAffinity = Literal["None", "ClientIP"]
PullPolicy = Literal["IfNotPresent", "Never", "Always"]
LoadMode = Literal["job", "continuous", "off"]
MetricsServerMode = Literal["auto", "true", "false"]
# "auto" is resolved by components/operator_probe.py before any resource is registered.
MonitoringMode = Literal["auto", "podMonitor", "serviceMonitor", "annotations", "off"]
MONITORING_MODES = ("auto", "podMonitor", "serviceMonitor", "annotations", "off")
StateStoreKind = Literal["none", "redis"]


class ConfigError(pulumi.RunError, ValueError):
    """A stack config value is wrong. str() is the one line shown to the user.

    A RunError: should one escape the program, Pulumi's language host prints just its message.
    """


@dataclass(frozen=True)
class ClusterSettings:
    kube_context: str  # "" = the kubeconfig's current context
    namespace: str  # resolved: config value or "selfheal-lb-<stack>"
    # The provider's clusterIdentifier (resolved: config value or "<project>-<stack>"): with it
    # set, pulumi-kubernetes replaces the provider (and every object) only when it changes.
    cluster_identifier: str = ""


@dataclass(frozen=True)
class ImageSettings:
    prebuilt_ref: str  # "" = build app/ ; otherwise used as is (must be pinned)
    repository: str  # e.g. "selfheal-lb/articles" or "ghcr.io/me/articles"
    push: bool  # False for local clusters (minikube docker-env, kind load)
    registry_server: str
    registry_username: str
    registry_password_set: bool  # the secret itself stays a pulumi secret Output
    pull_policy: PullPolicy
    context_dir: str  # build context as handed to Docker: relative to the project dir ("app")
    base_image: str  # "" = the Dockerfile's default base; a mirror or locally built base otherwise
    load_command: str  # "" = none; else run with the built image's reference appended


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
    # The cluster's pod ranges, carved out of ingress_cidrs (components/network.ip_blocks).
    pod_cidrs: tuple[str, ...] = ()
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
    # auto: install the chart only when the cluster serves no metrics.k8s.io (or this stack
    # installed it); true: install it (error if another one serves the API); false: never.
    # components/metrics_plan.py decides with what the cluster answers.
    mode: MetricsServerMode
    kubelet_insecure_tls: bool
    # metricsServerDecision: what `auto` decided on an earlier run (install | cluster), kept
    # whatever the probe answers now; "" = decide from the probe.
    decision: str = ""


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
    image: str  # fortio's image (pinned); a mirror's or locally built copy for air-gapped clusters


@dataclass(frozen=True)
class VerifySettings:
    enabled: bool  # needs LoadSettings.mode == "job"
    significance: float  # alpha of the distribution test, 0 < a < 0.5
    timeout_seconds: int  # whole verification
    fail_on_imbalance: bool  # make `pulumi up` fail on an imbalanced verdict


@dataclass(frozen=True)
class MonitoringSettings:
    mode: MonitoringMode  # may still be "auto": the program asks the cluster (operator_probe)
    monitor_labels: tuple[tuple[str, str], ...]  # extra labels on the PodMonitor/ServiceMonitor
    prometheus_namespace: str  # "" = no NetworkPolicy rule for Prometheus
    dashboard: bool  # ship the Grafana dashboard ConfigMap (when mode is not off)
    dashboard_namespace: str  # resolved: config value or the stack's namespace
    # monitoringDecision: what `auto` decided on an earlier run (podMonitor | annotations),
    # kept whatever the probe answers now; "" = decide from the probe.
    decision: str = ""


@dataclass(frozen=True)
class QuotaSettings:
    enabled: bool  # ResourceQuota + LimitRange in the stack's namespace
    max_cpu: str  # "" = no ceiling; else the most CPU (limits) the namespace may be granted
    max_memory: str  # "" = no ceiling; same for memory
    drill_pods: int  # pods a drill may delete at once (make drill LG_KILL)


@dataclass(frozen=True)
class StateStoreSettings:
    kind: StateStoreKind  # "none": counters per pod, no sessions; "redis": one shared store
    image: str  # pinned Redis image (official, a mirror's copy or built from components/redis/)
    cpu: str  # request = limit (Guaranteed QoS: the store is the last pod to be evicted)
    memory: str  # request = limit; Redis' maxmemory is a share of it
    password_set: bool  # the secret stateStorePassword is set; otherwise one is generated

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


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
    monitoring: MonitoringSettings
    quota: QuotaSettings
    state_store: StateStoreSettings


# ---------------------------------------------------------------------------------------------
# Parsing. Every key has one spec below; Pulumi.yaml declares the same keys with the same types
# and defaults (tests/test_settings.py checks that the two agree).

ConfigValue = str | int | bool | tuple[str, ...]

_INT = re.compile(r"^[+-]?\d+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Quantities are checked against the grammar the API server accepts, not with the client's
# parse_quantity (it takes "1_000", "NaN" and "Infinity", and would load `kubernetes` here).
_CPU = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m)?$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
# Docker reference grammar (distribution/reference): optional registry host[:port], then
# lower-case path components separated by '/'.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(
    rf"^(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::\d+)?)/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_URL_PATH = re.compile(r"^/[^\s#]*$")
_VERIFY_MIN_TIMEOUT, _VERIFY_MAX_TIMEOUT = 10, 3600
# Kubernetes label key (optional DNS prefix + name) and value.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

PULUMI_YAML = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
KINDS = ("string", "integer", "boolean", "array")


def _config_spec(project_file: Path = PULUMI_YAML) -> dict[str, tuple[str, ConfigValue]]:
    """key -> (kind, default), read from the project's config schema: Pulumi.yaml is the one
    place every key, type and default is written (the parsers below add the rules)."""
    declared = yaml.safe_load(project_file.read_text())["config"]
    spec: dict[str, tuple[str, ConfigValue]] = {}
    for key, decl in declared.items():
        kind, default = decl["type"], decl["default"]
        if kind not in KINDS:
            raise ValueError(f"Pulumi.yaml: config key {key} has an unknown type {kind!r}")
        spec[key] = (kind, tuple(default) if kind == "array" else default)
    return spec


CONFIG_SPEC: dict[str, tuple[str, ConfigValue]] = _config_spec()
# A secret cannot carry a default in Pulumi.yaml, and a declared key without a default is
# required of every stack, so this one is read here but deliberately not declared there.
SECRET_KEYS = ("imageRegistryPassword", "stateStorePassword")
# Keys this project no longer has, with what replaces them (one line instead of "unknown key").
RETIRED_KEYS = {
    "metricsServerPresent": (
        "the stack now detects the cluster's metrics-server itself: remove this key "
        "(metricsServerEnabled auto uses the one that is there)"
    ),
}


class _Reader:
    """Reads raw config strings for one project namespace and names the key in every error."""

    def __init__(self, config: pulumi.Config, project: str) -> None:
        self._config = config
        self._project = project

    def key(self, name: str) -> str:
        return f"{self._project}:{name}"

    def fail(self, name: str, value: object, allowed: str) -> NoReturn:
        shown = value if isinstance(value, str) else json.dumps(value)
        raise ConfigError(f"config '{self.key(name)}' is '{shown}': {allowed}")

    def raw(self, name: str) -> str | None:
        return self._config.get(name)

    def string(self, name: str, *, choices: tuple[str, ...] = ()) -> str:
        raw = self.raw(name)
        value = str(CONFIG_SPEC[name][1]) if raw is None else raw
        if choices and value not in choices:
            self.fail(name, value, f"must be one of {', '.join(choices)}")
        return value

    def integer(self, name: str, low: int, high: int, what: str = "") -> int:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, int)
        else:
            text = raw.strip()
            if not _INT.match(text):
                self.fail(name, raw, f"must be an integer from {low} to {high}{what}")
            value = int(text)
        if not low <= value <= high:
            self.fail(name, value, f"must be an integer from {low} to {high}{what}")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, bool)
            return value
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            self.fail(name, raw, "must be true or false")
        return lowered == "true"

    def strings(self, name: str) -> tuple[str, ...]:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, tuple)
            return value
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            self.fail(name, raw, 'must be a list of strings, e.g. ["0.0.0.0/0"]')
        return tuple(parsed)


def _cpu_millis(text: str) -> float | None:
    m = _CPU.match(text)
    if not m:
        return None
    number = float(m.group(1))
    return number if m.group(3) else number * 1000


def _memory_bytes(text: str) -> float | None:
    m = _MEMORY.match(text)
    return float(m.group(1)) * _MEMORY_UNITS[m.group(3) or ""] if m else None


def _check_image_ref(r: _Reader, ref: str, key: str = "imageRef") -> None:
    """An image reference must pin the image: a tag other than latest, or a digest."""
    allowed = "must be <repository>:<tag> (tag not 'latest') or <repository>@sha256:<digest>"
    name, _, digest = ref.partition("@")
    repository, tag = name, ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
    if not _REPOSITORY.match(repository):
        r.fail(key, ref, allowed)
    if digest:
        if not _DIGEST.match(digest) or (tag and not _TAG.match(tag)):
            r.fail(key, ref, allowed)
    elif not tag or tag == "latest" or not _TAG.match(tag):
        r.fail(key, ref, allowed)


def _namespace(r: _Reader, stack: str) -> str:
    given = r.string("namespace")
    if given:
        if len(given) > 63 or not _DNS_LABEL.match(given):
            r.fail("namespace", given, "must be a DNS-1123 label (a-z, 0-9, '-', at most 63)")
        return given
    # Derived from the stack name, made a valid label whatever the stack is called.
    derived = re.sub(r"[^a-z0-9-]+", "-", f"selfheal-lb-{stack.lower()}")[:63].strip("-")
    return derived


def _image(r: _Reader, app_dir: Path, password_set: bool) -> ImageSettings:
    prebuilt = r.string("imageRef").strip()
    repository = r.string("imageRepository").strip()
    push = r.boolean("imagePush")
    server = r.string("imageRegistryServer").strip()
    username = r.string("imageRegistryUsername").strip()
    pull_policy = r.string("imagePullPolicy", choices=("IfNotPresent", "Never", "Always"))
    base = r.string("imageBase").strip()
    load_command = r.string("imageLoadCommand").strip()
    if prebuilt and (base or load_command):
        key = "imageBase" if base else "imageLoadCommand"
        r.fail(key, base or load_command, "must be empty when imageRef is set (nothing is built)")
    if base:
        _check_image_ref(r, base, "imageBase")
    if prebuilt:
        _check_image_ref(r, prebuilt)
        if push:
            r.fail("imagePush", True, "must be false when imageRef is set (nothing is built)")
    else:
        if not repository:
            r.fail(
                "imageRepository", repository, "must name a repository, e.g. selfheal-lb/articles"
            )
        if not _REPOSITORY.match(repository):
            r.fail(
                "imageRepository",
                repository,
                "must be a lower-case repository name without a tag, e.g. ghcr.io/me/articles",
            )
        if not push and pull_policy == "Always":
            r.fail(
                "imagePullPolicy",
                pull_policy,
                "must be IfNotPresent or Never when imagePush is false (the image is only local)",
            )
    if push:
        if not server:
            r.fail(
                "imageRegistryServer", server, "must name the registry host when imagePush is true"
            )
        if bool(username) != password_set:
            r.fail(
                "imageRegistryUsername",
                username,
                "must be set together with the secret imageRegistryPassword (both or neither)",
            )
    return ImageSettings(
        prebuilt_ref=prebuilt,
        repository=repository,
        push=push,
        registry_server=server,
        registry_username=username,
        registry_password_set=password_set,
        pull_policy=pull_policy,  # type: ignore[arg-type]
        context_dir=str(app_dir),
        base_image=base,
        load_command=load_command,
    )


def _resources(r: _Reader) -> Resources:
    values = {}
    for kind, parse, example in (
        ("Cpu", _cpu_millis, "100m or 0.5"),
        ("Memory", _memory_bytes, "128Mi"),
    ):
        amounts = []
        for role in ("Request", "Limit"):
            name = f"app{kind}{role}"
            text = r.string(name).strip()
            amount = parse(text)
            if amount is None or amount <= 0:
                r.fail(name, text, f"must be a positive Kubernetes quantity, e.g. {example}")
            values[name] = text
            amounts.append(amount)
        if amounts[0] > amounts[1]:
            r.fail(
                f"app{kind}Request",
                values[f"app{kind}Request"],
                f"must not exceed app{kind}Limit ({values[f'app{kind}Limit']})",
            )
    return Resources(
        cpu_request=values["appCpuRequest"],
        cpu_limit=values["appCpuLimit"],
        memory_request=values["appMemoryRequest"],
        memory_limit=values["appMemoryLimit"],
    )


def _cidrs(r: _Reader, name: str) -> tuple[str, ...]:
    cidrs = r.strings(name)
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            r.fail(name, list(cidrs), f"'{cidr}' is not a CIDR such as 10.0.0.0/8")
    return cidrs


def _app(r: _Reader) -> AppSettings:
    replicas = r.integer("appReplicas", 1, 50)
    workers = r.integer("appWorkers", 1, 16)
    resources = _resources(r)
    drain = r.integer("drainSeconds", 0, 60)
    grace = r.integer("terminationGracePeriodSeconds", 1, 3600)
    if grace <= 2 * drain + 5:
        r.fail(
            "terminationGracePeriodSeconds",
            grace,
            f"must exceed 2*drainSeconds+5 = {2 * drain + 5} (preStop sleep + drain + exit)",
        )
    service_type = r.string("serviceType", choices=("LoadBalancer", "NodePort", "ClusterIP"))
    port = r.integer("servicePort", 1, 65535)
    await_lb = r.boolean("serviceAwaitLoadBalancer")
    affinity = r.string("sessionAffinity", choices=("None", "ClientIP"))
    pdb_high = max(1, replicas - 1)
    pdb = r.integer("pdbMaxUnavailable", 1, pdb_high, f" (below appReplicas={replicas})")
    cidrs = _cidrs(r, "ingressAllowedCidrs")
    pod_cidrs = _cidrs(r, "clusterPodCidrs")
    return AppSettings(
        replicas=replicas,
        workers=workers,
        resources=resources,
        drain_seconds=drain,
        termination_grace_seconds=grace,
        service_type=service_type,  # type: ignore[arg-type]
        service_port=port,
        session_affinity=affinity,  # type: ignore[arg-type]
        pdb_max_unavailable=pdb,
        network_policy=r.boolean("networkPolicy"),
        ingress_cidrs=cidrs,
        pod_cidrs=pod_cidrs,
        await_load_balancer=await_lb,
    )


def _autoscaling(r: _Reader, replicas: int) -> AutoscalingSettings:
    enabled = r.boolean("hpaEnabled")
    min_given = r.integer("hpaMinReplicas", 0, 50, " (0 = appReplicas)")
    minimum = min_given or replicas
    maximum = r.integer("hpaMaxReplicas", minimum, 50, f" (at least hpaMinReplicas={minimum})")
    return AutoscalingSettings(
        enabled=enabled,
        min_replicas=minimum,
        max_replicas=maximum,
        cpu_utilization=r.integer("hpaCpuUtilization", 1, 100),
    )


def _metrics_server(r: _Reader) -> MetricsServerSettings:
    raw = r.raw("metricsServerEnabled")
    # A stack file may hold the YAML booleans true/false of the key's earlier boolean type.
    mode = "auto" if raw is None else raw.strip().lower()
    if mode not in ("auto", "true", "false"):
        r.fail("metricsServerEnabled", raw, "must be auto, true or false")
    return MetricsServerSettings(
        mode=mode,  # type: ignore[arg-type]
        kubelet_insecure_tls=r.boolean("metricsServerInsecureTls"),
        decision=_decision(r, "metricsServerDecision", ("install", "cluster")),
    )


def _decision(r: _Reader, name: str, choices: tuple[str, ...]) -> str:
    value = r.string(name).strip()
    if value and value not in choices:
        r.fail(name, value, f"must be {' or '.join(choices)}, or empty to decide from the cluster")
    return value


def _load(r: _Reader) -> LoadSettings:
    mode = r.string("loadgenMode", choices=("job", "continuous", "off"))
    pods = r.integer("loadgenPods", 1, 50)
    connections = r.integer("loadgenConnections", 1, 10_000)
    requests = r.integer(
        "loadgenRequests", connections, 10_000_000, " (at least loadgenConnections)"
    )
    qps = r.integer("loadgenQps", 0, 100_000, " (0 = as fast as possible)")
    if mode == "continuous" and qps == 0:
        r.fail(
            "loadgenQps", qps, "must be at least 1 when loadgenMode is continuous (endless load)"
        )
    image = r.string("loadgenImage").strip()
    _check_image_ref(r, image, "loadgenImage")
    path = r.string("loadgenPath")
    if not _URL_PATH.match(path):
        r.fail("loadgenPath", path, "must start with '/' and contain no spaces, e.g. /article1")
    return LoadSettings(
        mode=mode,  # type: ignore[arg-type]
        pods=pods,
        connections=connections,
        requests=requests,
        qps=qps,
        path=path,
        keepalive=r.boolean("loadgenKeepalive"),
        timeout_seconds=r.integer("loadgenTimeoutSeconds", 1, 120),
        image=image,
    )


def _verify(r: _Reader, mode: str) -> VerifySettings:
    enabled = r.boolean("verifyEnabled")
    if enabled and mode != "job":
        r.fail(
            "verifyEnabled", True, f"needs loadgenMode job (it is {mode}); set verifyEnabled false"
        )
    text = r.string("verifySignificance").strip()
    try:
        alpha = float(text)
    except ValueError:
        alpha = -1.0
    if not 0 < alpha < 0.5:
        r.fail("verifySignificance", text, "must be a number between 0 and 0.5, e.g. 0.01")
    return VerifySettings(
        enabled=enabled,
        significance=alpha,
        timeout_seconds=r.integer("verifyTimeoutSeconds", _VERIFY_MIN_TIMEOUT, _VERIFY_MAX_TIMEOUT),
        fail_on_imbalance=r.boolean("verifyFailOnImbalance"),
    )


def _namespace_or_empty(r: _Reader, name: str, value: str) -> str:
    if value and (len(value) > 63 or not _DNS_LABEL.match(value)):
        r.fail(name, value, "must be a namespace name (a DNS-1123 label) or empty")
    return value


def _monitoring(r: _Reader, namespace: str) -> MonitoringSettings:
    mode = r.string("monitoring", choices=MONITORING_MODES)
    pairs = []
    given = r.strings("monitoringLabels")
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            r.fail(
                "monitoringLabels",
                list(given),
                f"'{item}' is not key=value with a valid label, e.g. release=kube-prometheus-stack",
            )
        pairs.append((key, value))
    prometheus_ns = _namespace_or_empty(
        r, "prometheusNamespace", r.string("prometheusNamespace").strip()
    )
    dashboard_ns = _namespace_or_empty(
        r, "grafanaDashboardNamespace", r.string("grafanaDashboardNamespace").strip()
    )
    return MonitoringSettings(
        mode=mode,  # type: ignore[arg-type]
        monitor_labels=tuple(pairs),
        prometheus_namespace=prometheus_ns,
        dashboard=r.boolean("grafanaDashboard"),
        dashboard_namespace=dashboard_ns or namespace,
        decision=_decision(r, "monitoringDecision", ("podMonitor", "annotations")),
    )


def _quota(r: _Reader) -> QuotaSettings:
    ceilings = []
    for name, parse, example in (
        ("quotaMaxCpu", _cpu_millis, "8 or 8000m"),
        ("quotaMaxMemory", _memory_bytes, "8Gi"),
    ):
        text = r.string(name).strip()
        if text:
            amount = parse(text)
            if amount is None or amount <= 0:
                allowed = f"must be empty or a positive Kubernetes quantity, e.g. {example}"
                r.fail(name, text, allowed)
        ceilings.append(text)
    return QuotaSettings(
        enabled=r.boolean("quotaEnabled"),
        max_cpu=ceilings[0],
        max_memory=ceilings[1],
        drill_pods=r.integer("quotaDrillPods", 0, 50),
    )


def _check_load_verifies(
    r: _Reader, app: AppSettings, load: LoadSettings, verify: VerifySettings
) -> None:
    """Refuse a load too small to tell a pod that got nothing from bad luck.

    With few balanced units over many pods some pod is left empty by chance (300 connections
    over 50 pods: 11% of the time), so the verdict could not call a dead pod a failure. With
    sticky sessions the unit is the client, and the report says what so few clients can show."""
    if not verify.enabled or load.mode != "job" or app.replicas < 2:
        return
    if app.session_affinity == "ClientIP":
        return
    need = smallest_verifiable_units(app.replicas, verify.significance)
    key, per_pod, word = (
        ("loadgenConnections", load.connections, "keep-alive connections")
        if load.keepalive
        else ("loadgenRequests", load.requests, "requests (one connection each)")
    )
    units = load.pods * per_pod
    if units >= need:
        return
    suggestion = f"{key} {math.ceil(need / load.pods)}"
    if load.keepalive and math.ceil(need / load.pods) > load.requests:
        suggestion += " and loadgenRequests at least that"
    r.fail(
        key,
        per_pod,
        f"too small to verify appReplicas={app.replicas} at verifySignificance "
        f"{verify.significance:g}: {load.pods} pods x {per_pod} = {units} {word} leave some "
        f"pod empty by chance too often; the smallest load that would do is {need} in all, "
        f"e.g. {suggestion} (or more loadgenPods)",
    )


def _state_store(r: _Reader, password_set: bool) -> StateStoreSettings:
    kind = r.string("stateStore", choices=("none", "redis"))
    image = r.string("stateStoreImage").strip()
    _check_image_ref(r, image, "stateStoreImage")
    cpu = r.string("stateStoreCpu").strip()
    millis = _cpu_millis(cpu)
    if millis is None or millis < 10:
        r.fail("stateStoreCpu", cpu, "must be a Kubernetes CPU quantity of at least 10m, e.g. 250m")
    memory = r.string("stateStoreMemory").strip()
    amount = _memory_bytes(memory)
    if amount is None or amount < 32 * 2**20:
        r.fail(
            "stateStoreMemory", memory, "must be a Kubernetes quantity of at least 32Mi, e.g. 128Mi"
        )
    return StateStoreSettings(
        kind=kind,  # type: ignore[arg-type]
        image=image,
        cpu=cpu,
        memory=memory,
        password_set=password_set,
    )


def memory_bytes(quantity: str) -> int:
    """A validated Kubernetes memory quantity in bytes (for Redis' maxmemory)."""
    amount = _memory_bytes(quantity)
    if amount is None:
        raise ValueError(f"not a memory quantity: {quantity}")
    return int(amount)


def _reject_unknown_keys(r: _Reader, present: Iterable[str], project: str) -> None:
    known = set(CONFIG_SPEC) | set(SECRET_KEYS)
    for full in sorted(present):
        namespace, _, name = full.partition(":")
        if namespace != project or name in known:
            continue
        if name in RETIRED_KEYS:
            raise ConfigError(f"config '{full}' is no longer used: {RETIRED_KEYS[name]}")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see Pulumi.yaml for the keys"
        raise ConfigError(f"config '{full}' is not a key of this project: {hint}")


def present_config_keys() -> list[str]:
    """The fully-qualified config keys the engine handed the program (to catch misspellings)."""
    from pulumi.runtime import config as runtime_config  # the SDK keeps no public accessor

    return list(runtime_config.CONFIG.get().keys())


def load_settings(
    config: pulumi.Config,
    *,
    project: str,
    stack: str,
    app_dir: Path,
    present_keys: Iterable[str] = (),
) -> Settings:
    """Parse and validate the stack's config; raise ConfigError (one line) on the first bad value.

    `present_keys` are the fully-qualified keys the stack sets (to catch misspelt keys);
    `app_dir` is the build context of the image, as the program should hand it to Docker.
    The registry password is not read here: only whether it is set (it stays a secret Output).
    """
    r = _Reader(config, project)
    _reject_unknown_keys(r, present_keys, project)
    password_set = config.get_secret("imageRegistryPassword") is not None
    cluster = ClusterSettings(
        kube_context=r.string("kubeContext").strip(),
        namespace=_namespace(r, stack),
        cluster_identifier=r.string("clusterIdentifier").strip() or f"{project}-{stack}",
    )
    image = _image(r, app_dir, password_set)
    app = _app(r)
    autoscaling = _autoscaling(r, app.replicas)
    metrics_server = _metrics_server(r)
    load = _load(r)
    verify = _verify(r, load.mode)
    monitoring = _monitoring(r, cluster.namespace)
    quota = _quota(r)
    _check_load_verifies(r, app, load, verify)
    state_store = _state_store(r, config.get_secret("stateStorePassword") is not None)
    return Settings(
        project=project,
        stack=stack,
        cluster=cluster,
        image=image,
        app=app,
        autoscaling=autoscaling,
        metrics_server=metrics_server,
        load=load,
        verify=verify,
        monitoring=monitoring,
        quota=quota,
        state_store=state_store,
    )
