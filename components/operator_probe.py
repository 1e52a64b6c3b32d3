"""Resolve `monitoring: auto`: does the cluster serve the Prometheus Operator's PodMonitor CRD?

Asked once, before any resource is registered, with the official `kubernetes` client and the
same kubeconfig context the stack's provider uses; it works the same under `pulumi preview` and
`pulumi up`. The answer is a discovery call (GET /apis/monitoring.coreos.com/v1), so it needs
only the permission every authenticated user has.

When the cluster cannot be asked (no kubeconfig, unreachable, forbidden) the program falls back
to the scrape annotations, which every Prometheus setup understands, and says so in one line.
Under the Pulumi SDK's mocks (`make render`, the tests) no cluster is asked at all, so what they
produce never depends on the machine they run on. SELFHEAL_LB_PROMETHEUS_OPERATOR=present|absent
states the answer instead of asking (CI previews without a cluster, the tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings

GROUP, VERSION = "monitoring.coreos.com", "v1"
ENV_OVERRIDE = "SELFHEAL_LB_PROMETHEUS_OPERATOR"
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProbeResult:
    present: bool | None  # None: the cluster could not be asked
    detail: str  # what was found, or why it could not be asked (one line)
    kinds: frozenset[str] = frozenset()  # the group's resources, e.g. podmonitors


def ask_cluster(
    kube_context: str, *, kubeconfig: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> ProbeResult:
    """One discovery request for monitoring.coreos.com/v1; never raises."""
    # Imported here: the client is large and the program needs it only for `auto`.
    import urllib3
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=kubeconfig,
            context=kube_context or None,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError) as err:
        return ProbeResult(None, f"no usable kubeconfig: {_one_line(err)}")
    configuration.retries = False  # one attempt: an unreachable cluster must not stall `up`
    api_client = client.ApiClient(configuration)
    try:
        found = client.CustomObjectsApi(api_client).get_api_resources(
            GROUP, VERSION, _request_timeout=timeout
        )
    except ApiException as err:
        if err.status == 404:
            return ProbeResult(False, f"the cluster serves no {GROUP}/{VERSION} API")
        return ProbeResult(None, f"the API server answered {err.status} {err.reason}")
    except (urllib3.exceptions.HTTPError, OSError) as err:
        return ProbeResult(None, f"cluster unreachable at {configuration.host}: {_one_line(err)}")
    finally:
        api_client.close()
    kinds = frozenset(r.name for r in (found.resources or []))
    if "podmonitors" in kinds:
        return ProbeResult(True, f"the cluster serves {GROUP}/{VERSION} podmonitors", kinds)
    return ProbeResult(False, f"{GROUP}/{VERSION} has no podmonitors", kinds)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__


def under_mocks() -> bool:
    """True when the program runs under the SDK's mocks (no engine, no cluster)."""
    return isinstance(pulumi_settings.get_monitor(), pulumi_mocks.MockMonitor)


@dataclass(frozen=True)
class Resolution:
    mode: str  # podMonitor, serviceMonitor, annotations or off
    note: str  # how `auto` was decided, one line ("" when the mode was given)
    warn: bool  # the cluster could not be asked, or a recorded decision overrides it
    asked: bool = True  # False: no cluster was asked (under mocks)
    detail: str = ""  # what the cluster answered, or why it could not be asked


def resolve_mode(
    mode: str,
    kube_context: str,
    ask: Callable[[str], ProbeResult] = ask_cluster,
    recorded: str = "",
) -> Resolution:
    """The scrape mode to build for the configured one (only `auto` needs the cluster).

    `recorded` (monitoringDecision) is what `auto` decided before. It is kept whatever the
    probe answers now, so a slow or failed probe never deletes a PodMonitor or rolls the pods;
    the probe then only says, in one warning line, that the cluster's answer differs."""
    if mode != "auto":
        return Resolution(mode, "", False)
    fresh = _resolve_auto(kube_context, ask)
    if not recorded:
        return fresh
    kept = f"keeping the recorded {recorded} (monitoringDecision; make up REDECIDE=1 asks again)"
    if not fresh.asked:
        return Resolution(recorded, f"monitoring auto: {kept}", False, asked=False)
    if fresh.warn:  # the cluster could not be asked
        return Resolution(recorded, f"monitoring auto: {fresh.detail}; {kept}", True)
    if fresh.mode == recorded:
        return Resolution(recorded, f"monitoring auto: {recorded}, as recorded", False)
    changed = f"monitoring auto: the probe now finds: {fresh.detail} ({fresh.mode}); {kept}"
    return Resolution(recorded, changed, True)


def _resolve_auto(kube_context: str, ask: Callable[[str], ProbeResult]) -> Resolution:
    stated = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if stated and stated not in ("present", "absent"):
        why = f"{ENV_OVERRIDE}='{stated}' is neither present nor absent"
        return Resolution(
            "annotations", f"monitoring auto: {why}; using scrape annotations", True, detail=why
        )
    if stated:
        result = ProbeResult(stated == "present", f"{ENV_OVERRIDE}={stated}")
    elif under_mocks():
        return Resolution(
            "annotations",
            "monitoring auto: evaluated under mocks, no cluster to ask; using scrape annotations",
            False,
            asked=False,
        )
    else:
        result = ask(kube_context)
    if result.present:
        note = f"monitoring auto: {result.detail}; using a PodMonitor"
        return Resolution("podMonitor", note, False, detail=result.detail)
    if result.present is False:
        note = f"monitoring auto: {result.detail}; using scrape annotations"
        return Resolution("annotations", note, False, detail=result.detail)
    why = f"could not ask the cluster for the Prometheus Operator's CRDs ({result.detail})"
    return Resolution(
        "annotations",
        f"monitoring auto: {why}; using scrape annotations (set monitoring to choose)",
        True,
        detail=why,
    )
