"""Typed stack settings: the one place where `pulumi.Config` is read and validated.

Pulumi.yaml declares every key with its type, default and description (docs/configuration.md
is generated from it); the modules here add what its schema cannot say, one per concern:
schema.py (the reader, quantities, image references, unknown keys), cluster.py, image.py,
app.py, load.py (and the verifiable-load refusal), addons.py (metrics-server, monitoring,
quota, shared store). Components receive these frozen dataclasses and never read config.
`load_settings()` returns a `Settings` or raises `ConfigError` with one line naming the key,
the value given and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.settings.addons import (
    MONITORING_MODES,
    MetricsServerMode,
    MetricsServerSettings,
    MonitoringMode,
    MonitoringSettings,
    QuotaSettings,
    StateStoreKind,
    StateStoreSettings,
    parse_metrics_server,
    parse_monitoring,
    parse_quota,
    parse_state_store,
)
from components.settings.app import (
    AppSettings,
    AutoscalingSettings,
    Resources,
    ServiceType,
    SessionAffinity,
    parse_app,
    parse_autoscaling,
)
from components.settings.cluster import ClusterSettings, parse_namespace
from components.settings.image import ImageSettings, PullPolicy, parse_image
from components.settings.load import (
    LoadMode,
    LoadSettings,
    VerifySettings,
    check_load_verifies,
    parse_load,
    parse_verify,
)
from components.settings.schema import (
    CONFIG_SPEC,
    PULUMI_YAML,
    RETIRED_KEYS,
    SECRET_KEYS,
    ConfigError,
    ConfigValue,
    Reader,
    memory_bytes,
    present_config_keys,
    reject_unknown_keys,
)

__all__ = [
    "CONFIG_SPEC", "MONITORING_MODES", "PULUMI_YAML", "RETIRED_KEYS", "SECRET_KEYS",
    "AppSettings", "AutoscalingSettings", "ClusterSettings", "ConfigError", "ConfigValue",
    "ImageSettings", "LoadMode", "LoadSettings", "MetricsServerMode", "MetricsServerSettings",
    "MonitoringMode", "MonitoringSettings", "PullPolicy", "QuotaSettings", "Resources",
    "ServiceType", "SessionAffinity", "Settings", "StateStoreKind", "StateStoreSettings",
    "VerifySettings", "load_settings", "memory_bytes", "present_config_keys",
]  # fmt: skip


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
    r = Reader(config, project)
    reject_unknown_keys(r, present_keys, project)
    password_set = config.get_secret("imageRegistryPassword") is not None
    cluster = ClusterSettings(
        kube_context=r.string("kubeContext").strip(),
        namespace=parse_namespace(r, stack),
        cluster_identifier=r.string("clusterIdentifier").strip() or f"{project}-{stack}",
    )
    image = parse_image(r, app_dir, password_set)
    app = parse_app(r)
    autoscaling = parse_autoscaling(r, app.replicas)
    metrics_server = parse_metrics_server(r)
    load = parse_load(r)
    verify = parse_verify(r, load.mode)
    monitoring = parse_monitoring(r, cluster.namespace)
    quota = parse_quota(r)
    check_load_verifies(r, app, load, verify)
    state_store = parse_state_store(r, config.get_secret("stateStorePassword") is not None)
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
